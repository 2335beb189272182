/**
 * Browser tracing: the first hop of the trace that one upload makes through docflow.
 *
 * Every `fetch` and `XMLHttpRequest` to the API (Uppy's tus client uses XHR) gets a client span
 * and a W3C `traceparent` header, so the gateway's server span, the RabbitMQ messages and every
 * processor task continue the same trace. The page load (navigation and resource timings) and
 * the Core Web Vitals (LCP, INP, CLS) are recorded too. Spans go in OTLP/HTTP JSON batches to the
 * gateway (`POST /v1/telemetry/traces`, with the session's token), which forwards them to the
 * OpenTelemetry Collector: no collector needs to be reachable from browsers.
 *
 * Loaded (a separate chunk) only when the gateway advertises a traces endpoint in `/v1/config`.
 */
import { SpanKind, trace, type Span } from "@opentelemetry/api";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { DocumentLoadInstrumentation } from "@opentelemetry/instrumentation-document-load";
import { FetchInstrumentation } from "@opentelemetry/instrumentation-fetch";
import { XMLHttpRequestInstrumentation } from "@opentelemetry/instrumentation-xml-http-request";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, StackContextManager, WebTracerProvider } from "@opentelemetry/sdk-trace-web";
import { onCLS, onINP, onLCP, type Metric } from "web-vitals";

export interface BrowserTelemetryOptions {
  /** Same-origin path (or URL) that accepts OTLP/HTTP JSON trace exports. */
  endpoint: string;
  /** The headers that authorize the export (the session's bearer token). */
  headers: () => Promise<Record<string, string>>;
  /** `service.version` of the resource, e.g. the build's version. */
  version?: string;
}

let provider: WebTracerProvider | null = null;

/** `text` as a literal inside a regular expression. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Starts tracing once; later calls do nothing. */
export function startBrowserTelemetry(options: BrowserTelemetryOptions): void {
  if (provider) return;
  const endpoint = new URL(options.endpoint, window.location.href);
  const exporter = new OTLPTraceExporter({ url: endpoint.href, headers: options.headers });
  provider = new WebTracerProvider({
    resource: resourceFromAttributes({ "service.name": "web", ...(options.version ? { "service.version": options.version } : {}) }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 2000, maxExportBatchSize: 256, maxQueueSize: 2048 })],
  });
  provider.register({
    contextManager: new StackContextManager(),
    propagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  });

  // Trace headers only to our own origin (the API): never to third parties.
  const ownOrigin = new RegExp(`^${escapeRegExp(window.location.origin)}/`);
  // The exports themselves are not traced (each would make another span to export).
  const ignoreUrls = [new RegExp(`${escapeRegExp(endpoint.pathname)}$`)];
  // Resumable uploads carry their upload's trace context already (telemetry/uploadSpans.ts): a
  // second traceparent from the instrumentation would be appended to it, not replace it.
  const uploads = /\/v1\/uploads(\/|$)/;
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new DocumentLoadInstrumentation(),
      new FetchInstrumentation({ propagateTraceHeaderCorsUrls: [ownOrigin], ignoreUrls, clearTimingResources: true }),
      new XMLHttpRequestInstrumentation({ propagateTraceHeaderCorsUrls: [ownOrigin], ignoreUrls: [...ignoreUrls, uploads], clearTimingResources: true }),
    ],
  });

  const tracer = provider.getTracer("docflow-web");
  const record = (metric: Metric): void => {
    // One short span per reported value: the name says which vital, the attributes carry the value
    // (ms for LCP and INP, unitless for CLS), its rating and the page it was measured on.
    const span: Span = tracer.startSpan(`web_vital ${metric.name}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        "web_vital.name": metric.name,
        "web_vital.value": metric.value,
        "web_vital.rating": metric.rating,
        "web_vital.id": metric.id,
        "url.path": window.location.pathname,
      },
    });
    span.end();
  };
  onLCP(record);
  onINP(record);
  onCLS(record);

  // What is batched leaves before the page goes away.
  window.addEventListener("pagehide", () => void provider?.forceFlush());
}

/** The tracer for the app's own spans (e.g. one upload); a no-op tracer until tracing starts. */
export function webTracer() {
  return trace.getTracer("docflow-web");
}
