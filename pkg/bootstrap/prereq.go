package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Prerequisite is an object of the cluster the environment needs and
// nothing here installs: cert-manager's CRDs, a ClusterIssuer, an
// IngressClass, a ConfigMap or Secret made by someone else.
type Prerequisite struct {
	// Kind is one of PrerequisiteKinds.
	Kind string
	// Namespace of a ConfigMap or Secret; empty for cluster objects.
	Namespace string
	Name      string
	// Keys a ConfigMap or Secret must hold.
	Keys []string
	// For says what needs it, for the error message.
	For string
}

// The kinds of prerequisite, and where each lives.
var prerequisiteKinds = map[string]schema.GroupVersionKind{
	"CustomResourceDefinition": {Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"},
	"ClusterIssuer":            {Group: "cert-manager.io", Version: "v1", Kind: "ClusterIssuer"},
	"IngressClass":             {Group: "networking.k8s.io", Version: "v1", Kind: "IngressClass"},
	"ConfigMap":                {Version: "v1", Kind: "ConfigMap"},
	"Secret":                   {Version: "v1", Kind: "Secret"},
}

// PrerequisiteKinds lists the kinds a Prerequisite may name.
var PrerequisiteKinds = []string{"CustomResourceDefinition", "ClusterIssuer", "IngressClass", "ConfigMap", "Secret"}

// ErrPrerequisiteMissing is wrapped by every PrerequisiteError.
var ErrPrerequisiteMissing = errors.New("a prerequisite is missing")

// PrerequisiteError names one missing prerequisite, what needs it and how
// to get it. It never holds a value of the object.
type PrerequisiteError struct {
	Prerequisite
	// Problem is what is wrong: missing, or a key it lacks.
	Problem string
}

func (e *PrerequisiteError) Error() string {
	msg := fmt.Sprintf("%s %s %s", e.Kind, e.ref(), e.Problem)
	if e.For != "" {
		msg += " (needed for " + e.For + ")"
	}
	return msg + "; " + e.how()
}

func (e *PrerequisiteError) Unwrap() error { return ErrPrerequisiteMissing }

func (p Prerequisite) ref() string {
	if p.Namespace != "" {
		return p.Namespace + "/" + p.Name
	}
	return p.Name
}

// how says where the object comes from.
func (p Prerequisite) how() string {
	switch p.Kind {
	case "CustomResourceDefinition":
		if strings.HasSuffix(p.Name, ".cert-manager.io") {
			return "install cert-manager with its CRDs: helm install cert-manager oci://quay.io/jetstack/charts/cert-manager -n cert-manager --create-namespace --set crds.enabled=true"
		}
		return "install the operator that defines it"
	case "ClusterIssuer":
		return fmt.Sprintf("create a cert-manager ClusterIssuer named %s (for Let's Encrypt: an ACME issuer with your e-mail and an HTTP-01 solver of your ingress class)", p.Name)
	case "IngressClass":
		return fmt.Sprintf("install an ingress controller whose IngressClass is %s (ingress-nginx: helm install ingress-nginx oci://ghcr.io/nginx/charts/ingress-nginx -n ingress-nginx --create-namespace, or the upstream chart, which creates the class nginx)", p.Name)
	case "ConfigMap":
		return fmt.Sprintf("create it: kubectl -n %s create configmap %s %s (or distribute it, e.g. with a trust-manager Bundle named %s)", p.Namespace, p.Name, fromFlags(p.Keys, "--from-file=%s=<file>"), p.Name)
	case "Secret":
		return fmt.Sprintf("create it: kubectl -n %s create secret generic %s %s", p.Namespace, p.Name, fromFlags(p.Keys, "--from-file=%s=<file>"))
	}
	return "create it"
}

func fromFlags(keys []string, format string) string {
	flags := make([]string, len(keys))
	for i, k := range keys {
		flags[i] = fmt.Sprintf(format, k)
	}
	return strings.Join(flags, " ")
}

// CheckPrerequisites looks for every prerequisite and returns one
// PrerequisiteError for each that is missing or lacks a key, joined, so a
// single run names everything to fix.
func CheckPrerequisites(ctx context.Context, k client.Client, ps []Prerequisite) error {
	var errs []error
	for _, p := range ps {
		problem, err := checkPrerequisite(ctx, k, p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("looking for %s %s: %w", p.Kind, p.ref(), err))
		case problem != "":
			errs = append(errs, &PrerequisiteError{Prerequisite: p, Problem: problem})
		}
	}
	return errors.Join(errs...)
}

// checkPrerequisite returns what is wrong with p, or "" when it is there.
func checkPrerequisite(ctx context.Context, k client.Client, p Prerequisite) (string, error) {
	gvk, ok := prerequisiteKinds[p.Kind]
	if !ok {
		return "", fmt.Errorf("unknown kind %q; the kinds are %v", p.Kind, PrerequisiteKinds)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := k.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Name}, u)
	switch {
	case apimeta.IsNoMatchError(err):
		return fmt.Sprintf("is missing: the cluster has no %s API", gvk.GroupVersion()), nil
	case apierrors.IsNotFound(err):
		return "is missing", nil
	case err != nil:
		return "", err
	}
	for _, key := range p.Keys {
		if !hasDataKey(u, key) {
			return fmt.Sprintf("has no key %s", key), nil
		}
	}
	return "", nil
}

func hasDataKey(u *unstructured.Unstructured, key string) bool {
	for _, field := range []string{"data", "binaryData"} {
		if m, _, _ := unstructured.NestedMap(u.Object, field); m != nil {
			if _, ok := m[key]; ok {
				return true
			}
		}
	}
	return false
}

// prerequisiteSteps is the first step of the base phase: everything the
// environment needs from the cluster, before anything is changed.
func prerequisiteSteps(spec *Spec, k client.Client) []Step {
	if len(spec.Prerequisites) == 0 {
		return nil
	}
	names := make([]string, len(spec.Prerequisites))
	for i, p := range spec.Prerequisites {
		names[i] = p.Kind + " " + p.ref()
	}
	check := func(ctx context.Context) (Change, error) {
		if err := CheckPrerequisites(ctx, k, spec.Prerequisites); err != nil {
			return Change{}, err
		}
		return Unchanged("present: " + strings.Join(names, ", ")), nil
	}
	return []Step{{Phase: PhaseBase, Name: "prerequisites of " + spec.Environment, Check: check, Apply: noop}}
}
