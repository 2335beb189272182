{{/*
Shared pieces of the evaluation dependencies (templates/evaluation-*.yaml): single-replica
StatefulSets of the release, with the release's labels (so the default-deny NetworkPolicy covers
them), the chart's secure pod defaults and a data volume (a claim or an emptyDir).
*/}}

{{/* Pod security context of a dependency: (dict "uid" N). */}}
{{- define "docflow.evaluation.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "docflow.evaluation.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Image of a dependency: (dict "image" .Values.evaluation.<dep>.image). */}}
{{- define "docflow.evaluation.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository .image.tag -}}
{{- end -}}
{{- end -}}

{{/* The `data` volume (emptyDir) when persistence is off: (dict "size" "1Gi"). */}}
{{- define "docflow.evaluation.dataVolume" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .size }}
{{- end -}}

{{/* volumeClaimTemplates when persistence is on: (dict "root" $ "component" "nats" "size" "1Gi"). */}}
{{- define "docflow.evaluation.claims" -}}
{{- $p := .root.Values.evaluation.persistence -}}
{{- if $p.enabled }}
volumeClaimTemplates:
  - metadata:
      name: data
      labels:
        {{- include "docflow.selectorLabels" . | nindent 8 }}
    spec:
      accessModes: ["ReadWriteOnce"]
      {{- with $p.storageClass }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .size }}
{{- end }}
{{- end -}}

{{/* StatefulSet head shared by the dependencies: (dict "root" $ "component" "nats"). */}}
{{- define "docflow.evaluation.statefulSetSpec" -}}
replicas: 1
serviceName: {{ include "docflow.componentName" . }}-headless
podManagementPolicy: Parallel
revisionHistoryLimit: 3
selector:
  matchLabels:
    {{- include "docflow.selectorLabels" . | nindent 4 }}
{{- if .root.Values.evaluation.persistence.enabled }}
persistentVolumeClaimRetentionPolicy:
  whenDeleted: Retain
  whenScaled: Retain
{{- end }}
{{- end -}}

{{/* Peers: the gateway and processor pods of the release (NetworkPolicy `from`); with (dict "root" $ "operator" true) the operator's too (RabbitMQ and NATS: it reads the backlog). */}}
{{- define "docflow.evaluation.clientPeers" -}}
{{- $root := ternary .root . (hasKey . "root") -}}
- podSelector:
    matchLabels:
      {{- include "docflow.selectorLabels" (dict "root" $root "component" "gateway") | nindent 6 }}
- podSelector:
    matchLabels:
      {{- include "docflow.selectorLabels" (dict "root" $root "component" "processor") | nindent 6 }}
{{- if and (hasKey . "operator") $root.Values.operator.enabled }}
- podSelector:
    matchLabels:
      {{- include "docflow.selectorLabels" (dict "root" $root "component" "operator") | nindent 6 }}
{{- end }}
{{- end -}}
