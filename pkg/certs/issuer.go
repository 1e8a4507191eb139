package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Issuer keeps the certificate Secret and the webhook's caBundle current. It
// is a manager Runnable that runs on the leader only, so one replica writes.
//
// Within one pass the order is: CA, then caBundle, then serving certificate.
// A serving certificate from a new CA is therefore written only after the API
// server has been told to trust that CA, and the old CA stays in the bundle
// until it expires, so no handshake fails during a rotation.
type Issuer struct {
	client client.Client
	opts   Options
	log    logr.Logger
	// now is replaced in tests to reach expiry without waiting for it.
	now func() time.Time
}

// NewIssuer returns an Issuer writing through c. Reads through c as well: a
// manager's cached client would start cluster-wide informers on Secrets and
// MutatingWebhookConfigurations, so pass a client that reads from the API
// server (or disable the cache for those two kinds).
func NewIssuer(c client.Client, opts Options, log logr.Logger) *Issuer {
	return &Issuer{client: c, opts: opts.withDefaults(), log: log, now: time.Now}
}

// NeedLeaderElection makes the manager run the Issuer on the leader only.
func (*Issuer) NeedLeaderElection() bool { return true }

// Start reconciles at once and then every CheckInterval until ctx ends.
// Invalid options end it with an error; failed passes are logged and
// retried, because the API server being briefly away must not stop the
// manager.
func (i *Issuer) Start(ctx context.Context) error {
	if err := i.opts.Validate(); err != nil {
		return err
	}
	poll(ctx, i.opts.CheckInterval, func(ctx context.Context) error {
		_, err := i.Reconcile(ctx)
		return err
	}, i.log, "reconciling webhook certificates")
	return nil
}

// Reconcile makes one pass and reports whether it wrote anything.
func (i *Issuer) Reconcile(ctx context.Context) (changed bool, err error) {
	if err := i.opts.Validate(); err != nil {
		return false, err
	}
	now := i.now()
	data, caChanged, err := i.updateSecret(ctx, now, func(d map[string][]byte) ([]string, error) {
		return i.ensureCA(d, now)
	})
	if err != nil {
		return false, err
	}
	bundleChanged, bundleErr := i.ensureCABundle(ctx, caBundle(data))
	// Renewal under the CA already in the bundle goes ahead even when the
	// bundle could not be written, or the certificate would expire while the
	// cause is fixed.
	caTrusted := bundleErr == nil
	_, servingChanged, err := i.updateSecret(ctx, now, func(d map[string][]byte) ([]string, error) {
		return i.ensureServing(d, now, caTrusted)
	})
	return caChanged || bundleChanged || servingChanged, errors.Join(bundleErr, err)
}

// secretStep edits the Secret's data in place and names what it changed;
// no names means nothing changed.
type secretStep func(data map[string][]byte) ([]string, error)

// updateSecret applies step to the current Secret, creating the Secret with
// a fresh CA and serving pair when it is missing. It returns the data as
// written (or as found, when step changed nothing).
func (i *Issuer) updateSecret(ctx context.Context, now time.Time, step secretStep) (map[string][]byte, bool, error) {
	var data map[string][]byte
	var changed bool
	err := retry.OnError(retry.DefaultRetry, lostRace, func() error {
		var err error
		data, changed, err = i.updateSecretOnce(ctx, now, step)
		return err
	})
	return data, changed, err
}

func (i *Issuer) updateSecretOnce(ctx context.Context, now time.Time, step secretStep) (map[string][]byte, bool, error) {
	s := &corev1.Secret{}
	err := i.client.Get(ctx, i.secretKey(), s)
	if apierrors.IsNotFound(err) {
		data, err := i.createSecret(ctx, now)
		return data, err == nil, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading Secret %s: %w", i.secretKey(), err)
	}
	data := maps.Clone(s.Data)
	if data == nil {
		data = map[string][]byte{}
	}
	changes, err := step(data)
	if err != nil || len(changes) == 0 {
		return s.Data, false, err
	}
	orig := s.DeepCopy()
	s.Data = data
	// The optimistic lock turns a concurrent writer into a conflict, which
	// is retried on fresh data instead of overwriting the other write.
	if err := i.client.Patch(ctx, s, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return nil, false, fmt.Errorf("updating Secret %s: %w", i.secretKey(), err)
	}
	i.log.Info("updated certificate Secret", "secret", i.secretKey(), "changes", changes)
	return data, true, nil
}

func (i *Issuer) createSecret(ctx context.Context, now time.Time) (map[string][]byte, error) {
	data := map[string][]byte{}
	if _, err := i.ensureCA(data, now); err != nil {
		return nil, err
	}
	if _, err := i.ensureServing(data, now, true); err != nil {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: i.opts.Namespace, Name: i.opts.SecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       data,
	}
	owner, err := i.webhookOwner(ctx)
	if err != nil {
		return nil, err
	}
	s.OwnerReferences = owner
	if err := i.client.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("creating Secret %s: %w", i.secretKey(), err)
	}
	i.log.Info("created certificate Secret", "secret", i.secretKey(), "hosts", i.opts.Hosts)
	return data, nil
}

