{{- define "kamonohashi.tag" -}}
{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kamonohashi.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kamonohashi
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kamonohashi.proxyEnv" -}}
{{- if .Values.proxy.http }}
- name: http_proxy
  value: {{ .Values.proxy.http | quote }}
- name: https_proxy
  value: {{ .Values.proxy.https | quote }}
- name: no_proxy
  value: {{ .Values.proxy.no | quote }}
{{- end }}
{{- end -}}
