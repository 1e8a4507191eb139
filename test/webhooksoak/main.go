// Command webhooksoak is `make soak`'s webhook run, which CI does not do: the
// real injector (in this process, over TLS, with a real kube-apiserver behind
// its manager) answers pod admissions from -concurrency clients for
// -duration. It fails on any error, and on goroutines or heap that do not
// come back to where they were before the load once the clients are gone.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

type options struct {
	concurrency int
	duration    time.Duration
	settle      time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.concurrency, "concurrency", 64, "clients sending admissions at once")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the load runs")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "pause after the load before measuring again")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "webhooksoak:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	crlog.SetLogger(logr.Discard())
	ctx := context.Background()
	kube, err := harness.StartKube(ctx, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = kube.Stop() }()
	dir, err := os.MkdirTemp("", "webhooksoak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := injector.NewConfig()
	cfg.AgentImage, cfg.VaultAddr = "ghcr.io/blinkchamber/agent:soak", "https://vault.vault.svc:8200"
	cfg.MetricsBindAddress, cfg.HealthProbeBindAddress, cfg.Namespace, cfg.CertDir = "0", "0", "blinkchamber-system", dir
	caPEM, err := harness.ServingCertDir(dir)
	if err != nil {
		return err
	}
	inj, err := kube.StartInjector(cfg, logr.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = inj.Stop() }()
	if err := inj.WaitServing(ctx, caPEM); err != nil {
		return err
	}
	body, err := review()
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: o.concurrency}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	// A short warm-up fills pools and caches; the baseline is taken after.
	if _, err := load(hc, inj.URL(), body, o.concurrency, 2*time.Second); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	tr.CloseIdleConnections()
	time.Sleep(o.settle)
	before := measure()
	res, err := load(hc, inj.URL(), body, o.concurrency, o.duration)
	if err != nil {
		return err
	}
	tr.CloseIdleConnections()
	time.Sleep(o.settle)
	after := measure()
	fmt.Printf("webhook soak: concurrency %d for %s: %d admissions (%.0f/s), %d errors; latency p50 %s p99 %s max %s\n",
		o.concurrency, o.duration, res.ok, float64(res.ok)/o.duration.Seconds(), res.errors, res.p(0.50), res.p(0.99), res.p(1))
	fmt.Printf("before: %d goroutines, heap %.1f MiB; after: %d goroutines, heap %.1f MiB\n",
		before.goroutines, mib(before.heap), after.goroutines, mib(after.heap))
	var errs []error
	if res.errors > 0 {
		errs = append(errs, fmt.Errorf("%d failed admissions; first: %s", res.errors, res.first))
	}
	if after.goroutines > before.goroutines+5 {
		errs = append(errs, fmt.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines))
	}
	if after.heap > before.heap*3/2+4<<20 {
		errs = append(errs, fmt.Errorf("heap grew from %.1f to %.1f MiB", mib(before.heap), mib(after.heap)))
	}
	return errors.Join(errs...)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

type snapshot struct {
	goroutines int
	heap       uint64
}

func measure() snapshot {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return snapshot{goroutines: runtime.NumGoroutine(), heap: m.HeapAlloc}
}

type result struct {
	ok, errors int64
	first      string
	latencies  []time.Duration
}

func (r *result) p(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)-1))
	return r.latencies[i]
}

// load sends the review from n clients for d; every answer must be an
// allowed injection with a patch.
func load(hc *http.Client, url string, body []byte, n int, d time.Duration) (*result, error) {
	res := &result{}
	var ok, failed atomic.Int64
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for time.Now().Before(deadline) {
				start := time.Now()
				err := admit(hc, url, body)
				lat = append(lat, time.Since(start))
				if err == nil {
					ok.Add(1)
					continue
				}
				if failed.Add(1) == 1 {
					mu.Lock()
					res.first = err.Error()
					mu.Unlock()
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.ok, res.errors = ok.Load(), failed.Load()
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	if res.ok == 0 {
		return res, fmt.Errorf("no admission succeeded: %s", res.first)
	}
	return res, nil
}

func admit(hc *http.Client, url string, body []byte) error {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	if out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		return fmt.Errorf("not an injection: %s", b)
	}
	return nil
}

// review is what the API server sends for a Deployment's pod with three
// secrets.
func review() ([]byte, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "shop-7d9f-", Namespace: "shop", Annotations: map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/shop/app/db",
			mutate.PrefixSecret + "api": "secret/data/shop/app/api", mutate.PrefixSecret + "creds": "database/creds/shop",
		}},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "example/app:1.0"}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "soak", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Operation: admissionv1.Create,
			Namespace: "shop", Object: k8sruntime.RawExtension{Raw: raw}},
	})
}
