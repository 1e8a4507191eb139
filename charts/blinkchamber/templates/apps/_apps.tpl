{{/*
Helpers of the app stack (templates/apps/*.yaml). Every app pod gets its
credentials only from files the blinkchamber agent renders into
/blinkchamber/secrets (annotations below); no Kubernetes Secret holds an app
credential. These helpers read core keys (.Values.global, .Values.networkPolicies)
with defaults, so the app templates render even when those are absent.
*/}}

{{/* The namespace all app components run in. */}}
{{- define "blinkchamber.apps.namespace" -}}
{{- (.Values.apps | default dict).namespace | default "blinkchamber-apps" -}}
{{- end -}}

{{/* true when component (list root name) is enabled: apps.<name>.enabled. */}}
{{- define "blinkchamber.apps.enabled" -}}
{{- $root := index . 0 -}}
{{- if (index ($root.Values.apps | default dict) (index . 1) | default dict).enabled -}}true{{- end -}}
{{- end -}}

{{/* development | staging | production, from global.environment (default development). */}}
{{- define "blinkchamber.apps.environment" -}}
{{- $env := (.Values.global | default dict).environment | default "development" | toString -}}
{{- if not (has $env (list "development" "staging" "production")) -}}
{{- fail (printf "global.environment: %q must be development, staging or production" $env) -}}
{{- end -}}
{{- $env -}}
{{- end -}}

{{/* NetworkPolicies are rendered unless networkPolicies.enabled is false. */}}
{{- define "blinkchamber.apps.networkPolicies" -}}
{{- if ne (toString (.Values.networkPolicies | default dict).enabled) "false" -}}true{{- end -}}
{{- end -}}

{{/* Labels of every object of component (list root name). */}}
{{- define "blinkchamber.apps.labels" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{ include "blinkchamber.apps.selectorLabels" . }}
app.kubernetes.io/component: {{ $name }}
app.kubernetes.io/part-of: blinkchamber
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Selector labels of component (list root name). */}}
{{- define "blinkchamber.apps.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end -}}

{{/*
The KV v2 API path of one of an app's secrets (list root app name):
<kvMount>/data/<apps namespace>/<app>/<name>, as the bootstrap writes it and
the app's Vault policy allows.
*/}}
{{- define "blinkchamber.apps.kvPath" -}}
{{- $root := index . 0 -}}
{{- printf "%s/data/%s/%s/%s" (($root.Values.apps | default dict).kvMount | default "secret") (include "blinkchamber.apps.namespace" $root) (index . 1) (index . 2) -}}
{{- end -}}

{{/*
A consul-template (agent) template that renders one key of a KV v2 secret,
with no trailing newline (list path key).
*/}}
{{- define "blinkchamber.apps.kvField" -}}
{{- printf "{{ with secret %q }}{{ .Data.data.%s }}{{ end }}" (index . 0) (index . 1) -}}
{{- end -}}

{{/*
Pod annotations common to every app pod: injection, revocation of the
agent's Vault token (and its leases) when the pod stops. The Vault role is
the pod's ServiceAccount, which is the app's name, so no role annotation.
*/}}
{{- define "blinkchamber.apps.injectAnnotations" -}}
blinkchamber.io/inject: "true"
blinkchamber.io/revoke-on-shutdown: "true"
{{- end -}}

{{/* The pod securityContext for uid (an int). */}}
{{- define "blinkchamber.apps.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container securityContext for uid (list uid readOnlyRootFilesystem). */}}
{{- define "blinkchamber.apps.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ index . 0 }}
runAsGroup: {{ index . 0 }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ index . 1 }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Resource presets per environment and component, used when
apps.<component>.resources is empty. Development is minimal.
*/}}
{{- define "blinkchamber.apps.resourcePresets" -}}
development:
  postgresql: {requests: {cpu: 50m, memory: 128Mi}, limits: {cpu: 500m, memory: 512Mi}}
  minio: {requests: {cpu: 50m, memory: 128Mi}, limits: {cpu: 500m, memory: 512Mi}}
  grafana: {requests: {cpu: 25m, memory: 96Mi}, limits: {cpu: 250m, memory: 256Mi}}
  prometheus: {requests: {cpu: 50m, memory: 192Mi}, limits: {cpu: 500m, memory: 512Mi}}
  zitadel: {requests: {cpu: 50m, memory: 192Mi}, limits: {cpu: 500m, memory: 512Mi}}
  mailu: {requests: {cpu: 25m, memory: 128Mi}, limits: {cpu: 250m, memory: 384Mi}}
  vaultBackup: {requests: {cpu: 10m, memory: 32Mi}, limits: {cpu: 200m, memory: 128Mi}}
staging:
  postgresql: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 1Gi}}
  minio: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 1Gi}}
  grafana: {requests: {cpu: 100m, memory: 192Mi}, limits: {cpu: 500m, memory: 512Mi}}
  prometheus: {requests: {cpu: 250m, memory: 1Gi}, limits: {cpu: "1", memory: 2Gi}}
  zitadel: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 1Gi}}
  mailu: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 500m, memory: 512Mi}}
  vaultBackup: {requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: 500m, memory: 256Mi}}
