{{/* Names and labels shared by every template of the chart. */}}

{{- define "blinkchamber.name" -}}blinkchamber{{- end -}}

{{- define "blinkchamber.labels" -}}
app.kubernetes.io/part-of: blinkchamber
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "blinkchamber.injector.name" -}}{{ .Release.Name }}-injector{{- end -}}
{{- define "blinkchamber.vault.name" -}}{{ .Release.Name }}-vault{{- end -}}
{{- define "blinkchamber.bootstrap.name" -}}{{ .Release.Name }}-bootstrap{{- end -}}

{{/* The address agents and the bootstrap Job use to reach Vault. */}}
{{- define "blinkchamber.vault.addr" -}}
{{- if .Values.vault.enabled -}}
{{ if .Values.vault.tls.enabled }}https{{ else }}http{{ end }}://{{ include "blinkchamber.vault.name" . }}.{{ .Release.Namespace }}.svc:8200
{{- else -}}
{{ required "vault.externalAddress is required when vault.enabled is false" .Values.vault.externalAddress }}
{{- end -}}
{{- end -}}

{{/*
An image reference, from (dict "root" $ "image" {repository, tag} "what"
"<values path>"): a tag is required and "latest" is refused. With
global.imageRegistry set, the registry host written in the repository is
replaced by it (ghcr.io/blinkchamber/agent -> REGISTRY/blinkchamber/agent),
and a repository written without a host gets it in front (postgres ->
REGISTRY/postgres, hashicorp/vault -> REGISTRY/hashicorp/vault): the first
path component is a host when it has a "." or a ":" or is localhost, as
container runtimes read it.
*/}}
{{- define "blinkchamber.image" -}}
{{- $image := .image | default dict -}}
{{- $repo := required (printf "%s.repository is required" .what) $image.repository | toString -}}
{{- $tag := required (printf "%s.tag is required (a pinned version; latest is refused)" .what) $image.tag | toString -}}
{{- if or (eq $tag "latest") (hasSuffix ":latest" $repo) -}}
{{- fail (printf "%s.tag: latest is refused; pin a version" .what) -}}
{{- end -}}
{{- $registry := include "blinkchamber.imageRegistry" .root -}}
{{- if $registry -}}
{{- $parts := splitList "/" $repo -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repo = rest $parts | join "/" -}}
{{- end -}}
{{- $repo = printf "%s/%s" $registry $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* global.imageRegistry without a trailing slash; a scheme is refused. */}}
{{- define "blinkchamber.imageRegistry" -}}
{{- $registry := ((.Values.global | default dict).imageRegistry | default "") | toString | trimSuffix "/" -}}
{{- if or (contains "://" $registry) (contains "@" $registry) (regexMatch "\\s" $registry) -}}
{{- fail (printf "global.imageRegistry %q: give a registry host, optionally with a port and path (registry.example.com:5000/mirror), without a scheme" $registry) -}}
{{- end -}}
{{- $registry -}}
{{- end -}}

{{/*
A container's image and imagePullPolicy, from the same dict as
blinkchamber.image; the image's pullPolicy defaults to IfNotPresent.
*/}}
{{- define "blinkchamber.containerImage" -}}
{{- $policy := (.image | default dict).pullPolicy | default "IfNotPresent" -}}
{{- if not (has $policy (list "Always" "IfNotPresent" "Never")) -}}
{{- fail (printf "%s.pullPolicy %q: must be Always, IfNotPresent or Never" .what $policy) -}}
{{- end -}}
image: {{ include "blinkchamber.image" . | quote }}
imagePullPolicy: {{ $policy }}
{{- end -}}

{{/*
The pod's imagePullSecrets from global.imagePullSecrets (names, or
{name: ...} as Kubernetes writes them); nothing when the list is empty.
*/}}
{{- define "blinkchamber.imagePullSecrets" -}}
{{- with (.Values.global | default dict).imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
{{- $name := . }}
{{- if kindIs "map" . }}{{ $name = .name }}{{ end }}
  - name: {{ required "global.imagePullSecrets: an entry has no name" $name | toString | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The restricted container securityContext. */}}
{{- define "blinkchamber.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Vault's CA, mounted where the injector and the bootstrap read it. */}}
{{- define "blinkchamber.vault.caVolume" -}}
- name: vault-ca
  secret:
    secretName: {{ include "blinkchamber.vault.name" . }}-tls
    items:
      - {key: ca.crt, path: ca.crt}
{{- end -}}

{{/* GOMEMLIMIT of the injector: injector.goMemoryLimit, or 80 % of its
memory limit (a whole number of Mi or Gi), which leaves the runtime's own
memory room under the limit. */}}
{{- define "blinkchamber.injector.goMemLimit" -}}
{{- $set := .Values.injector.goMemoryLimit -}}
{{- $lim := toString (dig "limits" "memory" "" .Values.injector.resources) -}}
{{- if $set -}}{{ $set }}
{{- else if regexMatch "^[0-9]+Mi$" $lim -}}{{ div (mul (trimSuffix "Mi" $lim | int) 8) 10 }}MiB
{{- else if regexMatch "^[0-9]+Gi$" $lim -}}{{ div (mul (trimSuffix "Gi" $lim | int) 8192) 10 }}MiB
{{- else -}}{{ fail (printf "injector.goMemoryLimit is empty and injector.resources.limits.memory %q is not a whole number of Mi or Gi to take 80 %% of; set injector.goMemoryLimit (e.g. 100MiB)" $lim) }}
{{- end -}}
{{- end -}}
