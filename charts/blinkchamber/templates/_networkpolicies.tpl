{{/*
Peers and rules of the release namespace's NetworkPolicies
(networkpolicies.yaml).
*/}}

{{/* The API server as NetworkPolicy peers: it is no pod, so ipBlocks of networkPolicies.kubeAPIServer.cidrs. */}}
{{- define "blinkchamber.np.apiServerPeers" -}}
{{- $api := (.Values.networkPolicies | default dict).kubeAPIServer | default dict -}}
{{- range ($api.cidrs | default (list "0.0.0.0/0")) }}
- ipBlock: {cidr: {{ . | quote }}}
{{- end }}
{{- end -}}

{{/* An egress rule to the API server's addresses and ports. */}}
{{- define "blinkchamber.np.apiServerEgress" -}}
{{- $api := (.Values.networkPolicies | default dict).kubeAPIServer | default dict -}}
- to: {{- include "blinkchamber.np.apiServerPeers" . | nindent 4 }}
  ports:
    {{- range ($api.ports | default (list 443 6443)) }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}

{{/* An egress rule to the cluster DNS (apps.networkPolicy.dns). */}}
{{- define "blinkchamber.np.dnsEgress" -}}
{{- $dns := ((.Values.apps | default dict).networkPolicy | default dict).dns | default dict -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $dns.namespace | default "kube-system" }}
  ports:
    - {protocol: UDP, port: {{ $dns.port | default 53 }}}
    - {protocol: TCP, port: {{ $dns.port | default 53 }}}
{{- end -}}

{{/*
Who may scrape the injector's metrics: the chart's Prometheus when it is on,
and networkPolicies.metricsFrom. Empty when neither: the caller then
renders no rule (a rule with no peers would let everyone in).
*/}}
{{- define "blinkchamber.np.metricsPeers" -}}
{{- if include "blinkchamber.apps.enabled" (list . "prometheus") }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ include "blinkchamber.apps.namespace" . }}
  podSelector:
    matchLabels: {{- include "blinkchamber.apps.selectorLabels" (list . "prometheus") | nindent 6 }}
{{- end }}
{{- with (.Values.networkPolicies | default dict).metricsFrom }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The TCP port of a URL (list url): its own, else 443 for https, 80 for http. */}}
{{- define "blinkchamber.np.urlPort" -}}
{{- $u := urlParse (index . 0) -}}
{{- $hostPort := splitList ":" $u.host -}}
{{- if gt (len $hostPort) 1 -}}{{ last $hostPort }}{{- else -}}{{ ternary 443 80 (eq $u.scheme "https") }}{{- end -}}
{{- end -}}

{{/*
An egress rule to Vault's API: the chart's Vault pods on 8200, or an
external Vault (vault.externalAddress, outside the cluster or not) on its
address's port, wherever it is.
*/}}
{{- define "blinkchamber.np.vaultEgress" -}}
{{- if .Values.vault.enabled -}}
- to:
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: vault
          app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
    - {protocol: TCP, port: 8200}
{{- else -}}
- ports:
    - {protocol: TCP, port: {{ include "blinkchamber.np.urlPort" (list (include "blinkchamber.vault.addr" .)) }}}
{{- end -}}
{{- end -}}

{{/*
An egress rule to the seal, wherever it is: the transit Vault's port
(vault.seal.transit.address), or 443 for AWS KMS. Nothing for Shamir.
*/}}
{{- define "blinkchamber.np.sealEgress" -}}
{{- $seal := .Values.vault.seal -}}
{{- if eq $seal.type "transit" -}}
- ports:
    - {protocol: TCP, port: {{ include "blinkchamber.np.urlPort" (list $seal.transit.address) }}}
{{- else if eq $seal.type "awskms" -}}
- ports:
    - {protocol: TCP, port: 443}
{{- end -}}
{{- end -}}
