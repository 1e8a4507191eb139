package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/pkg/certs"
	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// tcpProxy forwards TCP connections to the first of its targets that
// accepts one. As a Service's front it stands in for kube-proxy (there is
// no kube-proxy here); as an injector's way to the API server it can be cut,
// a fault the real API server cannot produce for one client only.
type tcpProxy struct {
	l       net.Listener
	targets []string
	cut     atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]bool
	next    atomic.Uint64
}

func newTCPProxy(t *testing.T, targets ...string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, targets: targets, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = l.Close(); p.drop() })
	go p.serve()
	return p
}

func (p *tcpProxy) addr() string { return p.l.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			_ = c.Close()
			continue
		}
		go p.forward(c)
	}
}

// forward round-robins over the targets, skipping one that refuses, as
// endpoints of a stopped pod drop out of a Service.
func (p *tcpProxy) forward(c net.Conn) {
	start := p.next.Add(1)
	var up net.Conn
	for i := range p.targets {
		target := p.targets[(int(start)+i)%len(p.targets)]
		var err error
		if up, err = net.DialTimeout("tcp", target, time.Second); err == nil {
			break
		}
	}
	if up == nil {
		_ = c.Close()
		return
	}
	p.track(c, up)
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	p.untrack(c, up)
}

func (p *tcpProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// setCut refuses (true) or forwards (false) new connections; cutting also
// drops the open ones.
func (p *tcpProxy) setCut(cut bool) {
	p.cut.Store(cut)
	if cut {
		p.drop()
	}
}

func (p *tcpProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

// replica is one injector process of a two-replica Deployment: its own
// webhook port, its own (cuttable) way to the API server, its own log.
type replica struct {
	name  string
	port  int
	api   *tcpProxy
	log   *syncBuffer
	inj   *harness.Injector
	kube  *harness.Kube
	start func() error
}

const haNamespace, haMWC, haSecret = "blinkchamber-ha", "blinkchamber-e2e-ha", "blinkchamber-e2e-ha-tls"

func newReplica(t *testing.T, name string) *replica {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	host, err := url.Parse(kube.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, port: port, api: newTCPProxy(t, host.Host), log: &syncBuffer{}}
	rc := rest.CopyConfig(kube.Config)
	rc.Host = "https://" + r.api.addr()
	r.kube = &harness.Kube{Config: rc}
	t.Cleanup(func() {
		if r.inj != nil {
			_ = r.inj.Stop()
		}
	})
	return r
}

// run starts (or restarts) the replica's injector.
func (r *replica) run(t *testing.T) {
	t.Helper()
	cfg := injectorConfig()
	cfg.Namespace = haNamespace
	cfg.WebhookConfigName = haMWC
	cfg.CertSecretName = haSecret
	cfg.LeaderElect = true
	_ = cfg.CertHosts.Set("127.0.0.1")
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(r.log, prefix, args) }, funcr.Options{})
	inj, err := r.kube.StartInjectorOnPort(cfg, r.port, log)
	if err != nil {
		t.Fatal(err)
	}
	r.inj = inj
}

// writes counts the certificate writes this replica logged.
func (r *replica) writes() int {
	s := r.log.String()
	return strings.Count(s, "updated caBundle") + strings.Count(s, "created certificate Secret") + strings.Count(s, "updated certificate Secret")
}

// haLoad drives admissions through the API server and TLS handshakes
// through the front, as the API server makes them, until stopped.
type haLoad struct {
	admitted, handshakes atomic.Int64
	mu                   sync.Mutex
	admissionErrs        []string
	handshakeErrs        []string
	otherDialErrs        int
	stop                 context.CancelFunc
	wg                   sync.WaitGroup
}

func startHALoad(t *testing.T, front string) *haLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &haLoad{stop: cancel}
	for w := range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				pod := restrictedPod("ha", fmt.Sprintf("load-%d-%d", w, i), "app",
					map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/ha/app/db"})
				pod.Labels = map[string]string{routeLabel: "ha"}
				err := kube.Client.Create(ctx, pod, client.DryRunAll)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					l.fail(&l.admissionErrs, fmt.Sprintf("%s %v", stamp(), err))
				case pod.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected:
					l.fail(&l.admissionErrs, "admitted without injection")
				default:
					l.admitted.Add(1)
				}
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			l.handshake(ctx, front)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return l
}

