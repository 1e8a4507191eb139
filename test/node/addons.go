package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// startKubeProxy runs kube-proxy in the node's network namespace: its
// iptables rules (Service routing) exist only there. It is told not to tune
// conntrack, whose settings are machine-wide.
func (c *Cluster) startKubeProxy(bin string) error {
	cfg := filepath.Join(c.Dir, "kube-proxy.yaml")
	body := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
clusterCIDR: %s
mode: iptables
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, c.kubeconfig(proxyID), NodeName, podCIDR)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return err
	}
	_, err := c.start("kube-proxy", c.inNodeArgv(bin, "--config", cfg), nil)
	return err
}

// startDNS runs CoreDNS on the node's address, answering for cluster.local
// only: with no forward plugin, no query ever leaves the machine.
func (c *Cluster) startDNS(ctx context.Context, bin string) error {
	if err := c.dnsRBAC(ctx); err != nil {
		return err
	}
	corefile := filepath.Join(c.Dir, "Corefile")
	body := fmt.Sprintf(`.:53 {
    bind %s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`, nodeAddr, c.kubeconfig(dnsID))
	if err := os.WriteFile(corefile, []byte(body), 0o644); err != nil {
		return err
	}
	_, err := c.start("coredns", c.inNodeArgv(bin, "-conf", corefile), nil)
	return err
}

// dnsRBAC lets CoreDNS's identity read what it answers from, as the
// system:coredns ClusterRole of kubeadm does.
func (c *Cluster) dnsRBAC(ctx context.Context) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "blinkchamber:coredns"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "blinkchamber:coredns"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: dnsID.user}},
	}
	rb := c.Clientset.RbacV1()
	if _, err := rb.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CoreDNS's ClusterRole: %w", err)
	}
	if _, err := rb.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding CoreDNS's ClusterRole: %w", err)
	}
	return nil
}
