package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The address other pods reach serves metrics and nothing else.
func TestServeMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := validConfig()
	cfg.MetricsAddr = addr
	a, err := New(&cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.ServeMetrics(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	get := func(path string) (int, string) {
		for i := 0; ; i++ {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				if i > 100 {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "blinkchamber_agent_") {
		t.Errorf("/metrics: %d, blinkchamber_agent_ metrics missing", code)
	}
	for _, p := range []string{"/readyz", "/healthz", "/startupz"} {
		if code, _ := get(p); code != http.StatusNotFound {
			t.Errorf("%s on the metrics address: %d, want 404", p, code)
		}
	}
}

func TestServeMetricsOff(t *testing.T) {
	cfg := validConfig()
	a, err := New(&cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.ServeMetrics(ctx); err != nil {
		t.Fatalf("no metrics address: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("ServeMetrics blocked although no address is configured")
	}
}
