{{/* The bootstrap config (pkg/bootstrap/config) generated from the values. */}}
{{- define "blinkchamber.bootstrap.config" -}}
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
      "kubernetesAuth" $kubeAuth)
    "apps" (include "blinkchamber.bootstrap.apps" . | fromYamlArray) -}}
{{- with include "blinkchamber.bootstrap.prerequisites" . | fromYamlArray }}{{ $_ := set $cfg "prerequisites" . }}{{ end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The apps bootstrap provisions: those of the app stack that are enabled. */}}
{{- define "blinkchamber.bootstrap.apps" -}}
{{- include "blinkchamber.apps.bootstrapApps" . -}}
{{- end -}}
