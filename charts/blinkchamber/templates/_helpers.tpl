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
An image reference, from (dict "root" $ "image" {repository, tag, digest}
"what" "<values path>"): repository@digest when a digest is given (the tag
is then ignored: a digest names one image, a tag can move), else
repository:tag, where a tag is required and "latest" is refused. With
global.imageRegistry set, the registry host written in the repository is
replaced by it (ghcr.io/blinkchamber/agent -> REGISTRY/blinkchamber/agent),
and a repository written without a host gets it in front (postgres ->
REGISTRY/postgres, hashicorp/vault -> REGISTRY/hashicorp/vault): the first
path component is a host when it has a "." or a ":" or is localhost, as
container runtimes read it. A digest is the same in any registry the image
is copied to, so it is kept as written.
*/}}
{{- define "blinkchamber.image" -}}
{{- $image := .image | default dict -}}
{{- $repo := required (printf "%s.repository is required" .what) $image.repository | toString -}}
{{- $digest := $image.digest | default "" | toString -}}
{{- if and $digest (not (regexMatch "^sha256:[a-f0-9]{64}$" $digest)) -}}
{{- fail (printf "%s.digest %q: want sha256: followed by 64 lower-case hex digits" .what $digest) -}}
{{- end -}}
{{- if or (contains "@" $repo) (hasSuffix ":latest" $repo) -}}
{{- fail (printf "%s.repository %q: give the tag in %s.tag and the digest in %s.digest, not in the repository" .what $repo .what .what) -}}
{{- end -}}
{{- $ref := "" -}}
{{- if $digest -}}
{{- $ref = printf "@%s" $digest -}}
{{- else -}}
{{- $tag := required (printf "%s.tag is required (a pinned version; latest is refused), or %s.digest" .what .what) $image.tag | toString -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "%s.tag: latest is refused; pin a version or give %s.digest" .what .what) -}}
{{- end -}}
{{- $ref = printf ":%s" $tag -}}
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
{{- printf "%s%s" $repo $ref -}}
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


{{/*
A pod's scheduling fields from its component's values, (dict "values"
<component values> "affinity" <the chart's own affinity, a dict>):
priorityClassName, nodeSelector, tolerations and affinity. Each of
nodeAffinity, podAffinity and podAntiAffinity given in the values replaces
the chart's whole (the chart sets only podAntiAffinity, to spread replicas
over nodes); `podAntiAffinity: {}` drops the chart's.
*/}}
{{- define "blinkchamber.podScheduling" -}}
{{- $v := .values | default dict -}}
{{- $affinity := deepCopy (.affinity | default dict) -}}
{{- range $k, $a := $v.affinity | default dict }}{{ $_ := set $affinity $k $a }}{{ end -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The chart's affinity that spreads a component's replicas over nodes, as a
dict, from (dict "labels" <its pods' selector labels, a dict> "required"
bool): preferred (the injector, Zitadel) or required (Vault in mode ha, where
two replicas on one node would lose raft's quorum with that node).
*/}}
{{- define "blinkchamber.spreadAffinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" .labels) -}}
{{- if .required -}}
{{- toYaml (dict "podAntiAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term))) -}}
{{- else -}}
{{- toYaml (dict "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term)))) -}}
{{- end -}}
{{- end -}}

{{/*
Labels or annotations a user adds to a component's pods, as YAML, from
(dict "what" "<values path>" "values" <map>): every value as a string.
Keys under the prefixes the chart sets itself are refused (labels:
app.kubernetes.io/, helm.sh/, blinkchamber.io/; annotations:
blinkchamber.io/, prometheus.io/, checksum/), so that no value can change a
selector, an injection or a scrape the chart relies on.
*/}}
{{- define "blinkchamber.podMetadataExtra" -}}
{{- $reserved := list "blinkchamber.io/" "prometheus.io/" "checksum/" -}}
{{- if hasSuffix "podLabels" .what -}}{{- $reserved = list "app.kubernetes.io/" "helm.sh/" "blinkchamber.io/" -}}{{- end -}}
{{- $out := dict -}}
{{- range $k, $v := .values | default dict -}}
{{- range $p := $reserved -}}
{{- if hasPrefix $p $k -}}
{{- fail (printf "%s: %s is the chart's to set (%s keys are reserved: %s)" $.what $k $p (join ", " $reserved)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out $k (toString $v) -}}
{{- end -}}
{{- with $out }}{{ toYaml . }}{{ end -}}
{{- end -}}
