import { describe, expect, it } from "vitest";
import { browserTracesUrl } from "./config.ts";

describe("browserTracesUrl (where browser spans are forwarded)", () => {
  it("follows the gateway's own OTLP/HTTP exporter by the OpenTelemetry environment rules", () => {
    expect(browserTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })).toBe("http://collector:4318/v1/traces");
    expect(browserTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t:4318/custom" })).toBe("http://t:4318/custom");
    expect(browserTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toBe("http://c:4318/v1/traces");
  });

  it("is off without an OTLP/HTTP endpoint: none, gRPC, or the SDK disabled", () => {
    expect(browserTracesUrl(undefined, {})).toBeNull();
    expect(browserTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toBeNull();
    expect(browserTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" })).toBeNull();
  });

  it("obeys an explicit setting, including off", () => {
    expect(browserTracesUrl("http://x:4318/v1/traces", { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toBe("http://x:4318/v1/traces");
    expect(browserTracesUrl("off", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toBeNull();
  });
});
