{{/*
What the environment needs from the cluster and the chart does not install,
as the bootstrap config's prerequisites (pkg/bootstrap/config.Prerequisite):
the bootstrap looks for each before it changes anything and names what is
missing and how to get it. NOTES.txt lists the same.
*/}}
{{- define "blinkchamber.bootstrap.prerequisites" -}}
{{- $apps := .Values.apps -}}
{{- $ing := $apps.ingress -}}
{{- $out := list -}}
{{- $certs := list -}}
{{- if .Values.injector.certManager.enabled }}{{ $certs = append $certs "the webhook's certificate (injector.certManager)" }}{{ end -}}
{{- if and .Values.vault.enabled .Values.vault.tls.enabled }}{{ $certs = append $certs "Vault's certificate (vault.tls)" }}{{ end -}}
{{- if $certs -}}
{{- $out = append $out (dict "kind" "CustomResourceDefinition" "name" "certificates.cert-manager.io" "for" (join ", " $certs)) -}}
{{- end -}}
{{- if and $ing.enabled $ing.certManager.enabled -}}
{{- $for := "the Ingresses' certificates (apps.ingress.certManager)" -}}
{{- $out = append $out (dict "kind" "CustomResourceDefinition" "name" "clusterissuers.cert-manager.io" "for" $for) -}}
{{- $out = append $out (dict "kind" "ClusterIssuer" "name" $ing.certManager.clusterIssuer "for" $for) -}}
{{- end -}}
{{- if $ing.enabled -}}
{{- $out = append $out (dict "kind" "IngressClass" "name" $ing.className "for" "the app stack's Ingresses (apps.ingress.className)") -}}
{{- end -}}
{{- if and (include "blinkchamber.apps.enabled" (list . "vaultBackup")) $apps.vaultBackup.vaultCA.configMap -}}
{{- $out = append $out (dict "kind" "ConfigMap" "namespace" (include "blinkchamber.apps.namespace" .) "name" $apps.vaultBackup.vaultCA.configMap "keys" (list "ca.crt") "for" "the Vault backups' trust in Vault's certificate (apps.vaultBackup.vaultCA.configMap)") -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* RBAC rules letting the bootstrap look for the prerequisites (get, by name only). */}}
{{- define "blinkchamber.bootstrap.prerequisiteRules" -}}
{{- $byKind := dict -}}
{{- range (include "blinkchamber.bootstrap.prerequisites" . | fromYamlArray) -}}
{{- $_ := set $byKind .kind (append (get $byKind .kind | default list) .name) -}}
{{- end -}}
{{- $where := dict "CustomResourceDefinition" (list "apiextensions.k8s.io" "customresourcedefinitions") "ClusterIssuer" (list "cert-manager.io" "clusterissuers") "IngressClass" (list "networking.k8s.io" "ingressclasses") "ConfigMap" (list "" "configmaps") -}}
{{- range $kind, $names := $byKind }}
- apiGroups: [{{ index (get $where $kind) 0 | quote }}]
  resources: [{{ index (get $where $kind) 1 | quote }}]
  resourceNames: {{ $names | uniq | toJson }}
  verbs: ["get"]
{{- end }}
{{- end -}}
