package config

import (
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Prerequisite is an object of the cluster the environment needs and that
// nothing of blinkchamber installs; the bootstrap looks for each before it
// changes anything and names what is missing and how to get it. The chart
// lists them from its values (cert-manager, the ClusterIssuer, the
// IngressClass, Vault's CA ConfigMap).
type Prerequisite struct {
	// Kind: CustomResourceDefinition, ClusterIssuer, IngressClass,
	// ConfigMap or Secret.
	Kind string `json:"kind"`
	// Namespace of a ConfigMap or Secret.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Keys a ConfigMap or Secret must hold.
	Keys []string `json:"keys,omitempty"`
	// For says what needs it.
	For string `json:"for,omitempty"`
}

var prerequisiteKinds = []string{"CustomResourceDefinition", "ClusterIssuer", "IngressClass", "ConfigMap", "Secret"}

func validatePrerequisites(p *field.Path, ps []Prerequisite) field.ErrorList {
	var errs field.ErrorList
	for i, pr := range ps {
		ip := p.Index(i)
		namespaced := pr.Kind == "ConfigMap" || pr.Kind == "Secret"
		switch {
		case pr.Kind == "":
			errs = append(errs, field.Required(ip.Child("kind"), "one of CustomResourceDefinition, ClusterIssuer, IngressClass, ConfigMap, Secret"))
		case !namespaced && !slices.Contains(prerequisiteKinds, pr.Kind):
			errs = append(errs, field.NotSupported(ip.Child("kind"), pr.Kind, prerequisiteKinds))
		}
		for _, msg := range validation.IsDNS1123Subdomain(pr.Name) {
			errs = append(errs, field.Invalid(ip.Child("name"), pr.Name, msg))
		}
		switch {
		case namespaced && pr.Namespace == "":
			errs = append(errs, field.Required(ip.Child("namespace"), "a "+pr.Kind+" lives in a namespace"))
		case namespaced:
			for _, msg := range validation.IsDNS1123Label(pr.Namespace) {
				errs = append(errs, field.Invalid(ip.Child("namespace"), pr.Namespace, msg))
			}
		case pr.Namespace != "":
			errs = append(errs, field.Forbidden(ip.Child("namespace"), "a "+pr.Kind+" is a cluster object"))
		}
		if !namespaced && len(pr.Keys) > 0 {
			errs = append(errs, field.Forbidden(ip.Child("keys"), "only a ConfigMap or Secret has keys"))
		}
		for j, k := range pr.Keys {
			for _, msg := range validation.IsConfigMapKey(k) {
				errs = append(errs, field.Invalid(ip.Child("keys").Index(j), k, msg))
			}
		}
	}
	return errs
}
