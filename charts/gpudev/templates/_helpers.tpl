{{/* Names ------------------------------------------------------------------------------------ */}}

{{- define "gpudev.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: <release>-gpudev, or the release name when it already
contains the chart name. Kept to 39 characters so "-availability" still fits in 52
(the CronJob name limit). */}}
{{- define "gpudev.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 39 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 39 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 39 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpudev.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels --------------------------------------------------------------------------------- */}}

{{- define "gpudev.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpudev.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gpudev.labels" -}}
helm.sh/chart: {{ include "gpudev.chart" . }}
{{ include "gpudev.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpudev
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: call with (dict "ctx" $ "component" "api"). */}}
{{- define "gpudev.componentLabels" -}}
{{ include "gpudev.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gpudev.componentSelectorLabels" -}}
{{ include "gpudev.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image ---------------------------------------------------------------------------------- */}}

{{- define "gpudev.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Where dev boxes' agents reach the API (AGENT_API_URL): processor.config.agent.apiUrl, else
the Ingress's first host (https with TLS), else nothing (no agent). */}}
{{- define "gpudev.agentApiUrl" -}}
{{- $a := .Values.processor.config.agent -}}
{{- if $a.enabled -}}
{{- if $a.apiUrl -}}
{{ $a.apiUrl }}
{{- else if and .Values.api.ingress.enabled .Values.api.ingress.hosts -}}
{{ ternary "https" "http" (gt (len .Values.api.ingress.tls) 0) }}://{{ (first .Values.api.ingress.hosts).host }}
{{- end -}}
{{- end -}}
{{- end }}

{{/* Service accounts ----------------------------------------------------------------------- */}}

{{/* (dict "ctx" $ "component" "api") -> the component's ServiceAccount name. */}}
{{- define "gpudev.serviceAccountName" -}}
{{- $values := index .ctx.Values .component }}
{{- if $values.serviceAccount.create }}
{{- default (printf "%s-%s" (include "gpudev.fullname" .ctx) .component) $values.serviceAccount.name }}
{{- else }}
{{- default "default" $values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Security: every gpudev container runs as this. Not configurable on purpose. --------------- */}}

{{- define "gpudev.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "gpudev.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Database ------------------------------------------------------------------------------- */}}

{{/* The Secret holding database credentials: the operator's, or the chart's. */}}
{{- define "gpudev.databaseSecretName" -}}
{{- if .Values.database.existingSecret.name -}}
{{ .Values.database.existingSecret.name }}
{{- else -}}
{{ include "gpudev.fullname" . }}-database
{{- end -}}
{{- end }}

{{/* True ("true") when the connection is a full URL (DATABASE_URL) rather than separate fields. */}}
{{- define "gpudev.databaseUsesUrl" -}}
{{- if .Values.database.existingSecret.name -}}
{{- if .Values.database.existingSecret.urlKey }}true{{ end -}}
{{- else if .Values.database.url }}true{{ end -}}
{{- end }}

{{/* The non-secret connection settings (empty when a URL carries everything). */}}
{{- define "gpudev.databaseConfig" -}}
{{- if not (include "gpudev.databaseUsesUrl" .) }}
POSTGRES_HOST: {{ required "database.host is required (or database.url, or database.existingSecret with urlKey)" .Values.database.host | quote }}
POSTGRES_PORT: {{ .Values.database.port | int64 | quote }}
POSTGRES_DB: {{ .Values.database.name | quote }}
POSTGRES_USER: {{ .Values.database.user | quote }}
{{- end }}
DB_CONNECT_TIMEOUT_SECONDS: {{ .Values.config.dbConnectTimeoutSeconds | int64 | quote }}
{{- $t := .Values.database.tls }}
{{- $mode := $t.sslMode | default (ternary "verify-full" "" (not (empty $t.caSecret.name))) }}
{{- if $mode }}
POSTGRES_SSLMODE: {{ $mode | quote }}
{{- end }}
{{- if $t.caSecret.name }}
POSTGRES_SSLROOTCERT: "/etc/gpudev/postgres-ca/ca.crt"
{{- end }}
{{- if $t.clientCertSecret.name }}
POSTGRES_SSLCERT: "/etc/gpudev/postgres-client/tls.crt"
POSTGRES_SSLKEY: "/etc/gpudev/postgres-client/tls.key"
{{- end }}
DB_STATEMENT_TIMEOUT_SECONDS: {{ .Values.config.dbStatementTimeoutSeconds | int64 | quote }}
DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS: {{ .Values.config.dbIdleInTransactionTimeoutSeconds | int64 | quote }}
{{- end }}

{{/* The Secret's data (chart-made Secret and the migration hook's copy). */}}
{{- define "gpudev.databaseSecretData" -}}
{{- if .Values.database.url }}
DATABASE_URL: {{ .Values.database.url | b64enc | quote }}
{{- else if .Values.database.password }}
POSTGRES_PASSWORD: {{ .Values.database.password | b64enc | quote }}
{{- end }}
{{- end }}

{{/* The env entries that read the secret part of the connection. (dict "ctx" $ "secret" NAME) */}}
{{- define "gpudev.databaseEnv" -}}
{{- $v := .ctx.Values.database }}
{{- if $v.existingSecret.name }}
{{- if $v.existingSecret.urlKey }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret.name }}
      key: {{ $v.existingSecret.urlKey }}
{{- else }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret.name }}
      key: {{ $v.existingSecret.passwordKey }}
{{- end }}
{{- else if $v.url }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: DATABASE_URL
{{- else if $v.password }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: POSTGRES_PASSWORD
{{- end }}
{{- end }}

{{/* Whether the chart makes its own database Secret. */}}
{{- define "gpudev.createsDatabaseSecret" -}}
{{- if and (not .Values.database.existingSecret.name) (or .Values.database.url .Values.database.password) }}true{{ end -}}
{{- end }}

{{/* Environment -------------------------------------------------------------------------- */}}

{{/* envFrom for a component: the shared ConfigMap and the component's own. */}}
{{- define "gpudev.envFrom" -}}
- configMapRef:
    name: {{ include "gpudev.fullname" .ctx }}-common
- configMapRef:
    name: {{ include "gpudev.fullname" .ctx }}-{{ .component }}
{{- end }}

{{/* The env entry that reads the secrets keys (SECRETS_ENCRYPTION_KEYS), for the API and the
processor only. */}}
{{- define "gpudev.secretsKeysEnv" -}}
{{- $v := .Values.secretsEncryption }}
{{- printf "\n- name: SECRETS_ENCRYPTION_KEYS\n  valueFrom:\n    secretKeyRef:\n      name: %s\n      key: %s" (include "gpudev.secretsKeysSecretName" .) (ternary $v.existingSecret.key "SECRETS_ENCRYPTION_KEYS" (not (empty $v.existingSecret.name))) }}
{{- end }}

{{/* The API's console client secrets (OIDC_CONSOLE_CLIENT_SECRETS_JSON), from the operator's Secret when one is named. */}}
{{- define "gpudev.consoleClientSecretsEnv" -}}
{{- $s := .Values.api.config.oidc.consoleClientSecrets.existingSecret }}
{{- if $s.name }}
{{- printf "\n- name: OIDC_CONSOLE_CLIENT_SECRETS_JSON\n  valueFrom:\n    secretKeyRef:\n      name: %s\n      key: %s" $s.name $s.key }}
{{- end }}
{{- end }}

{{/* The Secret holding the secrets keys: the operator's, or the chart's. */}}
{{- define "gpudev.secretsKeysSecretName" -}}
{{- .Values.secretsEncryption.existingSecret.name | default (printf "%s-secrets-keys" (include "gpudev.fullname" .)) }}
{{- end }}

{{/* Extra env as a list from a NAME: value map. */}}
{{- define "gpudev.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Annotations that roll pods when their configuration changes. */}}
{{- define "gpudev.configChecksums" -}}
checksum/config: {{ include (print .ctx.Template.BasePath "/configmaps.yaml") .ctx | sha256sum }}
checksum/secret: {{ include (print .ctx.Template.BasePath "/secret.yaml") .ctx | sha256sum }}
{{- if has .component (list "api" "processor") }}
{{- /* Keys given as values: a rotation restarts the pods that read them. */}}
checksum/secrets-keys: {{ .ctx.Values.secretsEncryption | toJson | sha256sum }}
{{- end }}
{{- end }}

{{/* Scheduling fields shared by pod specs: (index .Values component). */}}
{{- define "gpudev.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{/* Every workload's volumes: /tmp, and the database's TLS files when configured. */}}
{{- define "gpudev.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- $t := .Values.database.tls }}
{{- if $t.caSecret.name }}
- name: postgres-ca
  secret:
    secretName: {{ $t.caSecret.name }}
    items:
      - key: {{ $t.caSecret.key }}
        path: ca.crt
{{- end }}
{{- if $t.clientCertSecret.name }}
- name: postgres-client-cert
  secret:
    secretName: {{ $t.clientCertSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $t.clientCertSecret.certKey }}
        path: tls.crt
      - key: {{ $t.clientCertSecret.keyKey }}
        path: tls.key
{{- end }}
{{- end }}

{{- define "gpudev.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.database.tls.caSecret.name }}
- name: postgres-ca
  mountPath: /etc/gpudev/postgres-ca
  readOnly: true
{{- end }}
{{- if .Values.database.tls.clientCertSecret.name }}
- name: postgres-client-cert
  mountPath: /etc/gpudev/postgres-client
  readOnly: true
{{- end }}
{{- end }}

{{/* Checks ----------------------------------------------------------------------------------- */}}

{{- define "gpudev.validate" -}}
{{- if eq .Values.userNamespace.name .Release.Namespace }}
{{- fail (printf "userNamespace.name (%s) must differ from the release namespace: user pods and the control plane are kept apart" .Values.userNamespace.name) }}
{{- end }}
{{- if lt (float64 .Values.api.config.maxLifetimeHours) (float64 .Values.api.config.maxReservationHours) }}
{{- fail "api.config.maxLifetimeHours must be at least api.config.maxReservationHours" }}
{{- end }}
{{- if lt (int64 .Values.processor.config.retryBackoffMaxSeconds) (int64 .Values.processor.config.retryBackoffBaseSeconds) }}
{{- fail "processor.config.retryBackoffMaxSeconds must be at least processor.config.retryBackoffBaseSeconds" }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret.name }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.expiry.webhook.url .Values.expiry.webhook.existingSecret.name }}
{{- fail "set expiry.webhook.url or expiry.webhook.existingSecret, not both" }}
{{- end }}
{{- if and .Values.monitoring.prometheusRule.enabled (gt (float64 .Values.monitoring.prometheusRule.dailyGpuCostUsd) 0.0) (not .Values.config.gpuHourlyPrices) }}
{{- fail "monitoring.prometheusRule.dailyGpuCostUsd needs config.gpuHourlyPrices" }}
{{- end }}
{{- end }}

{{/* The container's `env:` block (database secret + extra env), omitted when empty.
(dict "ctx" $ "extra" MAP "more" LIST-YAML) */}}
{{- define "gpudev.containerEnv" -}}
{{- $env := include "gpudev.databaseEnv" (dict "ctx" .ctx "secret" (include "gpudev.databaseSecretName" .ctx)) }}
{{- $env = printf "%s%s" $env (default "" .more) }}
{{- $env = printf "%s%s" $env (include "gpudev.extraEnv" .extra) }}
{{- if trim $env }}
env:
{{- $env }}
{{- end }}
{{- end }}
