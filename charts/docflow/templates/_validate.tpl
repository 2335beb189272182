{{/*
Values validation (Bitnami-style validateValues): every rule of the timeout chain
(ARCHITECTURE.md, "The timeout chain"; README.md of this chart) plus the few
combinations the services refuse at start-up. All broken rules are reported at
once; each message names the values involved, their current values and the rule.
Rendered by templates/validate.yaml, so `helm template`, `helm install` and
`helm lint` fail.
*/}}

{{/* Bytes of an nginx-style size: a number, or digits with k, m, g (also Ki, Mi, Gi), powers of 1024. */}}
{{- define "docflow.sizeBytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- int64 . -}}
{{- else -}}
{{- $s := trim (toString .) -}}
{{- $n := regexFind "^[0-9]+" $s -}}
{{- $unit := lower (trimPrefix $n $s) -}}
{{- $mult := get (dict "" 1 "k" 1024 "ki" 1024 "m" 1048576 "mi" 1048576 "g" 1073741824 "gi" 1073741824) $unit -}}
{{- mul (int64 $n) $mult -}}
{{- end -}}
{{- end -}}

{{/* Bytes per second of a bandwidth: a number (bytes per second), or digits with bit, kbit, Mbit, Gbit (rounded down). */}}
{{- define "docflow.bytesPerSecond" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- int64 . -}}
{{- else -}}
{{- $s := trim (toString .) -}}
{{- $n := regexFind "^[0-9]+" $s -}}
{{- $unit := trimPrefix $n $s -}}
{{- $bits := get (dict "" 8 "bit" 1 "kbit" 1000 "Mbit" 1000000 "Gbit" 1000000000) $unit -}}
{{- div (mul (int64 $n) $bits) 8 -}}
{{- end -}}
{{- end -}}

{{/*
The tus chunk size: uploads.chunkSizeBytes, or as the gateway derives it
(services/gateway/src/config.ts uploadChunkBytes): what the slowest supported client
sends in 4/5 of the time one request may take (gateway.requestTimeoutSeconds, or
edge.originTimeoutSeconds if shorter), rounded down to 256 KiB (at least 256 KiB).
*/}}
{{- define "docflow.uploadChunkBytes" -}}
{{- $u := .Values.uploads -}}
{{- if $u.chunkSizeBytes -}}
{{- int64 $u.chunkSizeBytes -}}
{{- else -}}
{{- $align := 262144 -}}
{{- $Bps := int64 (include "docflow.bytesPerSecond" $u.minClientBandwidth) -}}
{{- $seconds := min (int64 .Values.edge.originTimeoutSeconds) (int64 .Values.gateway.requestTimeoutSeconds) -}}
{{- $blocks := div (mul 4 (mul $Bps $seconds)) (mul 5 $align) -}}
{{- max $align (mul $blocks $align) -}}
{{- end -}}
{{- end -}}

{{- define "docflow.validateValues" -}}
{{- $v := .Values -}}
{{- $edge := $v.edge -}}
{{- $g := $v.gateway -}}
{{- $p := $v.processor -}}
{{- $w := $v.web -}}
{{- $ing := $v.ingress -}}
{{- $messages := list -}}

{{- /* Edge: no request may outlive the edge's origin timeout. */ -}}
{{- if ge (int64 $g.requestTimeoutSeconds) (int64 $edge.originTimeoutSeconds) -}}
{{- $messages = append $messages (printf "gateway.requestTimeoutSeconds (%v) must be below edge.originTimeoutSeconds (%v): the edge answers 504 to a request that outlives its origin timeout, while the gateway is still working on it." $g.requestTimeoutSeconds $edge.originTimeoutSeconds) -}}
{{- end -}}

{{- /* Upload chunk: one chunk at the slowest supported bandwidth fits in one request. */ -}}
{{- $Bps := int64 (include "docflow.bytesPerSecond" $v.uploads.minClientBandwidth) -}}
{{- $chunk := int64 (include "docflow.uploadChunkBytes" .) -}}
{{- $limit := min (int64 $edge.originTimeoutSeconds) (int64 $g.requestTimeoutSeconds) -}}
{{- if le $Bps 0 -}}
{{- $messages = append $messages (printf "uploads.minClientBandwidth (%v) must be at least 1 byte per second." $v.uploads.minClientBandwidth) -}}
{{- else if ge $chunk (mul $limit $Bps) -}}
{{- $messages = append $messages (printf "uploads.chunkSizeBytes (%d) / uploads.minClientBandwidth (%v = %d bytes/s) = %.1f s must be below edge.originTimeoutSeconds (%v) and gateway.requestTimeoutSeconds (%v): one chunk is one request, and a slow client's chunk would time out and be retried forever. Lower the chunk size or raise the minimum bandwidth." $chunk $v.uploads.minClientBandwidth $Bps (divf $chunk $Bps) $edge.originTimeoutSeconds $g.requestTimeoutSeconds) -}}
{{- end -}}

{{- if $ing.enabled -}}
{{- /* Ingress: body size and read timeout. */ -}}
{{- $uploadBody := int64 (include "docflow.sizeBytes" $ing.uploadBodySize) -}}
{{- if lt $uploadBody $chunk -}}
{{- $messages = append $messages (printf "ingress.uploadBodySize (%v = %d bytes) must be at least uploads.chunkSizeBytes (%d): the ingress would answer 413 to every upload chunk." $ing.uploadBodySize $uploadBody $chunk) -}}
{{- end -}}
{{- if lt $uploadBody (int64 $g.maxUploadBytes) -}}
{{- $messages = append $messages (printf "ingress.uploadBodySize (%v = %d bytes) must be at least gateway.maxUploadBytes (%v): a single POST /v1/documents carries the whole file, and the ingress would refuse it with its own 413 before the gateway can answer." $ing.uploadBodySize $uploadBody (int64 $g.maxUploadBytes)) -}}
{{- end -}}
{{- if lt (int64 $ing.proxyReadTimeoutSeconds) (int64 $g.requestTimeoutSeconds) -}}
{{- $messages = append $messages (printf "ingress.proxyReadTimeoutSeconds (%v) must be at least gateway.requestTimeoutSeconds (%v): the ingress would cut requests (504) that the gateway still allows." $ing.proxyReadTimeoutSeconds $g.requestTimeoutSeconds) -}}
{{- end -}}
{{- end -}}

{{- /* Gateway: keep-alive and headers timeouts. */ -}}
{{- if le (int64 $g.keepAliveTimeoutSeconds) (int64 $edge.idleTimeoutSeconds) -}}
{{- $messages = append $messages (printf "gateway.keepAliveTimeoutSeconds (%v) must be greater than edge.idleTimeoutSeconds (%v): otherwise the load balancer reuses a connection the gateway is closing (502)." $g.keepAliveTimeoutSeconds $edge.idleTimeoutSeconds) -}}
{{- end -}}
{{- if le (int64 $g.headersTimeoutSeconds) (int64 $g.keepAliveTimeoutSeconds) -}}
{{- $messages = append $messages (printf "gateway.headersTimeoutSeconds (%v) must be greater than gateway.keepAliveTimeoutSeconds (%v): Node's rule (the gateway refuses to start otherwise)." $g.headersTimeoutSeconds $g.keepAliveTimeoutSeconds) -}}
{{- end -}}
{{- if lt (int64 $g.shutdownTimeoutSeconds) (int64 $g.requestTimeoutSeconds) -}}
{{- $messages = append $messages (printf "gateway.shutdownTimeoutSeconds (%v) must be at least gateway.requestTimeoutSeconds (%v): a request accepted just before SIGTERM may run that long and must be allowed to finish." $g.shutdownTimeoutSeconds $g.requestTimeoutSeconds) -}}
{{- end -}}
{{- $gGrace := int64 (include "docflow.gateway.gracePeriod" .) -}}
{{- $gShutdown := add $g.preStopSleepSeconds $g.shutdownDelaySeconds $g.shutdownTimeoutSeconds -}}
{{- if le $gGrace $gShutdown -}}
{{- $messages = append $messages (printf "gateway.terminationGracePeriodSeconds (%v) must be greater than gateway.preStopSleepSeconds + gateway.shutdownDelaySeconds + gateway.shutdownTimeoutSeconds (%v + %v + %v = %v): the kubelet kills the gateway before in-flight requests finish." $gGrace $g.preStopSleepSeconds $g.shutdownDelaySeconds $g.shutdownTimeoutSeconds $gShutdown) -}}
{{- end -}}

{{- /* Processor: task timeout against the broker and the grace period; stalled-job detection. */ -}}
{{- if ge (int64 $p.taskTimeoutSeconds) (int64 $v.rabbitmq.consumerTimeoutSeconds) -}}
{{- $messages = append $messages (printf "processor.taskTimeoutSeconds (%v) must be below rabbitmq.consumerTimeoutSeconds (%v): RabbitMQ closes the channel of a consumer that holds a message longer, and every task in flight on it is redelivered." $p.taskTimeoutSeconds $v.rabbitmq.consumerTimeoutSeconds) -}}
{{- end -}}
{{- $pGrace := int64 (include "docflow.processor.gracePeriod" .) -}}
{{- $pDrain := add $p.preStopSleepSeconds $p.taskTimeoutSeconds $p.drainMarginSeconds -}}
{{- if le $pGrace $pDrain -}}
{{- $messages = append $messages (printf "processor.taskTimeoutSeconds + processor.drainMarginSeconds (+ processor.preStopSleepSeconds) (%v + %v + %v = %v) must be below processor.terminationGracePeriodSeconds (%v): a task caught by SIGTERM would be killed before it finishes and be done twice." $p.taskTimeoutSeconds $p.drainMarginSeconds $p.preStopSleepSeconds $pDrain $pGrace) -}}
{{- end -}}
{{- /* The retry back-offs as the processor computes them: base x 2^(k-1), capped, for each retry. */ -}}
{{- $backoff := 0 -}}
{{- $delay := int64 $p.retryBaseSeconds -}}
{{- range until (int (sub (int64 $v.rabbitmq.deliveryLimit) 1)) -}}
{{- $backoff = add $backoff (min $delay (int64 $p.retryMaxSeconds)) -}}
{{- $delay = mul $delay 2 -}}
{{- end -}}
{{- $stalledMin := add (mul (int64 $p.taskTimeoutSeconds) (int64 $v.rabbitmq.deliveryLimit)) $backoff -}}
{{- if le (int64 $p.stalledAfterSeconds) $stalledMin -}}
{{- $messages = append $messages (printf "processor.stalledAfterSeconds (%v) must exceed processor.taskTimeoutSeconds x rabbitmq.deliveryLimit + the retry back-offs of processor.retryBaseSeconds and processor.retryMaxSeconds (%v x %v + %v = %v): healthy work that is still being retried would be dispatched twice (the processor refuses to start otherwise)." $p.stalledAfterSeconds $p.taskTimeoutSeconds $v.rabbitmq.deliveryLimit $backoff $stalledMin) -}}
{{- end -}}
{{- /* Engine operator: never removes a busy processor, so its (shorter) window needs no such rule. */ -}}
{{- if and $p.autoscaling.enabled (ne $p.autoscaling.engine "operator") (lt (int64 $p.autoscaling.scaleDownStabilizationSeconds) (int64 $p.taskTimeoutSeconds)) -}}
{{- $messages = append $messages (printf "processor.autoscaling.scaleDownStabilizationSeconds (%v) must be at least processor.taskTimeoutSeconds (%v): the pool would shrink between two tasks of the same backlog." $p.autoscaling.scaleDownStabilizationSeconds $p.taskTimeoutSeconds) -}}
{{- end -}}
{{- if and $p.autoscaling.enabled (gt (int64 $p.autoscaling.minReplicas) (int64 $p.autoscaling.maxReplicas)) -}}
{{- $messages = append $messages (printf "processor.autoscaling.minReplicas (%v) must not exceed processor.autoscaling.maxReplicas (%v)." $p.autoscaling.minReplicas $p.autoscaling.maxReplicas) -}}
{{- end -}}

{{- /* Engine operator: the operator runs the pools; the ProcessorPool CRD's limits; every stage consumed by exactly one pool. */ -}}
{{- $a := $p.autoscaling -}}
{{- $operatorEngine := and $p.enabled $a.enabled (eq $a.engine "operator") -}}
{{- if and $operatorEngine (not $v.operator.enabled) -}}
{{- $messages = append $messages "processor.autoscaling.engine (operator) needs operator.enabled (true): without the operator nothing would create the processors' Deployments. Turn the operator on, or choose engine keda or hpa (the chart's Deployment)." -}}
{{- end -}}
{{- /* Helm installs crds/ with the first install only: an upgrade of a release from before the CRD (or from KEDA/HPA) must apply it first. */ -}}
{{- if and $operatorEngine $.Release.IsUpgrade (not ($.Capabilities.APIVersions.Has "docflow.io/v1alpha1/ProcessorPool")) -}}
{{- $messages = append $messages "processor.autoscaling.engine (operator) needs the ProcessorPool CRD, which this cluster lacks: Helm installs the chart's crds/ on the first install only, never on an upgrade. Apply it first (kubectl apply --server-side -f charts/docflow/crds/), then upgrade again." -}}
{{- end -}}
{{- if and $a.pools (not $operatorEngine) -}}
{{- $messages = append $messages (printf "processor.autoscaling.pools (%d) are ProcessorPools, run by the operator: they need processor.autoscaling.enabled (%v) with processor.autoscaling.engine operator (%v)." (len $a.pools) $a.enabled $a.engine) -}}
{{- end -}}
{{- if $operatorEngine -}}
{{- $owner := dict -}}
{{- range $a.operator.stages }}{{ $_ := set $owner . "the default pool (processor.autoscaling.operator.stages)" }}{{ end -}}
{{- $names := dict -}}
{{- range $i, $pool := $a.pools -}}
{{- $where := printf "processor.autoscaling.pools[%d] (%s)" $i $pool.name -}}
{{- if hasKey $names $pool.name -}}
{{- $messages = append $messages (printf "%s: the name %s is used twice; each pool is the ProcessorPool <fullname>-processor-<name>." $where $pool.name) -}}
{{- end -}}
{{- $_ := set $names $pool.name true -}}
{{- $full := include "docflow.processor.poolName" (dict "root" $ "suffix" $pool.name) -}}
{{- if gt (len $full) 63 -}}
{{- $messages = append $messages (printf "%s: the pool's name %s is longer than 63 characters (it is a label value of its pods, docflow.io/pool); use a shorter name or fullnameOverride." $where $full) -}}
{{- end -}}
{{- $min := ternary $a.minReplicas $pool.minReplicas (kindIs "invalid" $pool.minReplicas) -}}
{{- $max := ternary $a.maxReplicas $pool.maxReplicas (kindIs "invalid" $pool.maxReplicas) -}}
{{- if gt (int64 $min) (int64 $max) -}}
{{- $messages = append $messages (printf "%s: minReplicas (%v) must not exceed maxReplicas (%v)." $where $min $max) -}}
{{- end -}}
{{- range $pool.stages -}}
{{- if hasKey $owner . -}}
{{- $messages = append $messages (printf "%s consumes the stage %s, which %s consumes too: each stage is consumed by one pool, or both would scale for the same backlog. Leave it out of one of them (processor.autoscaling.operator.stages sets the default pool's stages)." $where . (get $owner .)) -}}
{{- end -}}
{{- $_ := set $owner . $where -}}
{{- end -}}
{{- end -}}
{{- range list "inspect" "convert" "render" "finish" -}}
{{- if not (hasKey $owner .) -}}
{{- $messages = append $messages (printf "No pool consumes the stage %s (processor.autoscaling.operator.stages and processor.autoscaling.pools[].stages): its work would never be done." .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* Pods: readiness must fail before the endpoint stops being used. */ -}}
{{- $gReady := mul (int64 $g.readinessProbe.periodSeconds) (int64 $g.readinessProbe.failureThreshold) -}}
{{- $gCover := add $g.preStopSleepSeconds $g.shutdownDelaySeconds -}}
{{- if and $g.enabled (lt (int64 $gCover) $gReady) -}}
{{- $messages = append $messages (printf "gateway.preStopSleepSeconds + gateway.shutdownDelaySeconds (%v + %v = %v) must be at least gateway.readinessProbe.periodSeconds x gateway.readinessProbe.failureThreshold (%v x %v = %v): the gateway would stop accepting while it still looks ready and is still sent traffic." $g.preStopSleepSeconds $g.shutdownDelaySeconds $gCover $g.readinessProbe.periodSeconds $g.readinessProbe.failureThreshold $gReady) -}}
{{- end -}}
{{- $wReady := mul (int64 $w.readinessProbe.periodSeconds) (int64 $w.readinessProbe.failureThreshold) -}}
{{- $wCover := add $w.preStopSleepSeconds $w.shutdownDelaySeconds -}}
{{- if and $w.enabled (lt (int64 $wCover) $wReady) -}}
{{- $messages = append $messages (printf "web.preStopSleepSeconds + web.shutdownDelaySeconds (%v + %v = %v) must be at least web.readinessProbe.periodSeconds x web.readinessProbe.failureThreshold (%v x %v = %v): the web server would stop accepting while it still looks ready." $w.preStopSleepSeconds $w.shutdownDelaySeconds $wCover $w.readinessProbe.periodSeconds $w.readinessProbe.failureThreshold $wReady) -}}
{{- end -}}
{{- $wGrace := int64 (include "docflow.web.gracePeriod" .) -}}
{{- $wShutdown := add $w.preStopSleepSeconds $w.shutdownDelaySeconds $w.shutdownTimeoutSeconds -}}
{{- if and $w.enabled (le $wGrace $wShutdown) -}}
{{- $messages = append $messages (printf "web.terminationGracePeriodSeconds (%v) must be greater than web.preStopSleepSeconds + web.shutdownDelaySeconds + web.shutdownTimeoutSeconds (%v + %v + %v = %v)." $wGrace $w.preStopSleepSeconds $w.shutdownDelaySeconds $w.shutdownTimeoutSeconds $wShutdown) -}}
{{- end -}}

{{- /* Credentials the services cannot start without, and the gateway's all-or-nothing realtime settings. */ -}}
{{- if and (not $v.rabbitmq.url) (not $v.rabbitmq.existingSecret) -}}
{{- $messages = append $messages "rabbitmq.url or rabbitmq.existingSecret must be set: the gateway and the processor need the broker." -}}
{{- end -}}
{{- if and $v.realtime.enabled (not (include "docflow.natsAuthGenerated" .)) -}}
{{- if or (not $v.realtime.wsUrl) (not $v.realtime.account) (and (not $v.realtime.signingSeed) (not $v.realtime.existingSecret)) -}}
{{- $messages = append $messages "realtime.enabled needs realtime.wsUrl, realtime.account and realtime.signingSeed (or realtime.existingSecret) together (the gateway refuses to start with only some of them)." -}}
{{- end -}}
{{- end -}}
{{- /* The evaluation NATS reads its operator-mode auth from nats.existingSecret, next to the services' credentials. */ -}}
{{- if and $v.evaluation.enabled (not $v.nats.existingSecret) $v.nats.creds -}}
{{- $messages = append $messages "evaluation.enabled with nats.creds: the in-cluster NATS takes its auth configuration (evaluation.nats.authConfigKey) from nats.existingSecret, so put the credentials there too (charts/docflow/scripts/nats-auth.ts writes such a Secret), or leave nats.creds empty for a NATS without auth." -}}
{{- end -}}
{{- if and $v.evaluation.enabled $v.realtime.enabled (not $v.nats.existingSecret) (not (include "docflow.natsAuthGenerated" .)) -}}
{{- $messages = append $messages "evaluation.enabled with realtime.enabled needs NATS in operator mode: leave evaluation.nats.generateAuth on (the install generates the auth material), or give nats.existingSecret (charts/docflow/scripts/nats-auth.ts writes the Secret and the values)." -}}
{{- end -}}
{{- if and (include "docflow.natsAuthGenerated" .) $v.realtime.enabled (not (include "docflow.realtimeWsUrl" .)) -}}
{{- $messages = append $messages "realtime.enabled with the generated NATS auth needs realtime.wsUrl, or ingress.enabled with evaluation.nats.websocketPath (browsers then reach NATS on the app's own host)." -}}
{{- end -}}
{{- if and $v.s3.accessKeyId (not $v.s3.secretAccessKey) (not $v.s3.existingSecret) -}}
{{- $messages = append $messages "s3.accessKeyId is set but s3.secretAccessKey is not." -}}
{{- end -}}

{{- if $messages -}}
{{- fail (printf "\n\nVALUES VALIDATION (docflow):\n- %s\n" (join "\n- " $messages)) -}}
{{- end -}}
{{- end -}}
