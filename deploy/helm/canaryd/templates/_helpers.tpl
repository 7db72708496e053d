{{/* The labels every object carries. */}}
{{- define "canaryd.labels" -}}
app.kubernetes.io/name: canaryd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: canaryd
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select canaryd's pods. */}}
{{- define "canaryd.selector" -}}
app.kubernetes.io/name: canaryd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "canaryd.fullname" -}}
{{- if eq .Release.Name "canaryd" }}canaryd{{ else }}{{ printf "%s-canaryd" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "canaryd.secretName" -}}
{{- default (include "canaryd.fullname" .) .Values.secret.existingSecret }}
{{- end }}
