package nodee2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/stack"
)

// podState is what must not change across an upgrade that onboards an app.
type podState struct {
	UID      string
	Restarts int32
}

func podStates(t *testing.T, ctx context.Context, ns, selector string) map[string]podState {
	t.Helper()
	pods, err := st.Node.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]podState{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			continue // the finished bootstrap Job's pod
		}
		s := podState{UID: string(p.UID)}
		for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			s.Restarts += c.RestartCount
		}
		out[p.Name] = s
	}
	return out
}

// TestHelmUpgradeOnboardsAnApp: README's "Onboard an app", as written:
// `helm upgrade` with its values snippet makes the bootstrap Job provision
// the app, whose annotated pod then gets its generated and its provided
// secret; the injector, Vault and an app already running are untouched.
// Removing the entry keeps the app's Vault objects; with prune they go,
// and the running app's stay.
func TestHelmUpgradeOnboardsAnApp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := st.Node.Clientset
	b, err := os.ReadFile(filepath.Join("..", "e2e", "testdata", "onboard", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var snippet map[string]any
	if err := yaml.Unmarshal(b, &snippet); err != nil {
		t.Fatal(err)
	}
	// An app onboarded earlier (with the CLI), running.
	const steady = "steady"
	_, err = st.Onboard(ctx, steady)
	must(t, err)
	steadyPod, err := st.Deploy(ctx, steady, st.AppTemplate(steady, nil, "watch", "-interval", "500ms", mutate.SecretsPath+"/db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.AppsV1().Deployments(appsNS).Delete(context.Background(), steady, metav1.DeleteOptions{})
	before := podStates(t, ctx, stack.Namespace, "")
	apps := podStates(t, ctx, appsNS, "app="+steady)

	provided := []byte("vendor-key-" + steadyPod.Name)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-payments", Namespace: stack.Namespace}, Data: map[string][]byte{"api-key": provided}}
	if _, err := cs.CoreV1().Secrets(stack.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer cs.CoreV1().Secrets(stack.Namespace).Delete(context.Background(), sec.Name, metav1.DeleteOptions{})
	defer cs.CoreV1().Namespaces().Delete(context.Background(), "shop", metav1.DeleteOptions{})
	if err := st.Upgrade(ctx, snippet); err != nil {
		t.Fatal(err)
	}

	pod := shopPod(t, ctx)
	want := sha256.Sum256(provided)
	if !shopEvent(t, ctx, pod, hex.EncodeToString(want[:])) {
		t.Error("the shop pod never read the provided api-key from Vault")
	}
	if after := podStates(t, ctx, stack.Namespace, ""); !sameStates(before, after) {
		t.Errorf("the upgrade restarted release pods:\nbefore %v\nafter  %v", before, after)
	}
	if after := podStates(t, ctx, appsNS, "app="+steady); !sameStates(apps, after) {
		t.Errorf("the upgrade touched the running app:\nbefore %v\nafter  %v", apps, after)
	}

	vc, err := st.Vault(ctx)
	must(t, err)
	policy := func(name string) bool {
		p, err := vc.Sys().GetPolicyWithContext(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return p != ""
	}
	shopPolicy, steadyPolicy := "blinkchamber-shop-shop", "blinkchamber-"+appsNS+"-"+steady
	if err := st.Upgrade(ctx, map[string]any{"onboarding": map[string]any{"apps": []any{}}}); err != nil {
		t.Fatal(err)
	}
	if !policy(shopPolicy) {
		t.Error("removing the entry without prune removed its policy")
	}
	if err := st.Upgrade(ctx, map[string]any{"onboarding": map[string]any{"apps": []any{}, "prune": true}}); err != nil {
		t.Fatal(err)
	}
	if policy(shopPolicy) {
		t.Error("prune kept the removed app's policy")
	}
	for _, p := range []string{"secret/metadata/shop/shop/db", "secret/metadata/shop/shop/payments"} {
		if s, err := vc.Logical().ReadWithContext(ctx, p); err != nil || s != nil {
			t.Errorf("after prune %s: %v, %v; want it gone", p, s != nil, err)
		}
	}
	if !policy(steadyPolicy) {
		t.Error("prune removed the policy of an app the CLI onboarded")
	}
}

func sameStates(a, b map[string]podState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// shopPod runs the README's step 2: a Deployment in namespace shop whose
// pod, annotated, renders the provided key of secret payments.
func shopPod(t *testing.T, ctx context.Context) string {
	t.Helper()
	const path = "secret/data/shop/shop/payments"
	tmpl := st.AppTemplate("shop", map[string]string{
		mutate.PrefixSecret + "db":   path,
		mutate.PrefixTemplate + "db": `{{ with secret "` + path + `" }}{{ index .Data.data "api-key" }}{{ end }}`,
	}, "watch", "-interval", "500ms", mutate.SecretsPath+"/db")
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl}}
	if _, err := st.Node.Clientset.AppsV1().Deployments("shop").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		pods, err := st.Node.Clientset.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
		if err == nil {
			for _, p := range pods.Items {
				if stack.Ready(&p) {
					return p.Name
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no Ready shop pod: %s", stack.DescribePods(pods))
		case <-time.After(time.Second):
		}
	}
}

// shopEvent waits for the test app to report a file with digest.
func shopEvent(t *testing.T, ctx context.Context, pod, digest string) bool {
	t.Helper()
	for ctx.Err() == nil {
		raw, _ := st.Node.Clientset.CoreV1().Pods("shop").GetLogs(pod, &corev1.PodLogOptions{Container: "app"}).DoRaw(ctx)
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var e stack.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "file" && e.SHA256 == digest {
				return true
			}
		}
		time.Sleep(time.Second)
	}
	return false
}
