{{/* The agent: a database-less prober of one region (`lookout agent --region <region>`), the only thing an
agent-only install (agent.enabled=true) renders. */}}

{{- define "lookout.agentName" -}}
{{- printf "%s-agent" (include "lookout.fullname" .) }}
{{- end }}

{{/* Where an agent setting comes from, "secretName/key": its existingSecret, or the chart's agent Secret when
given inline. (dict "context" $ "source" .Values.agent.broker "key" "CELERY_BROKER_URL" "inline" "url" "what" "agent.broker") */}}
{{- define "lookout.agentSecretRef" -}}
{{- if .source.existingSecret }}
{{- printf "%s/%s" .source.existingSecret .source.existingSecretKey }}
{{- else if index .source .inline }}
{{- printf "%s/%s" (include "lookout.agentName" .context) .key }}
{{- else }}
{{- fail (printf "agent.enabled=true needs %s.%s or %s.existingSecret" .what .inline .what) }}
{{- end }}
{{- end }}
