export { createLogger, type Logger } from "./logger.ts";
export { startEventLoopMonitor, type EventLoopMonitor } from "./event-loop.ts";
export { withSpan, injectContext, extractContext, SpanKind } from "./tracing.ts";
export { shutdownTelemetry } from "./shutdown.ts";
