{{- define "edge-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edge-agent.fullname" -}}
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

{{- define "edge-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edge-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "edge-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "edge-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "edge-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Redis settings, checked: a mode the gateway knows, an address, TLS with rediss://. */}}
{{- define "edge-agent.redisCheck" -}}
{{- $r := .Values.redis }}
{{- if not (has $r.mode (list "none" "single" "cluster")) }}
{{- fail (printf "redis.mode: %q is not none, single or cluster" $r.mode) }}
{{- end }}
{{- if and (ne $r.mode "none") (not $r.url) (not $r.existingSecret.name) }}
{{- fail "redis: set redis.url or redis.existingSecret.name (or redis.mode: none)" }}
{{- end }}
{{- if and (ne $r.mode "none") $r.tls.enabled $r.url (not (hasPrefix "rediss://" $r.url)) }}
{{- fail "redis.tls.enabled needs a rediss:// URL" }}
{{- end }}
{{- end }}
