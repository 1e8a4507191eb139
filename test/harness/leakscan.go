package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/test/leakform"
)

// LeakScan looks for known secret values (generated passwords, unseal keys,
// tokens) everywhere the team's rule says they must never appear: logs,
// Events and pod annotations in the test's namespaces, /metrics output, and
// the argument lists of the processes a test starts. A test registers the
// secrets it knows and the places to look, then calls Check at the end.
type LeakScan struct {
	kube *Kube

	mu         sync.Mutex
	secrets    map[string]string // label -> value
	sources    []source
	namespaces []string
	cmdlines   map[string][]byte // "pid <n> (<exe>)" -> argv as read
	stop       context.CancelFunc
	sampler    sync.WaitGroup
}

type source struct {
	name  string
	fetch func(ctx context.Context) ([]byte, error)
}

// ErrLeak is wrapped by Check's error when a secret was found.
var ErrLeak = errors.New("secret value found")

// NewLeakScan returns an empty scan; k may be nil when no API server is
// involved (no Events or annotations are then read).
func NewLeakScan(k *Kube) *LeakScan {
	return &LeakScan{kube: k, secrets: map[string]string{}, cmdlines: map[string][]byte{}}
}

// Secret registers a value that must appear nowhere, in any derived form;
// label names it in findings, which never quote the value. Values shorter
// than 8 bytes are ignored: they would match by chance.
func (s *LeakScan) Secret(label, value string) {
	if len(value) < 8 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[label] = value
}

// Source adds a place to read at Check time.
func (s *LeakScan) Source(name string, fetch func(ctx context.Context) ([]byte, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = append(s.sources, source{name, fetch})
}

// Output adds captured output (a log buffer); String is read at Check time.
func (s *LeakScan) Output(name string, out fmt.Stringer) {
	s.Source(name, func(context.Context) ([]byte, error) { return []byte(out.String()), nil })
}

// File adds a log file read at Check time.
func (s *LeakScan) File(name, path string) {
	s.Source(name, func(context.Context) ([]byte, error) { return os.ReadFile(path) })
}

// MetricsURL adds a /metrics endpoint fetched at Check time.
func (s *LeakScan) MetricsURL(name, url string) {
	s.Source(name, func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	})
}

// Gatherer adds an in-process Prometheus registry (an injector run by the
// test shares controller-runtime's), written as /metrics would serve it.
func (s *LeakScan) Gatherer(name string, g prometheus.Gatherer) {
	s.Source(name, func(context.Context) ([]byte, error) {
		mfs, err := g.Gather()
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				return nil, err
			}
		}
		return b.Bytes(), nil
	})
}

// Namespaces adds the Events and pod annotations of namespaces.
func (s *LeakScan) Namespaces(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namespaces = append(s.namespaces, names...)
}

// Processes samples /proc until Check: every process whose executable's
// base name is one of exes has its argument list recorded while it runs.
func (s *LeakScan) Processes(exes ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.sampler.Add(1)
	go func() {
		defer s.sampler.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			s.sampleProcesses(exes)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (s *LeakScan) sampleProcesses(exes []string) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		argv, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(argv) == 0 {
			continue
		}
		exe := filepath.Base(string(bytes.SplitN(argv, []byte{0}, 2)[0]))
		for _, want := range exes {
			if exe == want {
				pid, _ := strconv.Atoi(filepath.Base(d))
				s.mu.Lock()
				s.cmdlines[fmt.Sprintf("pid %d (%s) argument list", pid, exe)] = argv
				s.mu.Unlock()
			}
		}
	}
}

// Sampled is how many process argument lists were recorded, so that a test
// can tell that the scan saw the processes it started.
func (s *LeakScan) Sampled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cmdlines)
}

// Check reads every source and fails, naming the secret, the form and the
// place, on any registered secret found there in any form leakform
// derives (a substring of 8 bytes or more, case-changed, reversed, hex,
// base64, percent-encoded or quoted). Unreadable sources are errors too: a
// scan that silently skipped a place would prove nothing.
func (s *LeakScan) Check(ctx context.Context) error {
	if s.stop != nil {
		s.stop()
		s.sampler.Wait()
	}
	places, err := s.collect(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.secrets) == 0 {
		return errors.Join(err, errors.New("leak scan: no secrets registered; the scan would prove nothing"))
	}
	m := leakform.New()
	for label, value := range s.secrets {
		m.Add(label, value)
	}
	var found []error
	for place, text := range places {
		found = append(found, FindLeaks(m, place, text)...)
	}
	return errors.Join(append(found, err)...)
}

// FindLeaks reports, without quoting them, the values of m found in text.
func FindLeaks(m *leakform.Matcher, place string, text []byte) []error {
	var found []error
	for _, f := range m.Find(text) {
		line := 1 + bytes.Count(text[:f.Offset], []byte("\n"))
		found = append(found, fmt.Errorf("%w: %s (%s) in %s, line %d", ErrLeak, f.Label, f.Kind, place, line))
	}
	return found
}

// collect reads every place; each entry is one named text.
func (s *LeakScan) collect(ctx context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	sources, namespaces := append([]source(nil), s.sources...), append([]string(nil), s.namespaces...)
	places := map[string][]byte{}
	for k, v := range s.cmdlines {
		places[k] = v
	}
	s.mu.Unlock()
	var errs []error
	for _, src := range sources {
		b, err := src.fetch(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("leak scan: reading %s: %w", src.name, err))
			continue
		}
		places[src.name] = b
	}
	for _, ns := range namespaces {
		if err := s.collectNamespace(ctx, ns, places); err != nil {
			errs = append(errs, err)
		}
	}
	return places, errors.Join(errs...)
}

func (s *LeakScan) collectNamespace(ctx context.Context, ns string, places map[string][]byte) error {
	if s.kube == nil {
		return fmt.Errorf("leak scan: namespace %s given without an API server", ns)
	}
	var events corev1.EventList
	if err := s.kube.Client.List(ctx, &events, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("leak scan: listing Events in %s: %w", ns, err)
	}
	for _, e := range events.Items {
		places["Event "+ns+"/"+e.Name] = []byte(e.Reason + "\n" + e.Message)
	}
	var pods corev1.PodList
	if err := s.kube.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("leak scan: listing pods in %s: %w", ns, err)
	}
	for _, p := range pods.Items {
		var b strings.Builder
		for k, v := range p.Annotations {
			b.WriteString(k + "=" + v + "\n")
		}
		places["annotations of pod "+ns+"/"+p.Name] = []byte(b.String())
		// Conditions, container states and termination messages.
		st, err := json.Marshal(p.Status)
		if err != nil {
			return fmt.Errorf("leak scan: encoding the status of pod %s/%s: %w", ns, p.Name, err)
		}
		places["status of pod "+ns+"/"+p.Name] = st
	}
	return nil
}
