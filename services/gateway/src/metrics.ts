import { queuePublishHistogram, registerEventLoopMetrics } from "@docflow/telemetry";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Prometheus metrics of the gateway (default Node metrics include event-loop lag percentiles). */
export function createMetrics() {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "gateway" });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  // The event-loop delay that shows a blocked loop (see registerEventLoopMetrics).
  registerEventLoopMetrics(registry);
  return {
    registry,
    queuePublishDuration: queuePublishHistogram(registry),
    httpDuration: new Histogram({
      name: "http_server_request_duration_seconds",
      help: "Duration of HTTP requests, by route template, method and status code.",
      labelNames: ["http_route", "http_request_method", "http_response_status_code"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    uploadsInFlight: new Gauge({ name: "docflow_uploads_in_flight", help: "Upload requests (single uploads and tus chunks) streaming on this replica.", registers: [registry] }),
    uploadBytes: new Counter({ name: "docflow_upload_bytes_total", help: "Bytes received in uploads.", registers: [registry] }),
    jobsCreated: new Counter({ name: "docflow_jobs_created_total", help: "Jobs created, by content type.", labelNames: ["content_type"] as const, registers: [registry] }),
    browserSpanBatches: new Counter({ name: "docflow_browser_span_batches_total", help: "Batches of browser spans forwarded to the collector.", registers: [registry] }),
    publishFailures: new Counter({ name: "docflow_queue_publish_failures_total", help: "Work messages the broker did not confirm.", registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