func (l *haLoad) fail(list *[]string, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*list = append(*list, msg)
}

// handshake trusts what the API server trusts: the caBundle as it is now.
func (l *haLoad) handshake(ctx context.Context, front string) {
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Name: haMWC}, mwc); err != nil {
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle)
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", front)
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	switch {
	case err == nil:
		_ = c.Close()
		l.handshakes.Add(1)
	case ctx.Err() != nil:
	case errors.As(err, &verify) || errors.As(err, &alert):
		l.fail(&l.handshakeErrs, fmt.Sprintf("%s %v", stamp(), err))
	default:
		// A connection dropped by a replica stopping is not a TLS failure.
		l.mu.Lock()
		l.otherDialErrs++
		l.mu.Unlock()
	}
}

func (l *haLoad) finish() {
	l.stop()
	l.wg.Wait()
}

// dueCA re-issues the Secret's current CA certificate with the same key and
// subject but an expiry within the renewal window: the serving certificate
// still verifies under it, and the next issuer pass must rotate the CA.
func dueCA(t *testing.T, ctx context.Context) {
	t.Helper()
	s := &corev1.Secret{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: haNamespace, Name: haSecret}, s); err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(s.Data[certs.CACertKey])
	kb, _ := pem.Decode(s.Data[certs.CAKeyKey])
	if cb == nil || kb == nil {
		t.Fatal("no CA in the Secret")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *ca
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.NotAfter = time.Now().Add(2 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, ca.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	s.Data[certs.CACertKey] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := kube.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func waitLog(t *testing.T, ctx context.Context, within time.Duration, what string, rs ...*replica) *replica {
	t.Helper()
	var who *replica
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, within, true, func(context.Context) (bool, error) {
		for _, r := range rs {
			if strings.Contains(r.log.String(), what) {
				who = r
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no replica logged %q within %s", what, within)
	}
	return who
}

// TestInjectorReplicasUnderFaults runs two self-managed injector replicas
// with leader election behind one front, with admissions through the API
// server and TLS handshakes (trusting the caBundle of the moment) running
// all the time, and:
//  1. stops the leader while the CA is due: the other replica takes over
//     and rotates it, the stopped one is restarted;
//  2. cuts the new leader off the API server while the CA is due again:
//     the other replica takes over and rotates it, the cut one keeps
//     serving (it loses its lease, not its certificate) and is restarted
//     once the API server is reachable again.
//
// It asserts: no failed TLS handshake, no failed admission beyond one per
// replica stopped while requests were in flight, and at any time only the
// leader writes the Secret and the caBundle.
func TestInjectorReplicasUnderFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := ensureNamespace(ctx, haNamespace); err != nil {
		t.Fatal(err)
	}
	if err := kube.Namespace(ctx, "ha", true, "app"); err != nil {
		t.Fatal(err)
	}
	a, b := newReplica(t, "a"), newReplica(t, "b")
	front := newTCPProxy(t, fmt.Sprintf("127.0.0.1:%d", a.port), fmt.Sprintf("127.0.0.1:%d", b.port))
	createAndCleanup(t, ctx, harness.WebhookConfig(haMWC, "https://"+front.addr()+injector.Path, nil,
		&metav1.LabelSelector{MatchLabels: map[string]string{routeLabel: "ha"}}))
	t.Cleanup(func() {
		_ = kube.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: haNamespace, Name: haSecret}})
	})

	a.run(t)
	bundle := waitBundle(t, ctx, 1)
	if err := a.inj.WaitServing(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	b.run(t)
	if err := b.inj.WaitServing(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	if a.writes() == 0 || b.writes() != 0 {
		t.Fatalf("first leader: a wrote %d times, b %d; want only a", a.writes(), b.writes())
	}
	load := startHALoad(t, front.addr())
	time.Sleep(3 * time.Second)

	t.Log(stamp(), "phase 1: the leader stops while the CA is due")
	aWrites, bWrites := a.writes(), b.writes()
	dueCA(t, ctx)
	if err := a.inj.Stop(); err != nil {
		t.Logf("replica a stopped: %v", err)
	}
	if who := waitLog(t, ctx, 90*time.Second, "rotated CA", a, b); who != b {
		t.Fatalf("replica %s rotated the CA; want b, the new leader", who.name)
	}
	waitBundle(t, ctx, 2)
	a.run(t)
	if err := a.inj.WaitServing(ctx, waitBundle(t, ctx, 2)); err != nil {
		t.Fatal(err)
	}
	if a.writes() != aWrites {
		t.Errorf("phase 1: replica a (stopped, then a follower) wrote %d times", a.writes()-aWrites)
	}
	// Both replicas must serve the new CA's certificate before the next
	// rotation drops the CA before it: two rotations seconds apart are this
	// test's doing, a loader polls every 5 s.
	for _, r := range []*replica{a, b} {
		if err := r.inj.WaitServing(ctx, currentCA(t, ctx)); err != nil {
			t.Fatalf("replica %s never served the new CA's certificate: %v", r.name, err)
		}
	}
	t.Logf("%s phase 1: b wrote %d times; admitted %d so far", stamp(), b.writes()-bWrites, load.admitted.Load())

	t.Log(stamp(), "phase 2: the leader loses the API server while the CA is due")
	aWrites, bWrites = a.writes(), b.writes()
	before := strings.Count(a.log.String(), "rotated CA")
	dueCA(t, ctx)
	b.api.setCut(true)
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return strings.Count(a.log.String(), "rotated CA") > before, nil
	})
	if err != nil {
		t.Fatalf("replica a never took over and rotated the CA: %v\n--- b ---\n%s", err, b.log.String())
	}
	if b.writes() != bWrites {
		t.Errorf("phase 2: replica b, cut off, still wrote %d times", b.writes()-bWrites)
	}
	// b lost its lease but not its certificate: it still serves, with the
	// certificate it loaded before the cut, and did not end itself.
	if err := b.inj.WaitServing(ctx, waitBundle(t, ctx, 2)); err != nil {
		t.Errorf("phase 2: replica b, cut off the API server, stopped serving: %v", err)
	}
	if bErr := b.inj.Stop(); bErr != nil {
		t.Errorf("phase 2: replica b, cut off the API server, ended with: %v", bErr)
	}
	b.api.setCut(false)
	b.run(t)
	if err := b.inj.WaitServing(ctx, waitBundle(t, ctx, 2)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // a loader pass on every replica under load
	load.finish()

	t.Logf("admissions: %d ok, %d failed; handshakes: %d ok, %d failed, %d dropped connections",
		load.admitted.Load(), len(load.admissionErrs), load.handshakes.Load(), len(load.handshakeErrs), load.otherDialErrs)
	if len(load.handshakeErrs) > 0 {
		t.Errorf("failed TLS handshakes during rotation:\n%s", strings.Join(load.handshakeErrs, "\n"))
	}
	if len(load.admissionErrs) > 2 {
		t.Errorf("%d failed admissions, want at most the one in flight at each of the two stops:\n%s",
			len(load.admissionErrs), strings.Join(load.admissionErrs, "\n"))
	} else if len(load.admissionErrs) > 0 {
		t.Logf("admissions that failed (in flight at a stop):\n%s", strings.Join(load.admissionErrs, "\n"))
	}
	if load.admitted.Load() == 0 || load.handshakes.Load() == 0 {
		t.Fatal("no load ran: the test proves nothing")
	}
	if b.writes() != bWrites {
		t.Errorf("replica b, restarted as a follower, wrote %d times", b.writes()-bWrites)
	}
	t.Logf("writes: a %d, b %d in phase 2", a.writes()-aWrites, b.writes()-bWrites)
}

func stamp() string { return time.Now().Format("15:04:05.000") }

// currentCA is the CA certificate the Secret holds now.
func currentCA(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	s := &corev1.Secret{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: haNamespace, Name: haSecret}, s); err != nil {
		t.Fatal(err)
	}
	return s.Data[certs.CACertKey]
}

// waitBundle waits until the webhook's caBundle holds at least n CAs and
// returns it.
func waitBundle(t *testing.T, ctx context.Context, n int) []byte {
	t.Helper()
	var bundle []byte
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: haMWC}, mwc); err != nil {
			return false, err
		}
		bundle = mwc.Webhooks[0].ClientConfig.CABundle
		return strings.Count(string(bundle), "BEGIN CERTIFICATE") >= n, nil
	})
	if err != nil {
		t.Fatalf("the caBundle never held %d CAs: %v", n, err)
	}
	return bundle
}
