export { createLogger, type Logger } from "./logger.ts";
export { registerEventLoopMetrics, threadSchedule } from "./event-loop.ts";
export { queuePublishHistogram } from "./queue-metrics.ts";
export { withSpan, withSyncSpan, injectContext, extractContext, SpanKind } from "./tracing.ts";
export { shutdownTelemetry } from "./shutdown.ts";
