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

{{/* An image reference; a tag is required and "latest" is refused. */}}
{{- define "blinkchamber.image" -}}
{{- $tag := required (printf "%s: image tag is required" .what) .image.tag -}}
{{- if eq (toString $tag) "latest" -}}{{- fail (printf "%s: the image tag must not be latest" .what) -}}{{- end -}}
{{ .image.repository }}:{{ $tag }}
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
