package certs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// retryAfterError is how soon a failed pass is retried, at most; a webhook
// without a certificate should not wait a full interval on a hiccup.
const retryAfterError = 5 * time.Second

// Loader copies the serving pair from the Secret into a Store. It runs on
// every replica, since every replica serves.
type Loader struct {
	reader client.Reader
	opts   Options
	store  *Store
	log    logr.Logger

	mu       sync.Mutex
	lastCert []byte
	lastKey  []byte
}

// NewLoader returns a Loader reading through r. Pass an uncached reader (a
// manager's GetAPIReader): a cached one would need list and watch on every
// Secret in the cluster, while this needs get on one.
func NewLoader(r client.Reader, opts Options, store *Store, log logr.Logger) *Loader {
	return &Loader{reader: r, opts: opts.withDefaults(), store: store, log: log}
}

// NeedLeaderElection makes the manager run the Loader on every replica.
func (*Loader) NeedLeaderElection() bool { return false }

// Start loads at once and then every PollInterval until ctx ends.
func (l *Loader) Start(ctx context.Context) error {
	if err := l.opts.Validate(); err != nil {
		return err
	}
	poll(ctx, l.opts.PollInterval, l.Load, l.log, "loading serving certificate")
	return nil
}

// Load reads the Secret once and hands a changed serving pair to the Store.
// A missing Secret, or one without a pair yet, is not an error: the Issuer
// on the leader has not written it yet.
func (l *Loader) Load(ctx context.Context) error {
	key := client.ObjectKey{Namespace: l.opts.Namespace, Name: l.opts.SecretName}
	s := &corev1.Secret{}
	err := l.reader.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		l.log.V(1).Info("waiting for certificate Secret", "secret", key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s: %w", key, err)
	}
	certPEM, keyPEM := s.Data[TLSCertKey], s.Data[TLSKeyKey]
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		l.log.V(1).Info("waiting for a serving pair in the certificate Secret", "secret", key)
		return nil
	}
	return l.set(key, certPEM, keyPEM)
}

func (l *Loader) set(key client.ObjectKey, certPEM, keyPEM []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bytes.Equal(certPEM, l.lastCert) && bytes.Equal(keyPEM, l.lastKey) {
		return nil
	}
	pair, err := l.store.set(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("serving pair in Secret %s: %w", key, err)
	}
	l.lastCert, l.lastKey = certPEM, keyPEM
	l.log.Info("loaded serving certificate", "secret", key, "dnsNames", pair.Leaf.DNSNames,
		"ipAddresses", pair.Leaf.IPAddresses, "notAfter", pair.Leaf.NotAfter)
	return nil
}

// poll runs step at once and then every interval until ctx ends. Errors are
// logged, not returned: the next pass may well succeed.
func poll(ctx context.Context, interval time.Duration, step func(context.Context) error, log logr.Logger, what string) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := interval
		if err := step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error(err, what)
			wait = min(interval, retryAfterError)
		}
		timer.Reset(wait)
	}
}
