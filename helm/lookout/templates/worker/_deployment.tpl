{{/*
A probe worker Deployment: the home region's workers (worker/deployment.yaml) or one region's in-cluster workers
(worker/regions.yaml). (dict "context" $ "name" "worker" "component" "worker" "region" "" "values" .Values.worker)
*/}}
{{- define "lookout.workerDeployment" -}}
{{- $ := .context }}
{{- $region := .region }}
{{- $name := .name }}
{{- $values := .values }}
{{- $labels := dict "context" $ "component" .component }}
{{- $autoscaled := and (not .region) (or $values.autoscaling.hpa.enabled $values.autoscaling.keda.enabled) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lookout.fullname" $ }}-{{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "lookout.labels" $labels | nindent 4 }}
    {{- with .region }}
    lookout/region: {{ . }}
    {{- end }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "lookout.selectorLabels" $labels | nindent 6 }}
      {{- with .region }}
      lookout/region: {{ . }}
      {{- end }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "lookout.labels" $labels | nindent 8 }}
        {{- with .region }}
        lookout/region: {{ . }}
        {{- end }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "lookout.configChecksums" $ | nindent 8 }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "lookout.serviceAccountName" $ }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $.Values.podSecurityContext | nindent 8 }}
      {{- include "lookout.podScheduling" (dict "context" $ "values" $values) | nindent 6 }}
      topologySpreadConstraints:
        {{- if $values.topologySpreadConstraints }}
        {{- toYaml $values.topologySpreadConstraints | nindent 8 }}
        {{- else }}
        # Losing a node or a zone should not take every probe worker with it.
        {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - maxSkew: 1
          topologyKey: {{ . }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "lookout.selectorLabels" $labels | nindent 14 }}
              {{- with $region }}
              lookout/region: {{ . }}
              {{- end }}
        {{- end }}
        {{- end }}
      initContainers:
        {{- include "lookout.waitForMigrations" (dict "context" $) | nindent 8 }}
      containers:
        - name: worker
          image: {{ include "lookout.image" (dict "context" $ "component" "worker") }}
          imagePullPolicy: {{ $.Values.image.pullPolicy }}
          command: ["lookout", "worker"]
          {{- if .region }}
          # Consumes only probes.{{ .region }}; results go home over the results queue.
          args: ["--region", {{ .region | quote }}]
          {{- else }}
          args: ["--queues", {{ $values.queues | quote }}]
          {{- end }}
          ports:
            - name: metrics
              containerPort: {{ $values.metricsPort }}
              protocol: TCP
          envFrom:
            {{- include "lookout.envFrom" $ | nindent 12 }}
          env:
            {{- include "lookout.env" $ | nindent 12 }}
            - name: LOOKOUT_METRICS_PORT
              value: {{ $values.metricsPort | quote }}
            {{- if .region }}
            - name: LOOKOUT_WORKER_CONCURRENCY
              value: {{ $values.concurrency | quote }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # The metrics port opens once the worker is connected and consuming (Celery's worker_ready).
          startupProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: 2
            failureThreshold: 90
          livenessProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: 15
            timeoutSeconds: 5
            failureThreshold: 4
          readinessProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: 10
            timeoutSeconds: 5
          securityContext:
            {{- toYaml $.Values.securityContext | nindent 12 }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          volumeMounts:
            {{- include "lookout.tmpMount" $ | nindent 12 }}
      volumes:
        {{- include "lookout.tmpVolume" $ | nindent 8 }}
{{- end }}
