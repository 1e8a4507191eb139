package cli

import (
	"testing"

	"k8s.io/client-go/rest"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
)

// TestKubeAuthReviewerToken: the config's reviewerToken decides whether
// bootstrap can mint a reviewer token at all; with vault-pod it has no way
// to (Vault reviews with its own pod's token), and host and CA still come
// from the kubeconfig.
func TestKubeAuthReviewerToken(t *testing.T) {
	rc := &rest.Config{Host: "https://10.96.0.1:443", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("ca pem")}}
	for _, tc := range []struct {
		token       config.ReviewerToken
		vaultPod    bool
		canMintJWTs bool
	}{
		{config.ReviewerTokenMinted, false, true},
		{config.ReviewerTokenVaultPod, true, false},
	} {
		t.Run(string(tc.token), func(t *testing.T) {
			ka, err := kubeAuth(config.KubernetesAuth{Path: "kubernetes", ReviewerToken: tc.token,
				ReviewerNamespace: "vault", ReviewerServiceAccount: "vault"}, rc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ka.VaultPodReviewer != tc.vaultPod || (ka.ReviewerJWT != nil) != tc.canMintJWTs {
				t.Errorf("VaultPodReviewer %v, can mint %v; want %v, %v", ka.VaultPodReviewer, ka.ReviewerJWT != nil, tc.vaultPod, tc.canMintJWTs)
			}
			if ka.Host != rc.Host || ka.CAPEM != "ca pem" {
				t.Errorf("host %q, CA %q: not the kubeconfig's", ka.Host, ka.CAPEM)
			}
		})
	}
}
