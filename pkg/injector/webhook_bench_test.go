package injector_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/types"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/bench/podreview"
)

// BenchmarkAdmission is one whole admission as the webhook server runs it,
// without TLS and sockets: the AdmissionReview a kube-apiserver sends for a
// Deployment's pod is decoded, mutated, diffed into a JSON patch and
// encoded. Allocations are the point; test/bench/webhookbench measures the
// served webhook.
func BenchmarkAdmission(b *testing.B) {
	crlog.SetLogger(logr.Discard())
	for _, secrets := range []int{1, 3, 5, 20} {
		b.Run(fmt.Sprintf("secrets=%d", secrets), func(b *testing.B) {
			wh := benchWebhook(b)
			pod := podreview.Pod(secrets)
			const uid = types.UID("0b9f8a52-0000-4000-8000-000000000003")
			body, err := podreview.Review(pod, uid)
			if err != nil {
				b.Fatal(err)
			}
			// The answer must be the injection, or the numbers mean nothing.
			if err := podreview.Check(serve(wh, body).Body.Bytes(), pod, uid); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				if rec := serve(wh, body); rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
			// On a shared machine wall time per op mostly measures the
			// neighbours; the process's CPU time (GC included) does not.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func benchWebhook(b testing.TB) http.Handler {
	o := mutate.DefaultOptions()
	o.AgentImage = "ghcr.io/blinkchamber/agent:v0.1.0"
	o.VaultAddr = "https://vault.vault.svc:8200"
	m, err := injector.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return injector.NewWebhook(o, m, productionLogger())
}

// productionLogger is the injector's logger (zap's production JSON
// encoder at info level) writing nowhere, so that building per-request
// loggers costs what it costs in the process.
func productionLogger() logr.Logger {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel)
	return zapr.NewLogger(zap.New(core))
}

// processCPU is this process's user+system time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func serve(wh http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, injector.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	return rec
}
