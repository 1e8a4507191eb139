package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InjectionLabel opts a namespace in to the injector's webhook.
const InjectionLabel = "blinkchamber.io/injection"

const managedBy = "app.kubernetes.io/managed-by"

// baseSteps is phase 1: the environment's prerequisites, namespaces, the token reviewer, network policies,
// then a wait until Vault answers.
func baseSteps(spec *Spec, k client.Client, c *api.Client, vaultAddr string) []Step {
	p := PhaseBase
	steps := prerequisiteSteps(spec, k)
	seen, policies := map[string]bool{}, map[string]bool{}
	for _, app := range spec.Apps {
		ns := app.Namespace
		if !seen[ns] {
			seen[ns] = true
			steps = append(steps, Step{Phase: p, Name: "namespace " + ns, Check: checkNamespace(k, ns), Apply: applyNamespace(k, ns)})
		}
		if !policies[ns] && !app.SkipNetworkPolicies {
			policies[ns] = true
			for _, np := range networkPolicies(ns, vaultAddr) {
				steps = append(steps, objectStep(p, k, np, "network policy "+ns+"/"+np.Name, sameNetworkPolicy))
			}
		}
		sa := &corev1.ServiceAccount{ObjectMeta: meta(ns, app.ServiceAccount)}
		steps = append(steps, objectStep(p, k, sa, "ServiceAccount "+ns+"/"+app.ServiceAccount, anyLive))
	}
	steps = append(steps, reviewerSteps(spec, k)...)
	steps = append(steps, transitSteps(spec)...)
	steps = append(steps, Step{Phase: p, Name: "vault answers", Check: waitVault(c, vaultAddr), Apply: noop})
	return steps
}

// anyLive accepts any existing object: bootstrap only makes sure it exists.
func anyLive(_, _ client.Object) bool { return true }

func meta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{managedBy: "blinkchamber"}}
}

func checkNamespace(k client.Client, name string) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		ns := &corev1.Namespace{}
		err := k.Get(ctx, client.ObjectKey{Name: name}, ns)
		switch {
		case apierrors.IsNotFound(err):
			return Needs("create with %s=enabled", InjectionLabel), nil
		case err != nil:
			return Change{}, fmt.Errorf("reading namespace %s: %w", name, err)
		case ns.Labels[InjectionLabel] != "enabled":
			return Needs("label %s=enabled", InjectionLabel), nil
		}
		return Unchanged("labelled for injection"), nil
	}
}

func applyNamespace(k client.Client, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		ns := &corev1.Namespace{}
		err := k.Get(ctx, client.ObjectKey{Name: name}, ns)
		if apierrors.IsNotFound(err) {
			ns = &corev1.Namespace{ObjectMeta: meta("", name)}
			ns.Labels[InjectionLabel] = "enabled"
			return k.Create(ctx, ns)
		}
		if err != nil {
			return err
		}
		patch := client.MergeFrom(ns.DeepCopy())
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[InjectionLabel] = "enabled"
		return k.Patch(ctx, ns, patch)
	}
}

// objectStep creates want when missing and repairs it when same says the
// live object drifted.
func objectStep(phase string, k client.Client, want client.Object, name string, same func(live, want client.Object) bool) Step {
	get := func(ctx context.Context) (client.Object, error) {
		live := want.DeepCopyObject().(client.Object)
		err := k.Get(ctx, client.ObjectKeyFromObject(want), live)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return live, err
	}
	return Step{Phase: phase, Name: name,
		Check: func(ctx context.Context) (Change, error) {
			live, err := get(ctx)
			switch {
			case err != nil:
				return Change{}, fmt.Errorf("reading %s: %w", name, err)
			case live == nil:
				return Needs("create"), nil
			case !same(live, want):
				return Needs("repair: it differs from what bootstrap manages"), nil
			}
			return Unchanged("present"), nil
		},
		Apply: func(ctx context.Context) error {
			live, err := get(ctx)
			if err != nil {
				return err
			}
			obj := want.DeepCopyObject().(client.Object)
			if live == nil {
				return k.Create(ctx, obj)
			}
			obj.SetResourceVersion(live.GetResourceVersion())
			return k.Update(ctx, obj)
		},
	}
}

