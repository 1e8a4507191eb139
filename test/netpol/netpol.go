// Package netpol decides, from NetworkPolicy objects alone, whether a
// connection is allowed, as a network plugin that enforces them would: the
// chart's tests read its rendered policies against tables of flows that
// must pass and flows that must not. The local node's network plugin (ptp)
// enforces no NetworkPolicy, so this is where the policies are checked.
//
// Semantics follow the NetworkPolicy API: a pod selected by no policy of a
// direction is open in that direction; a selected pod admits only what
// some rule of a selecting policy allows; a connection needs the source's
// egress and the destination's ingress. ipBlock peers are matched against
// every address, pods' too: the API leaves it to the plugin whether an
// ipBlock covers pod addresses, and the stricter reading for a test of
// what is denied is that it may.
package netpol

import (
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Endpoint is one end of a connection: a pod (Namespace set), or an
// address outside the pod network (Namespace empty), such as the API
// server's.
type Endpoint struct {
	Name      string
	Namespace string
	// NamespaceLabels are the namespace's labels; kubernetes.io/metadata.name
	// is added as the API server adds it.
	NamespaceLabels map[string]string
	Labels          map[string]string
	IP              netip.Addr
}

// IsPod reports whether the endpoint is a pod.
func (e Endpoint) IsPod() bool { return e.Namespace != "" }

func (e Endpoint) nsLabels() labels.Set {
	out := labels.Set{corev1.LabelMetadataName: e.Namespace}
	for k, v := range e.NamespaceLabels {
		out[k] = v
	}
	return out
}

// Flow is a connection from Src to Dst's Port.
type Flow struct {
	Src, Dst Endpoint
	Port     int32
	Protocol corev1.Protocol // empty: TCP
}

func (f Flow) String() string {
	return fmt.Sprintf("%s -> %s:%d/%s", f.Src.Name, f.Dst.Name, f.Port, f.protocol())
}

func (f Flow) protocol() corev1.Protocol {
	if f.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return f.Protocol
}

// ErrUnsupported is returned for policies this evaluator cannot decide
// (named ports), rather than guessing.
var ErrUnsupported = errors.New("not supported by the evaluator")

// Allowed reports whether policies allow the flow: the source's egress and
// the destination's ingress.
func Allowed(policies []networkingv1.NetworkPolicy, f Flow) (bool, error) {
	out, err := side(policies, f.Src, f.Dst, f, networkingv1.PolicyTypeEgress)
	if err != nil || !out {
		return false, err
	}
	return side(policies, f.Dst, f.Src, f, networkingv1.PolicyTypeIngress)
}

// side decides one direction for pod self talking to peer: open when no
// policy of that direction selects self, else allowed by some rule.
func side(policies []networkingv1.NetworkPolicy, self, peer Endpoint, f Flow, dir networkingv1.PolicyType) (bool, error) {
	if !self.IsPod() {
		return true, nil // addresses outside the pod network have no policies
	}
	selected := false
	for i := range policies {
		p := &policies[i]
		if p.Namespace != self.Namespace || !hasType(p, dir) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			return false, fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		if !sel.Matches(labels.Set(self.Labels)) {
			continue
		}
		selected = true
		ok, err := policyAllows(p, peer, f, dir)
		if err != nil || ok {
			return ok, err
		}
	}
	return !selected, nil
}

// hasType applies the API's default: Ingress always, Egress when the
// policy has egress rules.
func hasType(p *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		return dir == networkingv1.PolicyTypeIngress || len(p.Spec.Egress) > 0
	}
	for _, t := range p.Spec.PolicyTypes {
		if t == dir {
			return true
		}
	}
	return false
}

func policyAllows(p *networkingv1.NetworkPolicy, peer Endpoint, f Flow, dir networkingv1.PolicyType) (bool, error) {
	type rule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []rule
	if dir == networkingv1.PolicyTypeIngress {
		for _, r := range p.Spec.Ingress {
			rules = append(rules, rule{r.From, r.Ports})
		}
	} else {
		for _, r := range p.Spec.Egress {
			rules = append(rules, rule{r.To, r.Ports})
		}
	}
	for _, r := range rules {
		pm, err := portsMatch(r.ports, f)
		if err != nil {
			return false, fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		if !pm {
			continue
		}
		ok, err := peersMatch(r.peers, p.Namespace, peer)
		if err != nil {
			return false, fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// portsMatch: no ports means every port.
func portsMatch(ports []networkingv1.NetworkPolicyPort, f Flow) (bool, error) {
	if len(ports) == 0 {
		return true, nil
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != f.protocol() {
			continue
		}
		if p.Port == nil {
			return true, nil
		}
		if p.Port.Type != 0 {
			return false, fmt.Errorf("named port %q: %w", p.Port.StrVal, ErrUnsupported)
		}
		lo, hi := p.Port.IntVal, p.Port.IntVal
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if f.Port >= lo && f.Port <= hi {
			return true, nil
		}
	}
	return false, nil
}

// peersMatch: no peers means every peer.
func peersMatch(peers []networkingv1.NetworkPolicyPeer, policyNS string, e Endpoint) (bool, error) {
	if len(peers) == 0 {
		return true, nil
	}
	for _, p := range peers {
		ok, err := peerMatches(p, policyNS, e)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func peerMatches(p networkingv1.NetworkPolicyPeer, policyNS string, e Endpoint) (bool, error) {
	if p.IPBlock != nil {
		return inBlock(p.IPBlock, e.IP)
	}
	if !e.IsPod() {
		return false, nil // pod and namespace selectors select pods only
	}
	if p.NamespaceSelector == nil {
		if e.Namespace != policyNS {
			return false, nil
		}
	} else if ok, err := selects(p.NamespaceSelector, e.nsLabels()); err != nil || !ok {
		return false, err
	}
	if p.PodSelector == nil {
		return true, nil
	}
	return selects(p.PodSelector, labels.Set(e.Labels))
}

func selects(s *metav1.LabelSelector, set labels.Set) (bool, error) {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return false, err
	}
	return sel.Matches(set), nil
}

func inBlock(b *networkingv1.IPBlock, ip netip.Addr) (bool, error) {
	if !ip.IsValid() {
		return false, nil
	}
	in, err := prefixContains(b.CIDR, ip)
	if err != nil || !in {
		return false, err
	}
	for _, ex := range b.Except {
		out, err := prefixContains(ex, ip)
		if err != nil || out {
			return false, err
		}
	}
	return true, nil
}

func prefixContains(cidr string, ip netip.Addr) (bool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false, fmt.Errorf("ipBlock %q: %w", cidr, err)
	}
	return p.Contains(ip), nil
}
