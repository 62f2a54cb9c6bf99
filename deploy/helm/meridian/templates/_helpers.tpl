{{/* Release-scoped names. */}}
{{- define "meridian.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meridian.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "tiles"). */}}
{{- define "meridian.selector" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "meridian.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "meridian.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "meridian.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{- define "meridian.secretName" -}}
{{ include "meridian.fullname" . }}
{{- end -}}

{{/*
Environment every component shares: the metadata database and the sealing
key from Secrets, the broker, logs, the node's name (the pod's) and address
(the pod IP) for broker subscriptions and the node registry.
*/}}
{{- define "meridian.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: MERIDIAN_NODE
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: MERIDIAN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret | default (include "meridian.secretName" .) }}
      key: {{ if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
- name: MERIDIAN_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secretKey.existingSecret | default (include "meridian.secretName" .) }}
      key: {{ if .Values.secretKey.existingSecret }}{{ .Values.secretKey.existingSecretKey }}{{ else }}secret-key{{ end }}
- name: MERIDIAN_META_MAX_CONNS
  value: {{ .Values.database.maxConns | quote }}
- name: MERIDIAN_PUBLIC_URL
  value: {{ .Values.publicURL | quote }}
- name: MERIDIAN_BROKER
  value: {{ .Values.broker.driver | quote }}
{{- if eq .Values.broker.driver "pubsub" }}
- name: MERIDIAN_PUBSUB_PROJECT
  value: {{ required "broker.pubsub.project is required with broker.driver=pubsub" .Values.broker.pubsub.project | quote }}
{{- with .Values.broker.pubsub.prefix }}
- name: MERIDIAN_PUBSUB_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- if .Values.broker.pubsub.credentialsSecret }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/secrets/meridian/pubsub/{{ .Values.broker.pubsub.credentialsKey }}
{{- end }}
{{- end }}
- name: MERIDIAN_NODE_ADDR
  value: "$(POD_IP)"
- name: MERIDIAN_NODE_HEARTBEAT
  value: {{ .Values.nodeRegistry.heartbeat | quote }}
- name: MERIDIAN_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
- name: MERIDIAN_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes for the Pub/Sub credentials, when set. */}}
{{- define "meridian.pubsubVolume" -}}
{{- if and (eq .Values.broker.driver "pubsub") .Values.broker.pubsub.credentialsSecret }}
- name: pubsub-credentials
  secret:
    secretName: {{ .Values.broker.pubsub.credentialsSecret }}
{{- end }}
{{- end -}}
{{- define "meridian.pubsubMount" -}}
{{- if and (eq .Values.broker.driver "pubsub") .Values.broker.pubsub.credentialsSecret }}
- name: pubsub-credentials
  mountPath: /var/run/secrets/meridian/pubsub
  readOnly: true
{{- end }}
{{- end -}}

{{/* Probes on a component's own port: include with (dict "port" "http"). */}}
{{- define "meridian.probes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 2
  failureThreshold: 60
{{- end -}}

{{/* Pod spec fields every component shares. */}}
{{- define "meridian.podCommon" -}}
serviceAccountName: {{ include "meridian.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
securityContext:
{{ toYaml .Values.podSecurityContext | indent 2 }}
{{- end -}}
