package mutate

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// TestRotationRejected: each bad rotation annotation, or a pod on which a
// signal cannot work, is refused naming the annotation and saying why.
func TestRotationRejected(t *testing.T) {
	uid := func(pod *corev1.Pod, u int64) {
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To(u)}
	}
	for _, tc := range []struct {
		name   string
		ann    map[string]string
		pod    func(*corev1.Pod)
		key    string
		reason string
	}{
		{"signal without colon", withInject(PrefixSignal+"db", "SIGHUP"), nil, PrefixSignal + "db", "SIGNAL:process"},
		{"signal KILL", withInject(PrefixSignal+"db", "SIGKILL:nginx"), nil, PrefixSignal + "db", "unknown or refused signal"},
		{"signal path as process", withInject(PrefixSignal+"db", "HUP:/usr/sbin/nginx"), nil, PrefixSignal + "db", "without /"},
		{"signal empty process", withInject(PrefixSignal+"db", "HUP:"), nil, PrefixSignal + "db", "empty"},
		{"signal without secret", map[string]string{AnnotationInject: "true", PrefixSecret + "db": "secret/data/a/b", PrefixSignal + "tls": "HUP:nginx"}, nil, PrefixSignal + "tls", "has no"},
		{"reload URL off the pod", withInject(PrefixReloadURL+"db", "http://10.0.0.1:8080/-/reload"), nil, PrefixReloadURL + "db", "loopback"},
		{"reload URL host name", withInject(PrefixReloadURL+"db", "http://api.shop.svc/-/reload"), nil, PrefixReloadURL + "db", "loopback"},
		{"reload URL credentials", withInject(PrefixReloadURL+"db", "http://u:p@localhost/-/reload"), nil, PrefixReloadURL + "db", "credentials"},
		{"reload URL scheme", withInject(PrefixReloadURL+"db", "unix:///run/app.sock"), nil, PrefixReloadURL + "db", "http://"},
		{"format unknown", withInject(PrefixFormat+"db", "dotenv"), nil, PrefixFormat + "db", `"env"`},
		{"signal with sharing off", withInject(PrefixSignal+"db", "HUP:nginx"), func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(false) }, PrefixSignal + "db", "shareProcessNamespace is false"},
		{"signal to another uid", withInject(PrefixSignal+"db", "HUP:nginx", AnnotationRunAsUser, "2000"), func(p *corev1.Pod) { uid(p, 101) }, PrefixSignal + "db", "runs as uid 2000"},
		{"signal to root app", withInject(PrefixSignal+"db", "HUP:nginx"), func(p *corev1.Pod) { uid(p, 0) }, PrefixSignal + "db", "never runs as root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.ann)
			if tc.pod != nil {
				tc.pod(pod)
			}
			before := pod.DeepCopy()
			_, err := Mutate(pod, goldenOptions())
			var inv *InvalidError
			if !errors.As(err, &inv) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Mutate error %v, want an InvalidError", err)
			}
			found := false
			for _, e := range inv.Errs {
				if e.Field == keyPath(tc.key).String() && strings.Contains(e.Detail, tc.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error on %s saying %q; got %v", tc.key, tc.reason, inv.Errs)
			}
			if pod.Spec.ShareProcessNamespace != before.Spec.ShareProcessNamespace && (pod.Spec.ShareProcessNamespace == nil || *pod.Spec.ShareProcessNamespace) {
				t.Errorf("a refused pod was changed")
			}
		})
	}
}

// TestRotationAccepted checks the parsed actions and that process sharing
// is turned on only for a signal.
func TestRotationAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		pod   func(*corev1.Pod)
		check func(*testing.T, agent.Secret)
		share bool
	}{
		{"signal, agent as the app's uid", withInject(PrefixSignal+"db", "hup:nginx"), func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(101))}
		}, func(t *testing.T, s agent.Secret) {
			if s.Signal == nil || *s.Signal != (agent.Signal{Signal: "SIGHUP", Process: "nginx"}) {
				t.Errorf("signal %+v", s.Signal)
			}
		}, true},
		{"signal, app uid from its image", withInject(PrefixSignal+"db", "SIGUSR1:app"), nil, func(t *testing.T, s agent.Secret) {
			if s.Signal == nil || s.Signal.Signal != "SIGUSR1" {
				t.Errorf("signal %+v", s.Signal)
			}
		}, true},
		{"signal with sharing already on", withInject(PrefixSignal+"db", "HUP:app"), func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }, nil, true},
		{"reload on [::1]", withInject(PrefixReloadURL+"db", "https://[::1]:9443/reload"), nil, func(t *testing.T, s agent.Secret) {
			if s.ReloadURL != "https://[::1]:9443/reload" {
				t.Errorf("reload URL %q", s.ReloadURL)
			}
		}, false},
		{"env format default template", withInject(PrefixFormat+"db", "env"), nil, func(t *testing.T, s agent.Secret) {
			if s.Format != agent.FormatEnv || s.Template != DefaultEnvTemplate("secret/data/ns/app/db") {
				t.Errorf("format %q template %q", s.Format, s.Template)
			}
		}, false},
		{"env format keeps a custom template", withInject(PrefixFormat+"db", "env", PrefixTemplate+"db", `{"A":"b"}`), nil, func(t *testing.T, s agent.Secret) {
			if s.Template != `{"A":"b"}` {
				t.Errorf("template %q", s.Template)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.ann)
			if tc.pod != nil {
				tc.pod(pod)
			}
			spec, errs := Parse(pod)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if tc.check != nil {
				tc.check(t, spec.Secrets[0])
			}
			if _, err := Mutate(pod, goldenOptions()); err != nil {
				t.Fatal(err)
			}
			if got := pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace; got != tc.share {
				t.Errorf("shareProcessNamespace %v, want %v", got, tc.share)
			}
		})
	}
}