production:
  postgresql: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "2", memory: 4Gi}}
  minio: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "2", memory: 4Gi}}
  grafana: {requests: {cpu: 250m, memory: 256Mi}, limits: {cpu: "1", memory: 1Gi}}
  prometheus: {requests: {cpu: 500m, memory: 2Gi}, limits: {cpu: "2", memory: 4Gi}}
  zitadel: {requests: {cpu: 500m, memory: 512Mi}, limits: {cpu: "2", memory: 2Gi}}
  mailu: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 1Gi}}
  vaultBackup: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: "1", memory: 512Mi}}
{{- end -}}

{{/*
The resources of component (list root name): apps.<name>.resources when set
(it must then have both requests and limits), else the environment's preset.
*/}}
{{- define "blinkchamber.apps.resources" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $explicit := (index ($root.Values.apps | default dict) $name | default dict).resources | default dict -}}
{{- if $explicit -}}
{{- if not (and $explicit.requests $explicit.limits) -}}
{{- fail (printf "apps.%s.resources: give both requests and limits (or leave it empty for the %s preset)" $name (include "blinkchamber.apps.environment" $root)) -}}
{{- end -}}
{{- toYaml $explicit -}}
{{- else -}}
{{- $presets := include "blinkchamber.apps.resourcePresets" $root | fromYaml -}}
{{- toYaml (index (index $presets (include "blinkchamber.apps.environment" $root)) $name) -}}
{{- end -}}
{{- end -}}

