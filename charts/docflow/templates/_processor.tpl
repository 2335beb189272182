{{/*
The processor's pods, rendered in two places (templates/processor.yaml): the processor
Deployment's pod template when the chart scales the processors itself or not at all
(processor.autoscaling.engine keda or hpa, or autoscaling off), and the PodTemplate
`<fullname>-processor` that the operator makes every ProcessorPool's Deployment from
(engine operator, templates/processor-pools.yaml).

(dict "root" $ "stableLabels" bool). With stableLabels the pod labels are only those that never
change on an upgrade (name, instance, component, and processor.podLabels): the operator uses the
PodTemplate's pod labels, plus docflow.io/pool, as its Deployments' selector, which is immutable.
helm.sh/chart and app.kubernetes.io/version are on the PodTemplate object itself.
DOCFLOW_PROCESSOR_STAGES is never set here: the operator sets it per pool (default: all stages).
*/}}
{{- define "docflow.processor.podTemplate" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" "processor" -}}
{{- $p := $root.Values.processor -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- if .stableLabels }}
    {{- include "docflow.selectorLabels" $ctx | nindent 4 }}
    {{- else }}
    {{- include "docflow.componentLabels" $ctx | nindent 4 }}
    {{- end }}
    {{- with $p.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $p.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "docflow.serviceAccountName" $ctx }}
  # The API token is mounted only when the processor may mark its own pod busy or idle.
  automountServiceAccountToken: {{ $p.rbac.create }}
  enableServiceLinks: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # preStop sleep + task timeout + drain margin (DOCFLOW_SHUTDOWN_TIMEOUT_MS) + margin to close connections.
  terminationGracePeriodSeconds: {{ include "docflow.processor.gracePeriod" $root }}
  securityContext:
    {{- toYaml $p.podSecurityContext | nindent 4 }}
  {{- with include "docflow.scheduling" (dict "values" $p) | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- with include "docflow.topologySpread" $ctx | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: processor
      image: {{ include "docflow.image" $ctx | quote }}
      imagePullPolicy: {{ $p.image.pullPolicy }}
      ports:
        - name: http-metrics
          containerPort: 8081
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "docflow.fullname" $root }}-config
      env:
        {{- include "docflow.sharedEnv" $root | nindent 8 }}
        - name: OTEL_SERVICE_NAME
          value: processor
        - name: DOCFLOW_PROCESSOR_HOST
          value: "0.0.0.0"
        - name: DOCFLOW_PROCESSOR_PORT
          value: "8081"
        - name: DOCFLOW_PROCESSOR_CONCURRENCY
          value: {{ $p.concurrency | int64 | quote }}
        - name: DOCFLOW_TASK_TIMEOUT_MS
          value: {{ include "docflow.ms" $p.taskTimeoutSeconds }}
        - name: DOCFLOW_SHUTDOWN_TIMEOUT_MS
          value: {{ include "docflow.ms" (add $p.taskTimeoutSeconds $p.drainMarginSeconds) }}
        - name: DOCFLOW_RANGE_SIZE
          value: {{ $p.rangeSize | int64 | quote }}
        - name: DOCFLOW_FIRST_RANGE_SIZE
          value: {{ $p.firstRangeSize | int64 | quote }}
        - name: DOCFLOW_SWEEP_INTERVAL_MS
          value: {{ include "docflow.ms" $p.sweepIntervalSeconds }}
        - name: DOCFLOW_REDISPATCH_AFTER_MS
          value: {{ include "docflow.ms" $p.redispatchAfterSeconds }}
        - name: DOCFLOW_STALLED_AFTER_MS
          value: {{ include "docflow.ms" $p.stalledAfterSeconds }}
        - name: DOCFLOW_RANGE_WINDOW
          value: {{ $p.rangeWindow | int64 | quote }}
        {{- if $p.expressPrefetch }}
        - name: DOCFLOW_EXPRESS_PREFETCH
          value: {{ $p.expressPrefetch | int64 | quote }}
        {{- end }}
        - name: DOCFLOW_EXPRESS_MAX_PAGES
          value: {{ $p.expressMaxPages | int64 | quote }}
        - name: DOCFLOW_SOURCE_CACHE_BYTES
          value: {{ $p.sourceCache.maxBytes | int64 | quote }}
        - name: DOCFLOW_SOURCE_CACHE_IDLE_MS
          value: {{ include "docflow.ms" $p.sourceCache.idleSeconds }}
        - name: DOCFLOW_RETRY_BASE_MS
          value: {{ include "docflow.ms" $p.retryBaseSeconds }}
        - name: DOCFLOW_RETRY_MAX_MS
          value: {{ include "docflow.ms" $p.retryMaxSeconds }}
        - name: DOCFLOW_MAX_PAGES
          value: {{ $p.maxPages | int64 | quote }}
        - name: DOCFLOW_WORK_DIR
          value: /work
        {{- with $p.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- include "docflow.probes" (dict "values" $p "port" "http-metrics") | nindent 6 }}
      {{- with include "docflow.preStop" (dict "root" $root "seconds" $p.preStopSleepSeconds) | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      resources:
        {{- toYaml $p.resources | nindent 8 }}
      securityContext:
        {{- toYaml $p.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: work
          mountPath: /work
        {{- with include "docflow.natsCredsMount" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $p.tmpSizeLimit }}
    - name: work
      emptyDir:
        sizeLimit: {{ $p.workDir.sizeLimit }}
        {{- with $p.workDir.medium }}
        medium: {{ . }}
        {{- end }}
    {{- with include "docflow.natsCredsVolume" $root | trim }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* Whether the operator runs the processors (ProcessorPools on the PodTemplate) instead of the chart's Deployment. */}}
{{- define "docflow.processor.operatorManaged" -}}
{{- $p := .Values.processor -}}
{{- if and $p.enabled $p.autoscaling.enabled (eq $p.autoscaling.engine "operator") -}}true{{- end -}}
{{- end -}}

{{/* Name of the default ProcessorPool, its PodTemplate and its Deployment: <fullname>-processor. */}}
{{- define "docflow.processor.poolName" -}}
{{- include "docflow.componentName" (dict "root" .root "component" "processor") -}}
{{- if .suffix }}-{{ .suffix }}{{ end -}}
{{- end -}}
