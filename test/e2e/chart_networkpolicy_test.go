package e2e

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/test/netpol"
)

// The cluster the flows run in: the chart's pods as it labels them, an
// app's pod with an agent in a namespace of its own, a pod of someone else
// in the release namespace, the cluster DNS, a transit Vault, and
// addresses outside the pod network (the API server, AWS KMS, anything).
var (
	npAPIServer = netpol.Endpoint{Name: "kube-apiserver", IP: netip.MustParseAddr("172.31.255.1")}
	npKMS       = netpol.Endpoint{Name: "kms.eu-west-1.amazonaws.com", IP: netip.MustParseAddr("52.94.0.10")}
	npInternet  = netpol.Endpoint{Name: "internet", IP: netip.MustParseAddr("1.1.1.1")}
	npInjector  = npChartPod("injector", chartNamespace, "blinkchamber-injector", "10.244.0.10")
	npVault0    = npChartPod("vault-0", chartNamespace, "vault", "10.244.0.11")
	npVault1    = npChartPod("vault-1", chartNamespace, "vault", "10.244.0.12")
	npBootstrap = npChartPod("bootstrap", chartNamespace, "blinkchamber-bootstrap", "10.244.0.13")
	npTest      = npChartPod("helm-test", chartNamespace, "blinkchamber-test", "10.244.0.14")
	npProm      = npChartPod("prometheus", "chart-apps", "prometheus", "10.244.0.20")
	npGrafana   = npChartPod("grafana", "chart-apps", "grafana", "10.244.0.21")
	npShop      = netpol.Endpoint{Name: "shop (agent)", Namespace: "shop", Labels: map[string]string{"app": "shop"},
		NamespaceLabels: map[string]string{"blinkchamber.io/injection": "enabled"}, IP: netip.MustParseAddr("10.244.0.30")}
	npStranger = netpol.Endpoint{Name: "stranger in the release namespace", Namespace: chartNamespace,
		Labels: map[string]string{"app": "other"}, IP: netip.MustParseAddr("10.244.0.31")}
	npDNS     = netpol.Endpoint{Name: "coredns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}, IP: netip.MustParseAddr("10.244.0.2")}
	npTransit = netpol.Endpoint{Name: "transit vault", Namespace: "vault-transit", Labels: map[string]string{"app": "vault"}, IP: netip.MustParseAddr("10.244.0.40")}
)

func npChartPod(name, ns, component, ip string) netpol.Endpoint {
	return netpol.Endpoint{Name: name, Namespace: ns, IP: netip.MustParseAddr(ip),
		Labels: map[string]string{"app.kubernetes.io/name": component, "app.kubernetes.io/instance": "bc"}}
}

type npFlow struct {
	src, dst netpol.Endpoint
	port     int32
	proto    corev1.Protocol
}

// npNarrowAPIServer narrows the API server's CIDRs to its one address, as
// the values ask on a real cluster: then only it reaches the webhook.
func npNarrowAPIServer(user map[string]any) {
	user["networkPolicies"] = map[string]any{"kubeAPIServer": map[string]any{"cidrs": []any{"172.31.255.1/32"}}}
	apps := user["apps"].(map[string]any)
	apps["networkPolicy"] = map[string]any{"kubeAPIServer": map[string]any{"cidrs": []any{"172.31.255.1/32"}}}
}

// TestChartNetworkPolicyFlows renders the chart's NetworkPolicies and reads
// them against the flows the injector, Vault, the bootstrap Job, the helm
// tests and Prometheus need (each must pass) and flows nobody needs (each
// must be refused). The local node's CNI enforces no NetworkPolicy: this
// evaluation, and the API server's acceptance of the objects, is the test.
func TestChartNetworkPolicyFlows(t *testing.T) {
	ch := loadChart(t)
	udp := corev1.ProtocolUDP
	// Every environment needs these.
	common := []npFlow{
		{npAPIServer, npInjector, 9443, ""},
		{npInjector, npAPIServer, 6443, ""},
		{npInjector, npAPIServer, 443, ""},
		{npInjector, npDNS, 53, udp},
		{npInjector, npDNS, 53, ""},
		{npShop, npVault0, 8200, ""},
		{npBootstrap, npVault0, 8200, ""},
		{npBootstrap, npAPIServer, 6443, ""},
		{npBootstrap, npDNS, 53, udp},
		{npVault0, npAPIServer, 6443, ""},
		{npVault0, npDNS, 53, udp},
		{npTest, npInjector, 9443, ""},
		{npTest, npVault0, 8200, ""},
		{npStranger, npVault0, 8200, ""},
		// Policies select the chart's pods only: a stranger's own
		// traffic is its business.
		{npStranger, npInternet, 443, ""},
	}
	// Nobody needs these.
	denied := []npFlow{
		{npShop, npInjector, 9443, ""},
		{npShop, npInjector, 8080, ""},
		{npGrafana, npInjector, 8080, ""},
		{npShop, npVault0, 8201, ""},
		{npShop, npBootstrap, 8080, ""},
		{npStranger, npInjector, 9443, ""},
		{npInjector, npVault0, 8200, ""},
		{npInjector, npInternet, 443, ""},
		{npInjector, npShop, 8080, ""},
		{npInjector, npDNS, 5353, udp},
		{npVault0, npInternet, 80, ""},
		{npVault0, npShop, 8080, ""},
		{npVault0, npInjector, 9443, ""},
		{npBootstrap, npInjector, 9443, ""},
		{npBootstrap, npInternet, 443, ""},
		{npBootstrap, npVault0, 8201, ""},
		{npTest, npAPIServer, 6443, ""},
		{npTest, npInternet, 443, ""},
		{npInternet, npVault0, 8200, ""},
		{npInternet, npInjector, 9443, ""},
		{npAPIServer, npVault0, 8200, ""},
	}
	cases := []struct {
		env            string
		allowed, refus []npFlow
	}{
		{"development+all", slices.Concat(common, []npFlow{
			npFlow{npProm, npInjector, 8080, ""},
			npFlow{npProm, npVault0, 8200, ""},
		}), slices.Concat(denied, []npFlow{
			npFlow{npVault0, npKMS, 443, ""},
			npFlow{npVault0, npTransit, 8200, ""},
		})},
		{"staging", slices.Concat(common, []npFlow{
			npFlow{npVault0, npTransit, 8200, ""},
			npFlow{npBootstrap, npTransit, 8200, ""},
		}), slices.Concat(denied, []npFlow{
			npFlow{npVault0, npKMS, 443, ""},
		})},
		{"production", slices.Concat(common, []npFlow{
			npFlow{npVault0, npVault1, 8201, ""},
			npFlow{npVault0, npVault1, 8200, ""},
			npFlow{npVault1, npVault0, 8201, ""},
			npFlow{npVault0, npKMS, 443, ""},
			npFlow{npProm, npInjector, 8080, ""},
		}), slices.Concat(denied, []npFlow{
			npFlow{npBootstrap, npKMS, 443, ""},
			npFlow{npShop, npVault1, 8201, ""},
		})},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			policies := renderedPolicies(t, renderWith(t, ch, c.env, npNarrowAPIServer))
			checkFlows(t, policies, c.allowed, true)
			checkFlows(t, policies, c.refus, false)
		})
	}
}

