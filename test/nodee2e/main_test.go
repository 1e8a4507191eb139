// Package nodee2e runs blinkchamber as users run it: `helm install` of the
// chart on a real node (kubelet, containerd, runc), images pulled from a
// registry, the bootstrap Job provisioning Vault in the cluster, and apps
// as Deployments and Jobs whose injected agents run as native sidecars.
// One stack is installed for the package; tests share it and clean up
// what they create.
package nodee2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/test/stack"
)

var st *stack.Stack

func TestMain(m *testing.M) {
	crlog.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	var err error
	st, err = stack.Install(ctx, stack.Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "installing blinkchamber on the local node:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "blinkchamber installed on the local node in %s\n", time.Since(start).Round(time.Second))
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, st.Logs(context.Background()))
	}
	// Stop also checks that the machine is as the node found it.
	if err := st.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the node:", err)
		code = 1
	}
	return code
}
