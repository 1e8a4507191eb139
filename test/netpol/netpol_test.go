package netpol

import (
	"errors"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pod(name, ns string, ip string, l map[string]string) Endpoint {
	return Endpoint{Name: name, Namespace: ns, Labels: l, IP: netip.MustParseAddr(ip)}
}

func port(p int32, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(p)
	return networkingv1.NetworkPolicyPort{Port: &v, Protocol: &proto}
}

func policy(ns string, sel map[string]string, types []networkingv1.PolicyType, in []networkingv1.NetworkPolicyIngressRule, eg []networkingv1.NetworkPolicyEgressRule) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: sel}, PolicyTypes: types, Ingress: in, Egress: eg}}
}

func TestAllowed(t *testing.T) {
	ingress := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	both := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	db := pod("db", "a", "10.0.0.1", map[string]string{"app": "db"})
	web := pod("web", "a", "10.0.0.2", map[string]string{"app": "web"})
	other := pod("other", "b", "10.0.0.3", map[string]string{"app": "web"})
	ext := Endpoint{Name: "ext", IP: netip.MustParseAddr("192.0.2.7")}
	onlyWeb := policy("a", map[string]string{"app": "db"}, ingress, []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		Ports: []networkingv1.NetworkPolicyPort{port(5432, corev1.ProtocolTCP)},
	}}, nil)
	fromB := policy("a", map[string]string{"app": "db"}, ingress, []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "b"}}}},
	}}, nil)
	end := int32(5500)
	ranged := port(5400, corev1.ProtocolTCP)
	ranged.EndPort = &end
	fromBlock := policy("a", map[string]string{"app": "db"}, ingress, []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.7/32"}}}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}},
		Ports: []networkingv1.NetworkPolicyPort{ranged},
	}}, nil)
	denyEgress := policy("a", map[string]string{"app": "web"}, both, nil, []networkingv1.NetworkPolicyEgressRule{{
		Ports: []networkingv1.NetworkPolicyPort{port(53, corev1.ProtocolUDP)},
	}})
	cases := []struct {
		name     string
		policies []networkingv1.NetworkPolicy
		flow     Flow
		want     bool
	}{
		{"no policy: open", nil, Flow{Src: web, Dst: db, Port: 1}, true},
		{"pod selector, same namespace, port", []networkingv1.NetworkPolicy{onlyWeb}, Flow{Src: web, Dst: db, Port: 5432}, true},
		{"pod selector, other port", []networkingv1.NetworkPolicy{onlyWeb}, Flow{Src: web, Dst: db, Port: 5433}, false},
		{"pod selector, UDP", []networkingv1.NetworkPolicy{onlyWeb}, Flow{Src: web, Dst: db, Port: 5432, Protocol: corev1.ProtocolUDP}, false},
		{"pod selector alone is the policy's namespace", []networkingv1.NetworkPolicy{onlyWeb}, Flow{Src: other, Dst: db, Port: 5432}, false},
		{"namespace selector, any port", []networkingv1.NetworkPolicy{fromB}, Flow{Src: other, Dst: db, Port: 9}, true},
		{"namespace selector, other namespace", []networkingv1.NetworkPolicy{fromB}, Flow{Src: web, Dst: db, Port: 9}, false},
		{"policies add up", []networkingv1.NetworkPolicy{onlyWeb, fromB}, Flow{Src: other, Dst: db, Port: 9}, true},
		{"ipBlock except", []networkingv1.NetworkPolicy{fromBlock}, Flow{Src: ext, Dst: db, Port: 5432}, false},
		{"ipBlock covers pod addresses", []networkingv1.NetworkPolicy{fromBlock}, Flow{Src: web, Dst: db, Port: 5432}, true},
		{"endPort", []networkingv1.NetworkPolicy{fromBlock}, Flow{Src: web, Dst: db, Port: 5501}, false},
		{"egress allowed", []networkingv1.NetworkPolicy{denyEgress}, Flow{Src: web, Dst: ext, Port: 53, Protocol: corev1.ProtocolUDP}, true},
		{"egress denied", []networkingv1.NetworkPolicy{denyEgress}, Flow{Src: web, Dst: ext, Port: 443}, false},
		{"egress of one, ingress of the other", []networkingv1.NetworkPolicy{denyEgress, onlyWeb}, Flow{Src: web, Dst: db, Port: 5432}, false},
		{"unselected pod is open", []networkingv1.NetworkPolicy{denyEgress}, Flow{Src: other, Dst: ext, Port: 443}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Allowed(c.policies, c.flow)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("%s: allowed %v, want %v", c.flow, got, c.want)
			}
		})
	}
}

func TestNamedPortIsRefused(t *testing.T) {
	named := intstr.FromString("http")
	p := policy("a", nil, nil, []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}}}, nil)
	_, err := Allowed([]networkingv1.NetworkPolicy{p}, Flow{Src: pod("x", "a", "10.0.0.1", nil), Dst: pod("y", "a", "10.0.0.2", nil), Port: 80})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}
