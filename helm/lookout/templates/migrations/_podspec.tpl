{{- define "lookout.migrationsPodSpec" -}}
metadata:
  labels:
    {{- include "lookout.labels" (dict "context" . "component" "migrations") | nindent 4 }}
  annotations:
    {{- include "lookout.configChecksums" . | nindent 4 }}
spec:
  restartPolicy: OnFailure
  serviceAccountName: {{ include "lookout.serviceAccountName" . }}
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: migrate
      image: {{ include "lookout.image" (dict "context" . "component" "api") }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      # Schema migrations, then the cache table API throttling uses. Safe to run again: both are idempotent.
      command: ["lookout", "migrate"]
      args: []
      envFrom:
        {{- include "lookout.envFrom" . | nindent 8 }}
      env:
        {{- include "lookout.env" . | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.migrations.resources | nindent 8 }}
      volumeMounts:
        {{- include "lookout.tmpMount" . | nindent 8 }}
  volumes:
    {{- include "lookout.tmpVolume" . | nindent 4 }}
{{- end }}
