import { describe, expect, it } from "vitest";
import { browserTracesUrl, loadConfig, uploadChunkBytes } from "./config.ts";

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

describe("uploadChunkBytes (the advertised tus chunk)", () => {
  const defaults = { DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS: 125_000, DOCFLOW_EDGE_TIMEOUT_MS: 60_000, DOCFLOW_REQUEST_TIMEOUT_MS: 55_000 };

  it("is S3's 5 MiB minimum part by default, which a 1 Mbit/s client sends in 42 s of the 55 s a request may take", () => {
    expect(uploadChunkBytes(defaults)).toBe(5 * 1024 * 1024);
    expect(uploadChunkBytes(defaults) / 125_000).toBeLessThan(0.8 * 55);
  });

  it("follows the shorter of the edge and request timeouts and the slowest bandwidth, in 256 KiB steps", () => {
    expect(uploadChunkBytes({ ...defaults, DOCFLOW_REQUEST_TIMEOUT_MS: 25_000 })).toBe(9 * 256 * 1024);
    expect(uploadChunkBytes({ ...defaults, DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS: 1_250_000 })).toBe(52 * 1024 * 1024 + 256 * 1024);
    expect(uploadChunkBytes({ ...defaults, DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS: 1000 })).toBe(256 * 1024);
    expect(uploadChunkBytes({ ...defaults, DOCFLOW_UPLOAD_CHUNK_BYTES: 8 * 1024 * 1024 })).toBe(8 * 1024 * 1024);
  });

  it("refuses a configured chunk the slowest client cannot send within one request", () => {
    expect(() => loadConfig({ DOCFLOW_UPLOAD_CHUNK_BYTES: String(7 * 1024 * 1024) })).toThrow(/could not send one chunk in time/);
  });
});

describe("DOCFLOW_REALTIME_WS_URL (where browsers reach NATS)", () => {
  const realtime = { DOCFLOW_REALTIME_SIGNING_SEED: `SA${"A".repeat(56)}`, DOCFLOW_REALTIME_ACCOUNT: `A${"B".repeat(55)}` };

  it("takes a ws:// or wss:// URL, or a path on the app's own host", () => {
    expect(loadConfig({ ...realtime, DOCFLOW_REALTIME_WS_URL: "wss://nats.example.com" }).DOCFLOW_REALTIME_WS_URL).toBe("wss://nats.example.com");
    expect(loadConfig({ ...realtime, DOCFLOW_REALTIME_WS_URL: "/nats" }).DOCFLOW_REALTIME_WS_URL).toBe("/nats");
  });

  it("refuses anything else, naming the variable", () => {
    expect(() => loadConfig({ ...realtime, DOCFLOW_REALTIME_WS_URL: "https://nats.example.com" })).toThrow(/DOCFLOW_REALTIME_WS_URL/);
    expect(() => loadConfig({ ...realtime, DOCFLOW_REALTIME_WS_URL: "nats" })).toThrow(/DOCFLOW_REALTIME_WS_URL/);
  });
});
