package keystore

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretKey is the data key of the Secret that holds the keys as JSON.
const SecretKey = "keys.json"

// secretStore keeps the keys in a Kubernetes Secret: development only, as
// it puts the root token inside the cluster Vault protects.
type secretStore struct {
	c               client.Client
	namespace, name string
}

// NewKubernetesSecret returns a store that keeps the keys in the Opaque
// Secret namespace/name under SecretKey. Save creates the Secret immutable,
// so not even a later update by hand can change its keys; it never updates
// a Secret. The client should read from the API server, not from a cache,
// and needs get and create on Secrets in namespace, which must exist.
func NewKubernetesSecret(c client.Client, namespace, name string) Store {
	return &secretStore{c: c, namespace: namespace, name: name}
}

func (s *secretStore) Describe() string { return "kubernetes secret " + s.namespace + "/" + s.name }

func (s *secretStore) Load(ctx context.Context) (*Keys, error) {
	var sec corev1.Secret
	err := s.c.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: s.name}, &sec)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w in %s", ErrNotFound, s.Describe())
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.Describe(), err)
	}
	if sec.Type != corev1.SecretTypeOpaque {
		return nil, fmt.Errorf("%s has type %s, not Opaque: blinkchamber did not write it", s.Describe(), sec.Type)
	}
	b, ok := sec.Data[SecretKey]
	if !ok {
		return nil, fmt.Errorf("%s has no %s: blinkchamber did not write it", s.Describe(), SecretKey)
	}
	k, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", SecretKey, s.Describe(), err)
	}
	return k, nil
}

func (s *secretStore) Save(ctx context.Context, k *Keys) error {
	if err := check(k); err != nil {
		return fmt.Errorf("saving keys to %s: %w", s.Describe(), err)
	}
	data, err := encode(k)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.namespace,
			Name:      s.name,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "blinkchamber"},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptr.To(true),
		Data:      map[string][]byte{SecretKey: data},
	}
	err = s.c.Create(ctx, sec)
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", s.Describe(), err)
	}
	old, err := s.Load(ctx)
	if err != nil {
		return fmt.Errorf("%w; it is left alone", err)
	}
	if !Same(old, k) {
		return fmt.Errorf("%w in %s: refusing to replace them; they may be the only copy of another Vault's keys", ErrExists, s.Describe())
	}
	return nil
}