// reviewerSteps make sure Vault's TokenReviews will be allowed: for a Vault
// in the cluster, by checking that its own ServiceAccount may review
// tokens (whoever deployed Vault bound it); otherwise by creating the
// reviewer ServiceAccount, whose token Vault is given, and binding it.
func reviewerSteps(spec *Spec, k client.Client) []Step {
	p := PhaseBase
	ka := spec.KubeAuth
	sa := ka.ReviewerNamespace + "/" + ka.ReviewerServiceAccount
	if ka.VaultPodReviewer {
		return []Step{{Phase: p, Name: "Vault's ServiceAccount " + sa + " may review tokens", Check: checkReviewer(k, ka), Apply: noop}}
	}
	return []Step{
		objectStep(p, k, &corev1.Namespace{ObjectMeta: meta("", ka.ReviewerNamespace)}, "namespace "+ka.ReviewerNamespace, anyLive),
		objectStep(p, k, &corev1.ServiceAccount{ObjectMeta: meta(ka.ReviewerNamespace, ka.ReviewerServiceAccount)},
			"token reviewer ServiceAccount "+sa, anyLive),
		objectStep(p, k, reviewerBinding(spec), "ClusterRoleBinding to system:auth-delegator", sameBinding),
	}
}

// ErrReviewerNotAllowed: Vault's ServiceAccount may not create
// TokenReviews, so every kubernetes-auth login would be refused.
var ErrReviewerNotAllowed = errors.New("Vault's ServiceAccount may not review tokens")

// checkReviewer asks the API server (a SubjectAccessReview) whether Vault's
// ServiceAccount may create TokenReviews. Bootstrap does not grant it:
// the binding belongs to whoever deploys Vault, and a missing one is
// reported here rather than as every agent's failed login.
func checkReviewer(k client.Client, ka KubeAuth) func(context.Context) (Change, error) {
	ns, name := ka.ReviewerNamespace, ka.ReviewerServiceAccount
	user := "system:serviceaccount:" + ns + ":" + name
	return func(ctx context.Context) (Change, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
		}}
		if err := k.Create(ctx, sar); err != nil {
			return Change{}, fmt.Errorf("asking the API server whether %s may review tokens: %w", user, err)
		}
		if !sar.Status.Allowed {
			return Change{}, fmt.Errorf("%w: %s may not create tokenreviews.authentication.k8s.io; bind it to the ClusterRole system:auth-delegator (the chart does)",
				ErrReviewerNotAllowed, user)
		}
		return Unchanged("may create tokenreviews"), nil
	}
}

func reviewerBinding(spec *Spec) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: meta("", "blinkchamber-vault-token-reviewer"),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: spec.KubeAuth.ReviewerServiceAccount,
			Namespace: spec.KubeAuth.ReviewerNamespace}},
	}
}

func sameBinding(live, want client.Object) bool {
	l, w := live.(*rbacv1.ClusterRoleBinding), want.(*rbacv1.ClusterRoleBinding)
	return reflect.DeepEqual(l.RoleRef, w.RoleRef) && reflect.DeepEqual(l.Subjects, w.Subjects)
}

// networkPolicies deny everything in an app namespace, then allow DNS and
// Vault: the flows the agent needs. The chart adds each app's own flows.
func networkPolicies(ns, vaultAddr string) []*networkingv1.NetworkPolicy {
	all := metav1.LabelSelector{}
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dns := intstr.FromInt32(53)
	vaultPort := intstr.FromInt32(int32(portOf(vaultAddr)))
	deny := &networkingv1.NetworkPolicy{ObjectMeta: meta(ns, "blinkchamber-default-deny"), Spec: networkingv1.NetworkPolicySpec{
		PodSelector: all, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}}}
	allowDNS := &networkingv1.NetworkPolicy{ObjectMeta: meta(ns, "blinkchamber-allow-dns"), Spec: networkingv1.NetworkPolicySpec{
		PodSelector: all, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}},
		}}}}
	allowVault := &networkingv1.NetworkPolicy{ObjectMeta: meta(ns, "blinkchamber-allow-vault"), Spec: networkingv1.NetworkPolicySpec{
		PodSelector: all, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &vaultPort}}}}}}
	return []*networkingv1.NetworkPolicy{deny, allowDNS, allowVault}
}

func sameNetworkPolicy(live, want client.Object) bool {
	return reflect.DeepEqual(live.(*networkingv1.NetworkPolicy).Spec, want.(*networkingv1.NetworkPolicy).Spec)
}

func portOf(addr string) int {
	u, err := url.Parse(addr)
	if err != nil {
		return 8200
	}
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

// waitVault waits (up to two minutes) until Vault answers its health
// endpoint in any state: sealed and uninitialised are fine here.
func waitVault(c *api.Client, addr string) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		for {
			_, err := c.Sys().SealStatusWithContext(ctx)
			if err == nil {
				return Unchanged("answering at " + addr), nil
			}
			select {
			case <-ctx.Done():
				return Change{}, fmt.Errorf("Vault at %s did not answer within 2 minutes: %w", addr, err)
			case <-time.After(time.Second):
			}
		}
	}
}
