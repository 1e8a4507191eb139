{{/* The bootstrap config (pkg/bootstrap/config) generated from the values. */}}
{{- define "blinkchamber.bootstrap.config" -}}
{{- /* The pods read secrets where the bootstrap writes them: one mount for both. */ -}}
{{- if has (first (splitList "/" .Values.apps.kvMount)) (list "sys" "auth" "cubbyhole" "identity") -}}
{{- fail (printf "apps.kvMount: %q is reserved by Vault; use a mount such as secret" .Values.apps.kvMount) -}}
{{- end -}}
{{- $ks := .Values.bootstrap.keyStore -}}
{{- $keyStore := dict "type" "file" "path" "/keys/vault-keys.json" -}}
{{- if eq $ks.type "kubernetes-secret" -}}
{{- $keyStore = dict "type" "kubernetes-secret" "namespace" .Release.Namespace "name" $ks.secretName -}}
{{- end -}}
{{- $seal := dict -}}
{{- if eq .Values.vault.seal.type "shamir" -}}
{{- $seal = dict "shamir" (dict "shares" .Values.vault.seal.shamir.shares "threshold" .Values.vault.seal.shamir.threshold "keyStore" $keyStore) -}}
{{- else if eq .Values.vault.seal.type "transit" -}}
{{- $t := .Values.vault.seal.transit -}}
{{- $seal = dict "transit" (dict "address" $t.address "mount" $t.mount "key" $t.key "tokenFile" "/transit/token" "keyStore" $keyStore) -}}
{{- else -}}
{{- $seal = dict "awskms" (dict "region" .Values.vault.seal.awskms.region "kmsKeyId" .Values.vault.seal.awskms.kmsKeyId "keyStore" $keyStore) -}}
{{- end -}}
{{/* Vault in the cluster reviews tokens with its own pod's ServiceAccount
token (bound to system:auth-delegator by templates/vault); an external
Vault gets a token of the reviewer ServiceAccount, which bootstrap binds. */}}
{{- $kubeAuth := dict "reviewerToken" "minted" "reviewerNamespace" .Release.Namespace "reviewerServiceAccount" (printf "%s-vault-token-reviewer" .Release.Name) -}}
{{- if .Values.vault.enabled -}}
{{- $kubeAuth = dict "reviewerToken" "vault-pod" "reviewerNamespace" .Release.Namespace "reviewerServiceAccount" (include "blinkchamber.vault.name" .) -}}
{{- end -}}
{{- $audit := dict "type" "none" -}}
{{- if .Values.vault.audit.enabled -}}{{- $audit = dict "type" "file" "path" "/vault/audit/audit.log" -}}{{- end -}}
{{- $cfg := dict "environment" .Values.global.environment
    "vault" (dict
      "address" (include "blinkchamber.vault.addr" .)
      "caFile" (ternary "/vault-ca/ca.crt" "" (and .Values.vault.enabled .Values.vault.tls.enabled))
      "seal" $seal
      "audit" $audit
      "kubernetesAuth" $kubeAuth
      "kvMount" .Values.apps.kvMount)
    "owner" (printf "helm.%s.%s" .Release.Namespace .Release.Name)
    "prune" .Values.onboarding.prune
    "apps" (concat (include "blinkchamber.bootstrap.apps" . | fromYamlArray) (include "blinkchamber.onboarding.apps" . | fromYamlArray)) -}}
{{- with include "blinkchamber.bootstrap.prerequisites" . | fromYamlArray }}{{ $_ := set $cfg "prerequisites" . }}{{ end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The apps bootstrap provisions: those of the app stack that are enabled. */}}
{{- define "blinkchamber.bootstrap.apps" -}}
{{- include "blinkchamber.apps.bootstrapApps" . -}}
{{- end -}}


{{/*
The platform's own apps (onboarding.apps), as bootstrap config App entries:
the same keys, with each fromSecret reference given the release namespace,
where the bootstrap Job may read exactly the Secrets named. An app name
must be unique, also against the app stack's.
*/}}
{{- define "blinkchamber.onboarding.apps" -}}
{{- $seen := dict -}}
{{- range (include "blinkchamber.bootstrap.apps" . | fromYamlArray) }}{{ $_ := set $seen .name "the app stack" }}{{ end -}}
{{- $out := list -}}
{{- range $i, $a := .Values.onboarding.apps -}}
{{- with index $seen $a.name }}{{ fail (printf "onboarding.apps[%d].name: %q is already an app of %s; app names are unique" $i $a.name .) }}{{ end -}}
{{- $_ := set $seen $a.name (printf "onboarding.apps[%d]" $i) -}}
{{- $app := omit $a "secrets" -}}
{{- $secrets := list -}}
{{- range $s := $a.secrets | default list -}}
{{- $sec := omit $s "fromSecret" -}}
{{- if $s.fromSecret -}}
{{- $refs := dict -}}
{{- range $k, $ref := $s.fromSecret }}{{ $_ := set $refs $k (dict "namespace" $.Release.Namespace "name" $ref.name "key" $ref.key) }}{{ end -}}
{{- $_ := set $sec "fromSecret" $refs -}}
{{- end -}}
{{- $secrets = append $secrets $sec -}}
{{- end -}}
{{- if $secrets }}{{ $_ := set $app "secrets" $secrets }}{{ end -}}
{{- if not (hasKey $app "networkPolicies") }}{{ $_ := set $app "networkPolicies" false }}{{ end -}}
{{- $out = append $out $app -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The Secrets of the release namespace that onboarding.apps reference. */}}
{{- define "blinkchamber.onboarding.secretNames" -}}
{{- $names := list -}}
{{- range $a := .Values.onboarding.apps }}{{ range $s := $a.secrets | default list }}{{ range $k, $ref := $s.fromSecret | default dict }}{{ $names = append $names $ref.name }}{{ end }}{{ end }}{{ end -}}
{{- toYaml ($names | uniq | sortAlpha) -}}
{{- end -}}