// ensureCA replaces a CA that is unusable or due for renewal, keeping a
// still-valid old one as the previous CA, and forgets a previous CA once it
// has expired.
func (i *Issuer) ensureCA(data map[string][]byte, now time.Time) ([]string, error) {
	var changes []string
	if dropExpiredPrevious(data, now) {
		changes = append(changes, "removed expired previous CA")
	}
	ca, _, err := parseCA(data[CACertKey], data[CAKeyKey])
	switch {
	case err != nil:
		changes = append(changes, fmt.Sprintf("generated CA (%v)", err))
	case expiresWithin(ca, now, i.opts.RenewBefore):
		data[PreviousCACertKey] = data[CACertKey]
		changes = append(changes, fmt.Sprintf("rotated CA expiring %s", ca.NotAfter.Format(time.RFC3339)))
	default:
		return changes, nil
	}
	certPEM, keyPEM, err := NewCA(now, i.opts.CAValidity)
	if err != nil {
		return nil, err
	}
	data[CACertKey], data[CAKeyKey] = certPEM, keyPEM
	return changes, nil
}

func dropExpiredPrevious(data map[string][]byte, now time.Time) bool {
	prev, ok := data[PreviousCACertKey]
	if !ok {
		return false
	}
	if cert, err := parseCertificate(prev); err == nil && now.Before(cert.NotAfter) {
		return false
	}
	delete(data, PreviousCACertKey)
	return true
}

// ensureServing issues a serving certificate when the current one is due,
// does not match its key, or was not signed by the current CA. Unless
// caTrusted, it leaves a certificate from an older CA alone: one from the
// current CA might not verify yet.
func (i *Issuer) ensureServing(data map[string][]byte, now time.Time, caTrusted bool) ([]string, error) {
	reason := i.servingReason(data, now)
	if reason == "" {
		return nil, nil
	}
	if !caTrusted && !signedByCurrentCA(data) {
		i.log.Info("serving certificate waits for the caBundle to trust the current CA", "reason", reason)
		return nil, nil
	}
	certPEM, keyPEM, err := NewServing(data[CACertKey], data[CAKeyKey], i.opts.Hosts, now, i.opts.CertValidity)
	if err != nil {
		return nil, err
	}
	data[TLSCertKey], data[TLSKeyKey] = certPEM, keyPEM
	return []string{"issued serving certificate (" + reason + ")"}, nil
}

func (i *Issuer) servingReason(data map[string][]byte, now time.Time) string {
	if NeedsRenewal(data[TLSCertKey], i.opts.Hosts, now, i.opts.RenewBefore) {
		return "missing, expiring or for other hosts"
	}
	if _, err := tls.X509KeyPair(data[TLSCertKey], data[TLSKeyKey]); err != nil {
		return "key does not match"
	}
	if !signedByCurrentCA(data) {
		return "not signed by the current CA"
	}
	return ""
}

func signedByCurrentCA(data map[string][]byte) bool {
	leaf, err := parseCertificate(data[TLSCertKey])
	if err != nil {
		return false
	}
	ca, err := parseCertificate(data[CACertKey])
	return err == nil && leaf.CheckSignatureFrom(ca) == nil
}

// ensureCABundle sets every webhook's caBundle to bundle. A missing
// configuration is not an error: it may simply not be installed yet, and the
// next pass tries again.
func (i *Issuer) ensureCABundle(ctx context.Context, bundle []byte) (bool, error) {
	var changed bool
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		changed, err = i.ensureCABundleOnce(ctx, bundle)
		return err
	})
	if apierrors.IsNotFound(err) {
		i.log.Info("MutatingWebhookConfiguration not found; will retry", "name", i.opts.WebhookConfigName, "after", i.opts.CheckInterval)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("setting caBundle of MutatingWebhookConfiguration %s: %w", i.opts.WebhookConfigName, err)
	}
	return changed, nil
}

func (i *Issuer) ensureCABundleOnce(ctx context.Context, bundle []byte) (bool, error) {
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := i.client.Get(ctx, client.ObjectKey{Name: i.opts.WebhookConfigName}, mwc); err != nil {
		return false, err
	}
	orig := mwc.DeepCopy()
	changed := false
	for n := range mwc.Webhooks {
		if !bytes.Equal(mwc.Webhooks[n].ClientConfig.CABundle, bundle) {
			mwc.Webhooks[n].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	// A strategic merge patch merges webhooks by name, so only caBundle is
	// sent and fields this client's types do not know survive.
	patch := client.StrategicMergeFrom(orig, client.MergeFromWithOptimisticLock{})
	if err := i.client.Patch(ctx, mwc, patch); err != nil {
		return false, err
	}
	i.log.Info("updated caBundle", "mutatingWebhookConfiguration", mwc.Name, "webhooks", len(mwc.Webhooks))
	return true, nil
}

// webhookOwner makes the MutatingWebhookConfiguration the Secret's owner:
// the Secret is made by the injector, not by Helm, so without an owner
// `helm uninstall` (which deletes the configuration) would leave it behind.
// The garbage collector deletes it with its owner. No owner when the
// configuration does not exist (yet): the Secret is then kept.
func (i *Issuer) webhookOwner(ctx context.Context) ([]metav1.OwnerReference, error) {
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	err := i.client.Get(ctx, client.ObjectKey{Name: i.opts.WebhookConfigName}, mwc)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", i.opts.WebhookConfigName, err)
	}
	return []metav1.OwnerReference{{
		APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
		Kind:       "MutatingWebhookConfiguration",
		Name:       mwc.Name,
		UID:        mwc.UID,
	}}, nil
}

func (i *Issuer) secretKey() client.ObjectKey {
	return client.ObjectKey{Namespace: i.opts.Namespace, Name: i.opts.SecretName}
}

// lostRace is true for errors that a fresh read fixes: a concurrent update,
// or a create that another writer beat.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}
