/**
 * Starts the OpenTelemetry Node SDK before the service's own code:
 *
 *   node --import @docflow/telemetry/register services/gateway/src/server.ts
 *
 * Configured only by the standard environment: OTEL_SERVICE_NAME,
 * OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
 * OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER(_ARG), OTEL_RESOURCE_ATTRIBUTES
 * (the chart adds k8s.pod.name and friends from the downward API). Without an
 * OTLP endpoint (or with OTEL_SDK_DISABLED=true) nothing starts: no exporter
 * retries against a collector that is not there.
 */
import { register } from "node:module";

const env = process.env;
const configured = env.OTEL_SDK_DISABLED !== "true" && Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_TRACES_EXPORTER);

if (configured) {
  // ESM modules (and CommonJS ones imported from ESM, such as express) are
  // instrumented through import-in-the-middle's loader hook.
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const { HttpInstrumentation } = await import("@opentelemetry/instrumentation-http");
  const { ExpressInstrumentation } = await import("@opentelemetry/instrumentation-express");
  const { AwsInstrumentation } = await import("@opentelemetry/instrumentation-aws-sdk");
  const sdk = new NodeSDK({
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes every few seconds are noise, not work; so are the browser's span
        // exports (tracing them would make spans about exporting spans).
        ignoreIncomingRequestHook: (req) => /^\/(healthz|readyz|metrics|v1\/telemetry\/)/.test(req.url ?? ""),
      }),
      new ExpressInstrumentation(),
      new AwsInstrumentation({ suppressInternalInstrumentation: true }),
    ],
  });
  sdk.start();
  (globalThis as { [key: symbol]: unknown })[Symbol.for("docflow.telemetry.sdk")] = sdk;
}
