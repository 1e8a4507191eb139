package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// servedParts are the functions whose shares say where the served
// injector's CPU goes, TLS and HTTP/2 included.
var servedParts = []share{
	{label: "HTTP/2 handler goroutines, all of the admission", function: "net/http.(*http2serverConn).runHandler"},
	{label: "review and pod decode, one pass", function: "github.com/blinkchamber/blinkchamber/pkg/injector.readReview"},
	{label: "mutation (pkg/mutate.Mutate)", function: "github.com/blinkchamber/blinkchamber/pkg/mutate.Mutate"},
	{label: "JSON patch, all of it", function: "github.com/blinkchamber/blinkchamber/pkg/injector.podPatch"},
	{label: "of which controller-runtime's diff", function: "gomodules.xyz/jsonpatch/v2.CreatePatch"},
	{label: "patch operations to JSON", function: "sigs.k8s.io/controller-runtime/pkg/webhook/admission.(*Response).Complete"},
	{label: "HTTP/2 frames read (TLS, syscalls)", function: "net/http.(*http2serverConn).readFrames"},
	{label: "HTTP/2 frames written (TLS, syscalls)", function: "net/http.(*http2serverConn).writeFrameAsync"},
	{label: "goroutine stacks grown (a fresh goroutine per request)", function: "runtime.newstack"},
	{label: "garbage collector, background", function: "runtime.gcBgMarkWorker"},
}

// servedProfile drives the injector with the target pod at the target
// concurrency while its own pprof endpoint takes a CPU profile of dur, and
// returns the shares of servedParts. bin is the injector's binary, for
// pprof's symbols.
func servedProfile(ctx context.Context, c *http.Client, s *served, bin, dir string, warmup, dur time.Duration) ([]share, error) {
	r, err := newRequest(targetSecrets)
	if err != nil {
		return nil, err
	}
	loadErr := make(chan error, 1)
	go func() {
		_, err := drive(ctx, c, s.url, r, targetConcurrency, warmup, dur+time.Second, s.cmd.Process.Pid)
		loadErr <- err
	}()
	time.Sleep(warmup)
	path := filepath.Join(dir, "served.prof")
	perr := fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", s.pprofURL, int(dur.Seconds())), path)
	if err := <-loadErr; err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, fmt.Errorf("profiling the injector: %w", perr)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", bin, path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %w", err)
	}
	return cumShares(string(top), servedParts), nil
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
