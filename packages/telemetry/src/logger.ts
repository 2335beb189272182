import { trace } from "@opentelemetry/api";
import { pino, type Logger } from "pino";

export type { Logger };

/**
 * One JSON logger per process. `LOG_LEVEL` sets the level (default `info`);
 * the service name is on every line so mixed local logs stay readable.
 */
export function createLogger(service: string): Logger {
  return pino({
    name: service,
    level: process.env.LOG_LEVEL ?? "info",
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Every line written inside a request or task carries its trace.
    mixin() {
      const span = trace.getActiveSpan()?.spanContext();
      return span ? { trace_id: span.traceId, span_id: span.spanId } : {};
    },
    redact: { paths: ["req.headers.authorization", "headers.authorization"], censor: "[redacted]" },
  });
}
