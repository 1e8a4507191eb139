package certs

import corev1 "k8s.io/api/core/v1"

// Keys of the certificate Secret. tls.crt and tls.key keep their
// kubernetes.io/tls names so the Secret can be that type.
const (
	CACertKey = "ca.crt"
	CAKeyKey  = "ca.key"
	// PreviousCACertKey holds the CA replaced by the last rotation until it
	// expires; it stays in the caBundle so serving certificates it signed
	// keep verifying while replicas pick up the new one.
	PreviousCACertKey = "ca-previous.crt"
	TLSCertKey        = corev1.TLSCertKey
	TLSKeyKey         = corev1.TLSPrivateKeyKey
)

// caBundle is what the API server must trust: the current CA first, then the
// one it replaced while that is still in the Secret.
func caBundle(data map[string][]byte) []byte {
	return concatPEM(data[CACertKey], data[PreviousCACertKey])
}
