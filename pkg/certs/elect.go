package certs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease timings, as controller-runtime's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Elected runs a task only while this replica holds a Lease, and campaigns
// again when it loses it. controller-runtime's own election ends the whole
// process on a lost lease; for the injector that would be wrong: a replica
// cut off from the API server can still serve admissions with the
// certificate it holds, but once restarted it cannot load one.
type Elected struct {
	lock    resourcelock.Interface
	task    func(context.Context) error
	log     logr.Logger
	running sync.Mutex
}

// NewElected returns an Elected over the Lease namespace/name.
func NewElected(rc *rest.Config, namespace, name string, task func(context.Context) error, log logr.Logger) (*Elected, error) {
	host, _ := os.Hostname()
	lock, err := resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, namespace, name,
		resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())}, rc, renewDeadline)
	if err != nil {
		return nil, fmt.Errorf("lease %s/%s: %w", namespace, name, err)
	}
	return &Elected{lock: lock, task: task, log: log}, nil
}

// NeedLeaderElection: Elected runs on every replica; it elects by itself.
func (*Elected) NeedLeaderElection() bool { return false }

// Start campaigns until ctx ends; the task runs while the lease is held.
func (e *Elected) Start(ctx context.Context) error {
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: e.lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			// Released on shutdown, so a rolling update hands the duty over
			// at once.
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: e.run,
				OnStoppedLeading: func() {
					if ctx.Err() == nil {
						e.log.Info("not holding the certificate lease; still serving, campaigning")
					}
				},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
	}
	// Wait for a task still ending (its context is cancelled).
	e.running.Lock()
	defer e.running.Unlock()
	return nil
}

// run is the task for one term. The lock keeps two terms' tasks from
// overlapping: a lost term's task ends on its cancelled context, and
// client-go starts the next term's in a goroutine of its own.
func (e *Elected) run(ctx context.Context) {
	e.running.Lock()
	defer e.running.Unlock()
	if ctx.Err() != nil {
		return
	}
	e.log.Info("holding the certificate lease")
	if err := e.task(ctx); err != nil {
		e.log.Error(err, "certificate duty ended")
	}
}
