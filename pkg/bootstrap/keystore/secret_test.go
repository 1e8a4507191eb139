package keystore

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/test/harness"
)

// TestKubernetesSecret runs the Secret store against a real kube-apiserver.
func TestKubernetesSecret(t *testing.T) {
	kube := harness.KubeForTest(t)
	ctx := context.Background()
	c := kube.Client
	const ns = "blinkchamber"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	t.Run("save and load", func(t *testing.T) {
		s := NewKubernetesSecret(c, ns, "vault-unseal-keys")
		if d := s.Describe(); d != "kubernetes secret blinkchamber/vault-unseal-keys" {
			t.Errorf("Describe: %q", d)
		}
		if _, err := s.Load(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load before Save: %v", err)
		}
		k := testKeys("a")
		if err := s.Save(ctx, k); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !Same(got, k) || !got.CreatedAt.Equal(k.CreatedAt) {
			t.Errorf("loaded %v, saved %v", got, k)
		}

		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vault-unseal-keys"}, &sec); err != nil {
			t.Fatal(err)
		}
		if sec.Type != corev1.SecretTypeOpaque || sec.Immutable == nil || !*sec.Immutable || len(sec.Data) != 1 || sec.Data[SecretKey] == nil {
			t.Errorf("secret: type %s, immutable %v, keys %d", sec.Type, sec.Immutable, len(sec.Data))
		}
		rv := sec.ResourceVersion

		again := testKeys("a")
		again.CreatedAt = again.CreatedAt.Add(1)
		if err := s.Save(ctx, again); err != nil {
			t.Errorf("saving the same keys again: %v", err)
		}
		other := testKeys("b")
		err = s.Save(ctx, other)
		if !errors.Is(err, ErrExists) {
			t.Errorf("saving different keys: %v, want ErrExists", err)
		}
		assertNoLeak(t, errString(err), k)
		assertNoLeak(t, errString(err), other)

		// The API server itself refuses to change the keys.
		sec.Data[SecretKey] = []byte(`{"rootToken":"replaced"}`)
		if err := c.Update(ctx, &sec); err == nil || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("updating the immutable Secret: %v", err)
		}
		var now corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vault-unseal-keys"}, &now); err != nil {
			t.Fatal(err)
		}
		if now.ResourceVersion != rv {
			t.Errorf("the Secret changed: resourceVersion %s -> %s", rv, now.ResourceVersion)
		}
	})

	t.Run("a Secret blinkchamber did not write is left alone", func(t *testing.T) {
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign"},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"password": []byte("hunter2")},
		}
		if err := c.Create(ctx, foreign); err != nil {
			t.Fatal(err)
		}
		s := NewKubernetesSecret(c, ns, "foreign")
		if _, err := s.Load(ctx); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "has no keys.json") {
			t.Errorf("Load: %v", err)
		}
		k := testKeys("a")
		err := s.Save(ctx, k)
		if err == nil || errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "left alone") {
			t.Errorf("Save: %v", err)
		}
		assertNoLeak(t, errString(err), k)
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKeyFromObject(foreign), &sec); err != nil {
			t.Fatal(err)
		}
		if len(sec.Data) != 1 || string(sec.Data["password"]) != "hunter2" {
			t.Errorf("the foreign Secret changed")
		}
	})

	t.Run("corrupt keys.json", func(t *testing.T) {
		bad := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corrupt"},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{SecretKey: []byte(`{"rootToken":"hvs.TRUNCATED`)},
		}
		if err := c.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		_, err := NewKubernetesSecret(c, ns, "corrupt").Load(ctx)
		if err == nil || errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "TRUNCATED") {
			t.Errorf("Load: %v", err)
		}
	})

	t.Run("missing namespace", func(t *testing.T) {
		s := NewKubernetesSecret(c, "no-such-namespace", "keys")
		if _, err := s.Load(ctx); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load: %v", err)
		}
		k := testKeys("a")
		err := s.Save(ctx, k)
		if err == nil {
			t.Fatal("Save succeeded")
		}
		assertNoLeak(t, err.Error(), k)
	})
}