{{/* The release namespace, where Vault and the injector run. */}}
{{- define "blinkchamber.apps.vaultNamespace" -}}
{{- (((.Values.apps | default dict).networkPolicy | default dict).vault | default dict).namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The labels of Vault's pods, as YAML. */}}
{{- define "blinkchamber.apps.vaultPodLabels" -}}
{{- $vault := (((.Values.apps | default dict).networkPolicy | default dict).vault | default dict) -}}
{{- toYaml ($vault.podLabels | default (dict "app.kubernetes.io/name" "vault")) -}}
{{- end -}}

{{/*
Egress every app pod needs, as NetworkPolicy egress rules: DNS in
kube-system and Vault in the release namespace (the agent logs in and reads
there).
*/}}
{{- define "blinkchamber.apps.baseEgress" -}}
{{- $np := (.Values.apps | default dict).networkPolicy | default dict -}}
{{- $vault := $np.vault | default dict -}}
{{- $dns := $np.dns | default dict -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $dns.namespace | default "kube-system" }}
  ports:
    - {protocol: UDP, port: {{ $dns.port | default 53 }}}
    - {protocol: TCP, port: {{ $dns.port | default 53 }}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ include "blinkchamber.apps.vaultNamespace" . }}
      podSelector:
        matchLabels: {{- include "blinkchamber.apps.vaultPodLabels" . | nindent 10 }}
  ports:
    - {protocol: TCP, port: {{ $vault.port | default 8200 }}}
{{- end -}}

{{/* A NetworkPolicy peer for the ingress controller's pods. */}}
{{- define "blinkchamber.apps.ingressControllerPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ ((.Values.apps | default dict).ingress | default dict).controllerNamespace | default "ingress-nginx" }}
{{- end -}}

{{/* A NetworkPolicy peer for the app stack's component name (list root name), in the apps namespace. */}}
{{- define "blinkchamber.apps.peer" -}}
{{- $root := index . 0 -}}
- podSelector:
    matchLabels: {{- include "blinkchamber.apps.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* true when Ingress objects are rendered (apps.ingress.enabled). */}}
{{- define "blinkchamber.apps.ingressEnabled" -}}
{{- if ((.Values.apps | default dict).ingress | default dict).enabled -}}true{{- end -}}
{{- end -}}

{{/*
An Ingress (dict root name host service port) for the ingress-nginx class,
with cert-manager's cluster-issuer annotation and TLS when
apps.ingress.certManager.enabled.
*/}}
{{- define "blinkchamber.apps.ingress" -}}
{{- $root := .root -}}
{{- $ing := ($root.Values.apps | default dict).ingress | default dict -}}
{{- $cm := $ing.certManager | default dict -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ .name }}
  namespace: {{ include "blinkchamber.apps.namespace" $root }}
  labels: {{- include "blinkchamber.apps.labels" (list $root .component) | nindent 4 }}
  {{- if or $cm.enabled .annotations }}
  annotations:
    {{- if $cm.enabled }}
    cert-manager.io/cluster-issuer: {{ $cm.clusterIssuer | default "letsencrypt" | quote }}
    {{- end }}
    {{- with .annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  ingressClassName: {{ $ing.className | default "nginx" }}
  {{- if $cm.enabled }}
  tls:
    - hosts: [{{ .host | quote }}]
      secretName: {{ .name }}-tls
  {{- end }}
  rules:
    - host: {{ .host | quote }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {{ .service }}
                port:
                  name: {{ .port }}
{{- end -}}

{{/*
The apps the bootstrap must provision for the enabled components, as a YAML
list of pkg/bootstrap/config App entries (the `apps:` of the bootstrap
config): for each, its ServiceAccount (= Vault role), the KV secrets its
templates read, generated once by the bootstrap and never written anywhere
else, and for Zitadel the database role Vault's database engine issues.
The core chart's "blinkchamber.bootstrap.apps" can be:
  {{ include "blinkchamber.apps.bootstrapApps" . }}
*/}}
{{- define "blinkchamber.apps.bootstrapApps" -}}
{{- $ns := include "blinkchamber.apps.namespace" . -}}
{{- $apps := list -}}
{{- $pw := dict "length" 32 "charset" "alphanumeric" -}}
{{- $conn := ((.Values.apps | default dict).postgresql | default dict).vaultConnection | default dict -}}
{{- if include "blinkchamber.apps.enabled" (list . "postgresql") -}}
{{- $admin := dict "name" "admin" "data" (dict "username" ($conn.username | default "postgres")) "generate" (dict "password" $pw) -}}
{{- $apps = append $apps (dict "name" "postgresql" "namespace" $ns "serviceAccount" "postgresql" "secrets" (list $admin)) -}}
{{- end -}}
{{- if include "blinkchamber.apps.enabled" (list . "minio") -}}
{{- $apps = append $apps (dict "name" "minio" "namespace" $ns "serviceAccount" "minio" "secrets" (list
    (dict "name" "root" "generate" (dict "user" (dict "length" 20 "charset" "alphanumeric") "password" (dict "length" 40 "charset" "alphanumeric"))))) -}}
{{- end -}}
{{- if include "blinkchamber.apps.enabled" (list . "grafana") -}}
{{- $apps = append $apps (dict "name" "grafana" "namespace" $ns "serviceAccount" "grafana" "secrets" (list
    (dict "name" "admin" "data" (dict "username" (.Values.apps.grafana.adminUser | default "admin")) "generate" (dict "password" $pw))
    (dict "name" "secret-key" "generate" (dict "key" $pw)))) -}}
{{- end -}}
{{- if include "blinkchamber.apps.enabled" (list . "prometheus") -}}
{{- /* Prometheus reads no KV secret; its role lets the agent log in (the agent's own token is rendered for the Vault scrape). */ -}}
{{- $vaultScrape := ((.Values.apps.prometheus.scrape | default dict).vault | default dict) -}}
{{- $access := ternary (list "metrics") (list) (ne (toString $vaultScrape.agentToken) "false") -}}
{{- $apps = append $apps (dict "name" "prometheus" "namespace" $ns "serviceAccount" "prometheus" "vaultAccess" $access) -}}
{{- end -}}
{{- if include "blinkchamber.apps.enabled" (list . "vaultBackup") -}}
{{- /* The backup CronJob reads nothing but raft snapshots. */ -}}
{{- $apps = append $apps (dict "name" "vault-backup" "namespace" $ns "serviceAccount" "vault-backup" "vaultAccess" (list "raft-snapshot")) -}}
{{- end -}}
{{- if include "blinkchamber.apps.enabled" (list . "zitadel") -}}
{{- $z := .Values.apps.zitadel -}}
{{- $db := $z.database | default dict -}}
{{- $apps = append $apps (dict "name" "zitadel" "namespace" $ns "serviceAccount" "zitadel"
    "secrets" (list
      (dict "name" "masterkey" "generate" (dict "masterkey" (dict "length" 32 "charset" "alphanumeric")))
      (dict "name" "db" "data" (dict "username" ($db.user | default "zitadel")) "generate" (dict "password" $pw))
      (dict "name" "admin" "data" (dict "username" (($z.firstInstance | default dict).adminUser | default "zitadel-admin")) "generate" (dict "password" $pw)))
    "postgres" (dict
      "connection" (dict
        "host" (printf "postgresql.%s.svc" $ns) "port" 5432 "database" "postgres"
        "username" ($conn.username | default "postgres")
        "passwordFromSecret" "postgresql/admin#password"
        "sslMode" "disable")
      "roles" (list (dict
        "name" ($db.adminRole | default "zitadel-admin")
        "defaultTTL" ($db.adminTTL | default "1h")
        "maxTTL" ($db.adminMaxTTL | default "24h")
        "creationStatements" (include "blinkchamber.apps.zitadel.adminCreationStatements" .))))) -}}
{{- end -}}
{{- if include "blinkchamber.apps.enabled" (list . "mailu") -}}
{{- $apps = append $apps (dict "name" "mailu" "namespace" $ns "serviceAccount" "mailu" "secrets" (list
    (dict "name" "secret-key" "generate" (dict "key" (dict "length" 32 "charset" "alphanumeric")))
    (dict "name" "admin" "data" (dict "username" (.Values.apps.mailu.adminUser | default "admin")) "generate" (dict "password" $pw)))) -}}
{{- end -}}
{{- toYaml $apps -}}
{{- end -}}

{{/*
SQL Vault's database engine runs (as the PostgreSQL superuser) to issue
Zitadel's short-lived admin login. The login's sessions run as the NOLOGIN
role zitadel_owner (created here when missing; CREATEDB CREATEROLE, not
superuser), so the database and the user Zitadel's init creates belong to
zitadel_owner, not to the expiring login, which Vault can then drop.
*/}}
{{- define "blinkchamber.apps.zitadel.adminCreationStatements" -}}
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'zitadel_owner') THEN CREATE ROLE zitadel_owner NOLOGIN CREATEDB CREATEROLE; END IF; END $$;
CREATE ROLE "{{"{{"}}name{{"}}"}}" WITH LOGIN PASSWORD '{{"{{"}}password{{"}}"}}' VALID UNTIL '{{"{{"}}expiration{{"}}"}}' IN ROLE zitadel_owner;
ALTER ROLE "{{"{{"}}name{{"}}"}}" SET role = 'zitadel_owner';
{{- end -}}
