{{/*
Names, labels and shared pieces. Every helper is prefixed with the chart name.
*/}}

{{- define "docflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-docflow, or <release> when it already contains the chart name. */}}
{{- define "docflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component> (gateway, processor, web). */}}
{{- define "docflow.componentName" -}}
{{- printf "%s-%s" (include "docflow.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "docflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Standard labels of every object. */}}
{{- define "docflow.labels" -}}
helm.sh/chart: {{ include "docflow.chart" . }}
app.kubernetes.io/name: {{ include "docflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: docflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the release's pods (what the default-deny NetworkPolicy selects). */}}
{{- define "docflow.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "docflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "docflow.selectorLabels" -}}
{{ include "docflow.releaseSelectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "docflow.componentLabels" -}}
{{ include "docflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "docflow.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "docflow.componentName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference of one component: [registry/]repository(:tag|@digest). */}}
{{- define "docflow.image" -}}
{{- $image := (index .root.Values .component).image -}}
{{- $repo := $image.repository -}}
{{- with .root.Values.imageRegistry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repo $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret the chart creates from inline credentials. */}}
{{- define "docflow.secretName" -}}
{{- printf "%s-credentials" (include "docflow.fullname" .) -}}
{{- end -}}

{{/* Whether the chart creates its Secret (some credential is given inline). */}}
{{- define "docflow.createSecret" -}}
{{- $v := .Values -}}
{{- $ev := $v.evaluation.enabled -}}
{{- if or (and (not $ev) (not $v.rabbitmq.existingSecret) $v.rabbitmq.url)
          (and (not $v.nats.existingSecret) $v.nats.creds)
          (and $v.realtime.enabled (not $v.realtime.existingSecret) $v.realtime.signingSeed)
          (and (not $ev) (not $v.s3.existingSecret) $v.s3.accessKeyId)
          (and (not $v.auth.existingSecret) $v.auth.devTokens) -}}
true
{{- end -}}
{{- end -}}

{{/* Whether the services get a NATS credentials file. */}}
{{- define "docflow.natsCreds" -}}
{{- if or .Values.nats.existingSecret .Values.nats.creds (include "docflow.natsAuthGenerated" .) -}}true{{- end -}}
{{- end -}}

{{/*
Whether the evaluation NATS' operator-mode auth is generated in the cluster at install time
(templates/evaluation-nats-auth.yaml): evaluation on, evaluation.nats.generateAuth on, and no
nats.existingSecret given.
*/}}
{{- define "docflow.natsAuthGenerated" -}}
{{- if and .Values.evaluation.enabled .Values.evaluation.nats.generateAuth (not .Values.nats.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Name of the Secret the hook Job of templates/evaluation-nats-auth.yaml creates. */}}
{{- define "docflow.natsAuthSecretName" -}}
{{- printf "%s-nats-auth" (include "docflow.fullname" .) -}}
{{- end -}}

{{/* The Secret holding the services' NATS credentials file: existing, generated, or the chart's. */}}
{{- define "docflow.natsSecretName" -}}
{{- if .Values.nats.existingSecret -}}{{ .Values.nats.existingSecret }}
{{- else if include "docflow.natsAuthGenerated" . -}}{{ include "docflow.natsAuthSecretName" . }}
{{- else -}}{{ include "docflow.secretName" . }}
{{- end -}}
{{- end -}}

{{/* The NATS WebSocket URL browsers get: realtime.wsUrl, else (generated auth, Ingress on) the path on the app's own host. */}}
{{- define "docflow.realtimeWsUrl" -}}
{{- if .Values.realtime.wsUrl -}}{{ .Values.realtime.wsUrl }}
{{- else if and (include "docflow.natsAuthGenerated" .) .Values.ingress.enabled -}}{{ .Values.evaluation.nats.websocketPath }}
{{- end -}}
{{- end -}}

{{/* Whether the services get S3 keys (else the SDK's default chain: IRSA, instance role). */}}
{{- define "docflow.s3Keys" -}}
{{- if or .Values.evaluation.enabled .Values.s3.existingSecret .Values.s3.accessKeyId -}}true{{- end -}}
{{- end -}}

{{/* The Secret of the evaluation dependencies' credentials (templates/evaluation-secret.yaml). */}}
{{- define "docflow.evaluationSecretName" -}}
{{- printf "%s-evaluation" (include "docflow.fullname" .) -}}
{{- end -}}

{{/* In-cluster addresses of the evaluation dependencies (Services named <fullname>-<component>). */}}
{{/* No path: every client (amqplib, KEDA's Go client) then uses the default vhost "/". */}}
{{- define "docflow.evaluation.amqpUrl" -}}
{{- printf "amqp://%s:%s@%s:5672" .username .password .host -}}
{{- end -}}
{{- define "docflow.evaluation.natsUrl" -}}
{{- printf "nats://%s:4222" (include "docflow.componentName" (dict "root" . "component" "nats")) -}}
{{- end -}}
{{- define "docflow.evaluation.s3Endpoint" -}}
{{- printf "http://%s:7070" (include "docflow.componentName" (dict "root" . "component" "s3")) -}}
{{- end -}}

{{/* secretKeyRef (name, key) of the AMQP URL: the evaluation Secret, an existing Secret or the chart's. */}}
{{- define "docflow.amqpUrlRef" -}}
{{- $v := .Values -}}
{{- if $v.evaluation.enabled -}}
name: {{ include "docflow.evaluationSecretName" . }}
key: amqp-url
{{- else -}}
name: {{ $v.rabbitmq.existingSecret | default (include "docflow.secretName" .) }}
key: {{ ternary $v.rabbitmq.existingSecretUrlKey "amqp-url" (ne $v.rabbitmq.existingSecret "") }}
{{- end -}}
{{- end -}}

{{/* secretKeyRefs of the S3 key pair: (dict) with name, idKey, secretKey. */}}
{{- define "docflow.s3KeysRef" -}}
{{- $v := .Values -}}
{{- if $v.evaluation.enabled -}}
name: {{ include "docflow.evaluationSecretName" . }}
idKey: s3-access-key-id
secretKey: s3-secret-access-key
{{- else -}}
name: {{ $v.s3.existingSecret | default (include "docflow.secretName" .) }}
idKey: {{ ternary $v.s3.existingSecretAccessKeyIdKey "s3-access-key-id" (ne $v.s3.existingSecret "") }}
secretKey: {{ ternary $v.s3.existingSecretSecretAccessKeyKey "s3-secret-access-key" (ne $v.s3.existingSecret "") }}
{{- end -}}
{{- end -}}

{{/* Whether the gateway gets API tokens. */}}
{{- define "docflow.authTokens" -}}
{{- if or .Values.auth.existingSecret .Values.auth.devTokens -}}true{{- end -}}
{{- end -}}

{{- define "docflow.natsCredsDir" -}}/etc/docflow/nats{{- end -}}

{{/* Environment shared by the gateway and the processor (packages/infra/src/config.ts). */}}
{{- define "docflow.sharedEnv" -}}
{{ include "docflow.amqpUrlEnv" . | trim }}
{{- with include "docflow.natsCredsEnv" . | trim }}
{{ . }}
{{- end }}
{{- if include "docflow.s3Keys" . }}
{{- $ref := include "docflow.s3KeysRef" . | fromYaml }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.idKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.secretKey }}
{{- end }}
{{ include "docflow.podEnv" . | trim }}
{{- end -}}

{{/* DOCFLOW_AMQP_URL from its Secret (the services and the operator). */}}
{{- define "docflow.amqpUrlEnv" }}
- name: DOCFLOW_AMQP_URL
  valueFrom:
    secretKeyRef:
      {{- include "docflow.amqpUrlRef" . | nindent 6 }}
{{- end -}}

{{/* DOCFLOW_NATS_CREDS, when the services get a credentials file (docflow.natsCredsMount). */}}
{{- define "docflow.natsCredsEnv" -}}
{{- if include "docflow.natsCreds" . }}
- name: DOCFLOW_NATS_CREDS
  value: {{ printf "%s/nats.creds" (include "docflow.natsCredsDir" .) | quote }}
{{- end }}
{{- end -}}

{{/* LOG_LEVEL, the pod's identity (downward API) and the OpenTelemetry env of every docflow pod. */}}
{{- define "docflow.podEnv" }}
{{- $v := .Values }}
- name: LOG_LEVEL
  value: {{ $v.logLevel | quote }}
# The pod's own name, namespace and node (downward API): log fields, trace resource attributes,
# and for the processor the only pod it should patch.
- name: DOCFLOW_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: DOCFLOW_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: DOCFLOW_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- with $v.telemetry }}
{{- if or .otlpEndpoint .collector.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ include "docflow.otlpEndpoint" $ | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ ternary .otlpProtocol "http/protobuf" (ne .otlpEndpoint "") | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
{{- end }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(DOCFLOW_POD_NAME),k8s.namespace.name=$(DOCFLOW_POD_NAMESPACE),k8s.node.name=$(DOCFLOW_NODE_NAME),service.namespace=%s,service.version=%s" (include "docflow.fullname" .) .Chart.AppVersion | quote }}
{{- end -}}

{{/* Volume with the services' NATS credentials file. */}}
{{- define "docflow.natsCredsVolume" -}}
{{- if include "docflow.natsCreds" . }}
- name: nats-creds
  secret:
    secretName: {{ include "docflow.natsSecretName" . }}
    defaultMode: 288 # 0440: read-only for the owner and the pod's fsGroup
    items:
      - key: {{ ternary .Values.nats.existingSecretCredsKey "nats.creds" (ne .Values.nats.existingSecret "") }}
        path: nats.creds
{{- end }}
{{- end -}}

{{- define "docflow.natsCredsMount" -}}
{{- if include "docflow.natsCreds" . }}
- name: nats-creds
  mountPath: {{ include "docflow.natsCredsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Seconds to the "…_MS" form the services read. */}}
{{- define "docflow.ms" -}}
{{- mul (int64 .) 1000 | quote -}}
{{- end -}}

{{/*
Effective termination grace periods: the value when set, else derived from the shutdown
sequence (see values.yaml and README "The timeout chain").
*/}}
{{- define "docflow.gateway.gracePeriod" -}}
{{- $g := .Values.gateway -}}
{{- if kindIs "invalid" $g.terminationGracePeriodSeconds -}}
{{- add $g.preStopSleepSeconds $g.shutdownDelaySeconds $g.shutdownTimeoutSeconds 5 -}}
{{- else -}}
{{- int64 $g.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{- define "docflow.processor.gracePeriod" -}}
{{- $p := .Values.processor -}}
{{- if kindIs "invalid" $p.terminationGracePeriodSeconds -}}
{{- add $p.preStopSleepSeconds $p.taskTimeoutSeconds $p.drainMarginSeconds 15 -}}
{{- else -}}
{{- int64 $p.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{- define "docflow.web.gracePeriod" -}}
{{- $w := .Values.web -}}
{{- if kindIs "invalid" $w.terminationGracePeriodSeconds -}}
{{- add $w.preStopSleepSeconds $w.shutdownDelaySeconds $w.shutdownTimeoutSeconds 5 -}}
{{- else -}}
{{- int64 $w.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* preStop lifecycle of a container: (dict "root" $ "seconds" N). Nothing when N is 0. */}}
{{- define "docflow.preStop" -}}
{{- if gt (int64 .seconds) 0 }}
lifecycle:
  preStop:
    {{- if eq .root.Values.preStopHook "exec" }}
    exec:
      command: ["sleep", {{ .seconds | toString | quote }}]
    {{- else }}
    sleep:
      seconds: {{ int64 .seconds }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* Standard probes: (dict "values" .Values.gateway "port" "http"). */}}
{{- define "docflow.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: {{ .values.startupProbe.periodSeconds }}
  timeoutSeconds: {{ .values.startupProbe.timeoutSeconds }}
  failureThreshold: {{ .values.startupProbe.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: {{ .values.livenessProbe.periodSeconds }}
  timeoutSeconds: {{ .values.livenessProbe.timeoutSeconds }}
  failureThreshold: {{ .values.livenessProbe.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  periodSeconds: {{ .values.readinessProbe.periodSeconds }}
  timeoutSeconds: {{ .values.readinessProbe.timeoutSeconds }}
  failureThreshold: {{ .values.readinessProbe.failureThreshold }}
{{- end -}}

{{/* topologySpreadConstraints of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "docflow.topologySpread" -}}
{{- $ts := .root.Values.topologySpread -}}
{{- if $ts.enabled }}
topologySpreadConstraints:
  {{- range $ts.topologyKeys }}
  - maxSkew: {{ $ts.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $ts.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "docflow.selectorLabels" $ | nindent 8 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Scheduling fields shared by the Deployments: (dict "values" .Values.gateway). */}}
{{- define "docflow.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
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
{{- end -}}

{{/* Origin (scheme://host[:port]) of a URL; ws/wss kept as given. */}}
{{- define "docflow.origin" -}}
{{- if . -}}
{{- $u := urlParse . -}}
{{- printf "%s://%s" $u.scheme $u.host -}}
{{- end -}}
{{- end -}}

{{/* A string as a regular expression matching it literally, inside a PromQL string ("..."). */}}
{{- define "docflow.promRegexLiteral" -}}
{{- regexQuoteMeta . | replace "\\" "\\\\" -}}
{{- end -}}

{{/*
PromQL label matchers of the release's gateway and processor series, as the ServiceMonitors scrape
them (job = Service name).
*/}}
{{- define "docflow.metricsSelector" -}}
{{- $fullname := include "docflow.promRegexLiteral" (include "docflow.fullname" .) -}}
namespace="{{ .Release.Namespace }}", job=~"{{ $fullname }}-(gateway|processor)"
{{- end -}}

{{/* PromQL regex (inside "...") of the release's RabbitMQ queues: <rabbitmq.namespace>.* */}}
{{- define "docflow.queueRegex" -}}
{{- include "docflow.promRegexLiteral" .Values.rabbitmq.namespace }}\\..*
{{- end -}}

{{/* Where the services send OTLP: telemetry.otlpEndpoint, or the release's collector. */}}
{{- define "docflow.otlpEndpoint" -}}
{{- if .Values.telemetry.otlpEndpoint -}}
{{- .Values.telemetry.otlpEndpoint -}}
{{- else if .Values.telemetry.collector.enabled -}}
{{- printf "http://%s:4318" (include "docflow.componentName" (dict "root" . "component" "collector")) -}}
{{- end -}}
{{- end -}}

{{/*
Annotations of a Service behind the Ingress: on Traefik (ingress.traefik.enabled), the
ServersTransport of templates/ingress.yaml, which carries the ingress' read timeout.
*/}}
{{- define "docflow.ingressServiceAnnotations" -}}
{{- if and .Values.ingress.enabled .Values.ingress.traefik.enabled }}
annotations:
  traefik.ingress.kubernetes.io/service.serverstransport: {{ printf "%s-%s@kubernetescrd" .Release.Namespace (include "docflow.fullname" .) | quote }}
{{- end }}
{{- end -}}

{{/* imagePullSecrets of a pod spec (the release's), for pods outside the three services' templates. */}}
{{- define "docflow.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
