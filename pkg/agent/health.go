package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Handler serves /healthz (the process answers), /startupz (the first
// render is complete), /readyz (and the last refresh worked) and /metrics.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /startupz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.status.started() {
			http.Error(w, "first render not complete", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := a.status.ready()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, why)
	})
	mux.Handle("GET /metrics", a.metrics.registry.Handler())
	return mux
}

// MetricsHandler serves /metrics only: it is what the pod exposes beyond
// localhost, and readiness details are not for other pods.
func (a *Agent) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.registry.Handler())
	return mux
}

// ServeHealth listens on the config's localhost address until ctx ends.
func (a *Agent) ServeHealth(ctx context.Context) error {
	return serve(ctx, a.cfg.HealthAddr, "health endpoint", a.Handler())
}

// ServeMetrics serves MetricsHandler on the config's metrics address until
// ctx ends; it does nothing when none is configured.
func (a *Agent) ServeMetrics(ctx context.Context) error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	return serve(ctx, a.cfg.MetricsAddr, "metrics endpoint", a.MetricsHandler())
}

func serve(ctx context.Context, addr, what string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Probe asks a running agent's /startupz; the injected startup probe runs
// `blinkchamber-agent probe`, which calls this.
func Probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/startupz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("agent not answering at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent not started: %s", body)
	}
	return nil
}