// TestChartNetworkPolicyDefaults: with the default API server CIDRs
// (anywhere) the flows the chart needs pass too, and networkPolicies.enabled
// false renders none.
func TestChartNetworkPolicyDefaults(t *testing.T) {
	ch := loadChart(t)
	policies := renderedPolicies(t, render(t, ch, "production"))
	checkFlows(t, policies, []npFlow{
		{npAPIServer, npInjector, 9443, ""},
		{npVault0, npAPIServer, 443, ""},
		{npShop, npVault0, 8200, ""},
	}, true)
	off := renderedPolicies(t, renderWith(t, ch, "development+all", func(user map[string]any) {
		user["networkPolicies"] = map[string]any{"enabled": false}
	}))
	if len(off) != 0 {
		t.Errorf("networkPolicies.enabled false rendered %d NetworkPolicies", len(off))
	}
}

// TestChartNetworkPolicyMetricsFrom: networkPolicies.metricsFrom adds
// scrapers of the injector's metrics; with the chart's Prometheus off and
// no metricsFrom, nobody may scrape it (no rule without peers, which would
// let everyone in).
func TestChartNetworkPolicyMetricsFrom(t *testing.T) {
	ch := loadChart(t)
	monitoring := netpol.Endpoint{Name: "monitoring prometheus", Namespace: "monitoring",
		Labels: map[string]string{"app": "prometheus"}, IP: netip.MustParseAddr("10.244.0.50")}
	promOff := func(user map[string]any) {
		user["apps"].(map[string]any)["prometheus"] = map[string]any{"enabled": false}
	}
	policies := renderedPolicies(t, renderWith(t, ch, "development", promOff))
	checkFlows(t, policies, []npFlow{{monitoring, npInjector, 8080, ""}, {npShop, npInjector, 8080, ""}}, false)
	policies = renderedPolicies(t, renderWith(t, ch, "development", func(user map[string]any) {
		promOff(user)
		npNarrowAPIServer(user)
		user["networkPolicies"].(map[string]any)["metricsFrom"] = []any{map[string]any{
			"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}}
	}))
	checkFlows(t, policies, []npFlow{{monitoring, npInjector, 8080, ""}}, true)
	checkFlows(t, policies, []npFlow{{npShop, npInjector, 8080, ""}, {monitoring, npInjector, 9443, ""}}, false)
}

// TestChartNetworkPoliciesTheAPIServerAccepts: the release namespace's
// policies, narrowed and not, pass the real API server's validation.
func TestChartNetworkPoliciesTheAPIServerAccepts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch := loadChart(t)
	if err := ensureNamespace(ctx, chartNamespace); err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(map[string]any){nil, npNarrowAPIServer} {
		for _, env := range renderCases {
			for _, p := range renderedPolicies(t, renderWith(t, ch, env, edit)) {
				if p.Namespace != chartNamespace {
					continue
				}
				if err := kube.Client.Create(ctx, p.DeepCopy(), client.DryRunAll); err != nil {
					t.Errorf("%s: NetworkPolicy %s: %v", env, p.Name, err)
				}
			}
		}
	}
}

func renderedPolicies(t *testing.T, objs []*unstructured.Unstructured) []networkingv1.NetworkPolicy {
	t.Helper()
	var out []networkingv1.NetworkPolicy
	for _, o := range objs {
		if o.GetKind() != "NetworkPolicy" {
			continue
		}
		var p networkingv1.NetworkPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &p); err != nil {
			t.Fatalf("NetworkPolicy %s: %v", o.GetName(), err)
		}
		out = append(out, p)
	}
	return out
}

func checkFlows(t *testing.T, policies []networkingv1.NetworkPolicy, flows []npFlow, want bool) {
	t.Helper()
	for _, f := range flows {
		fl := netpol.Flow{Src: f.src, Dst: f.dst, Port: f.port, Protocol: f.proto}
		got, err := netpol.Allowed(policies, fl)
		if err != nil {
			t.Errorf("%s: %v", fl, err)
			continue
		}
		if got != want {
			t.Errorf("%s: allowed %v, want %v", fl, got, want)
		}
	}
}
