{{/* Names, labels, images and the environment every Lookout container shares. */}}

{{- define "lookout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lookout.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lookout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: (dict "context" $ "component" "api"). Never change: selectors are immutable. */}}
{{- define "lookout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lookout.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The recommended labels, on every object: (dict "context" $ "component" "api"). */}}
{{- define "lookout.labels" -}}
{{ include "lookout.selectorLabels" . }}
helm.sh/chart: {{ include "lookout.chart" .context }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lookout
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "lookout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lookout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of a component: (dict "context" $ "component" "api"). */}}
{{- define "lookout.image" -}}
{{- $values := index .context.Values .component }}
{{- $repository := $values.image.repository | default (printf "%s/%s-%s" .context.Values.image.registry .context.Values.image.repositoryPrefix .component) }}
{{- $tag := $values.image.tag | default .context.Values.image.tag | default .context.Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/* The Secret holding generated keys and bundled-service URLs: created once by the keygen hook, never by Helm. */}}
{{- define "lookout.generatedSecretName" -}}
{{- printf "%s-generated" (include "lookout.fullname" .) }}
{{- end }}

{{- define "lookout.keysSecretName" -}}
{{- .Values.secrets.existingSecret | default (include "lookout.generatedSecretName" .) }}
{{- end }}

{{- define "lookout.keygenEnabled" -}}
{{- if or (not .Values.secrets.existingSecret) .Values.postgresql.enabled .Values.rabbitmq.enabled }}true{{ end }}
{{- end }}

{{/* Where DATABASE_URL comes from: "secretName/key". Fails rendering when there is no source. */}}
{{- define "lookout.databaseUrlRef" -}}
{{- if .Values.postgresql.enabled }}
{{- if or .Values.database.url .Values.database.existingSecret }}
{{- fail "postgresql.enabled=true bundles a database: leave database.url and database.existingSecret empty, or set postgresql.enabled=false to use them" }}
{{- end }}
{{- printf "%s/DATABASE_URL" (include "lookout.generatedSecretName" .) }}
{{- else if .Values.database.existingSecret }}
{{- printf "%s/%s" .Values.database.existingSecret .Values.database.existingSecretKey }}
{{- else if .Values.database.url }}
{{- printf "%s-connections/DATABASE_URL" (include "lookout.fullname" .) }}
{{- else }}
{{- fail "no database: set database.url or database.existingSecret, or postgresql.enabled=true for the bundled one" }}
{{- end }}
{{- end }}

{{- define "lookout.brokerUrlRef" -}}
{{- if .Values.rabbitmq.enabled }}
{{- if or .Values.broker.url .Values.broker.existingSecret }}
{{- fail "rabbitmq.enabled=true bundles a broker: leave broker.url and broker.existingSecret empty, or set rabbitmq.enabled=false to use them" }}
{{- end }}
{{- printf "%s/CELERY_BROKER_URL" (include "lookout.generatedSecretName" .) }}
{{- else if .Values.broker.existingSecret }}
{{- printf "%s/%s" .Values.broker.existingSecret .Values.broker.existingSecretKey }}
{{- else if .Values.broker.url }}
{{- printf "%s-connections/CELERY_BROKER_URL" (include "lookout.fullname" .) }}
{{- else }}
{{- fail "no broker: set broker.url or broker.existingSecret, or rabbitmq.enabled=true for the bundled one" }}
{{- end }}
{{- end }}

{{- define "lookout.secretKeyRef" -}}
{{- $parts := splitList "/" . }}
secretKeyRef:
  name: {{ first $parts }}
  key: {{ last $parts }}
{{- end }}

{{/* The environment of every Lookout container: the ConfigMap, then the secrets by reference. */}}
{{- define "lookout.envFrom" -}}
- configMapRef:
    name: {{ include "lookout.fullname" . }}-config
{{- end }}

{{- define "lookout.env" -}}
- name: DATABASE_URL
  valueFrom:
    {{- include "lookout.secretKeyRef" (include "lookout.databaseUrlRef" .) | nindent 4 }}
- name: CELERY_BROKER_URL
  valueFrom:
    {{- include "lookout.secretKeyRef" (include "lookout.brokerUrlRef" .) | nindent 4 }}
{{- range list "SECRET_KEY" "LOOKOUT_ENCRYPTION_KEY" "LOOKOUT_METRICS_TOKEN" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "lookout.keysSecretName" $ }}
      key: {{ . }}
{{- end }}
{{- end }}

{{/* Checksums of the configuration the pods read: a change rolls them. */}}
{{- define "lookout.configChecksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/connections: {{ include (print $.Template.BasePath "/secret-connections.yaml") . | sha256sum }}
{{- end }}

{{/* Writable places under a read-only root filesystem. */}}
{{- define "lookout.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{- define "lookout.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Init container: wait until every migration is applied and the cache table exists. */}}
{{- define "lookout.waitForMigrations" -}}
{{- if .context.Values.migrations.waitForMigrations }}
- name: wait-for-migrations
  image: {{ include "lookout.image" (dict "context" .context "component" "api") }}
  imagePullPolicy: {{ .context.Values.image.pullPolicy }}
  command: ["sh", "-c"]
  args:
    - |
      until lookout manage migrate --check >/dev/null 2>&1 && [ -z "$(lookout manage createcachetable --dry-run --verbosity 0 2>&1)" ]; do
        echo "waiting for database migrations (Job {{ include "lookout.fullname" .context }}-migrate-*)"
        sleep 5
      done
  envFrom:
    {{- include "lookout.envFrom" .context | nindent 4 }}
  env:
    {{- include "lookout.env" .context | nindent 4 }}
  securityContext:
    {{- toYaml .context.Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml .context.Values.migrations.resources | nindent 4 }}
  volumeMounts:
    {{- include "lookout.tmpMount" . | nindent 4 }}
{{- end }}
{{- end }}

{{/* Pod-level scheduling fields shared by the three workloads: (dict "context" $ "values" .Values.api). */}}
{{- define "lookout.podScheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .context.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
