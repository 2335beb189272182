import { describe, expect, it } from "vitest";
import { loadConfig, retryDelays } from "./config.ts";

describe("processor configuration", () => {
  it("backs off exponentially from the base, capped, one delay per retry", () => {
    expect(retryDelays({ DOCFLOW_DELIVERY_LIMIT: 5, DOCFLOW_RETRY_BASE_MS: 1000, DOCFLOW_RETRY_MAX_MS: 5000 })).toEqual([1000, 2000, 4000, 5000]);
    expect(retryDelays({ DOCFLOW_DELIVERY_LIMIT: 1, DOCFLOW_RETRY_BASE_MS: 1000, DOCFLOW_RETRY_MAX_MS: 5000 })).toEqual([]);
  });

  it("defaults the inspect and render prefetch to the concurrency, convert to 1", () => {
    const config = loadConfig({ DOCFLOW_PROCESSOR_CONCURRENCY: "3" });
    expect(config).toMatchObject({ DOCFLOW_INSPECT_PREFETCH: 3, DOCFLOW_RENDER_PREFETCH: 3, DOCFLOW_CONVERT_PREFETCH: 1, DOCFLOW_RANGE_WINDOW: 4 });
    expect(loadConfig({ DOCFLOW_PROCESSOR_CONCURRENCY: "3", DOCFLOW_RENDER_PREFETCH: "5" }).DOCFLOW_RENDER_PREFETCH).toBe(5);
  });

  it("defaults the express lane's prefetch to half the concurrency, at least 1", () => {
    expect(loadConfig({ DOCFLOW_PROCESSOR_CONCURRENCY: "1" }).DOCFLOW_EXPRESS_PREFETCH).toBe(1);
    expect(loadConfig({ DOCFLOW_PROCESSOR_CONCURRENCY: "8" }).DOCFLOW_EXPRESS_PREFETCH).toBe(4);
    expect(loadConfig({ DOCFLOW_PROCESSOR_CONCURRENCY: "8", DOCFLOW_EXPRESS_PREFETCH: "2" }).DOCFLOW_EXPRESS_PREFETCH).toBe(2);
  });

  it("refuses a stall threshold that healthy retries could reach, naming the variables", () => {
    // 20 s x 2 deliveries + one 2 s back-off = 42 s: 41 s would re-dispatch work that is still being retried.
    const env = { DOCFLOW_TASK_TIMEOUT_MS: "20000", DOCFLOW_DELIVERY_LIMIT: "2", DOCFLOW_RETRY_BASE_MS: "2000" };
    expect(() => loadConfig({ ...env, DOCFLOW_STALLED_AFTER_MS: "41000" })).toThrow(/DOCFLOW_STALLED_AFTER_MS.*DOCFLOW_RETRY_BASE_MS/);
    expect(loadConfig({ ...env, DOCFLOW_STALLED_AFTER_MS: "43000" }).DOCFLOW_STALLED_AFTER_MS).toBe(43000);
    expect(() => loadConfig({ DOCFLOW_RETRY_BASE_MS: "5000", DOCFLOW_RETRY_MAX_MS: "1000" })).toThrow(/DOCFLOW_RETRY_MAX_MS/);
  });

  it("consumes every stage unless told which, and refuses unknown ones by name", () => {
    expect(loadConfig({}).DOCFLOW_PROCESSOR_STAGES).toEqual(["inspect", "convert", "render", "finish"]);
    expect(loadConfig({ DOCFLOW_PROCESSOR_STAGES: "render, inspect,render" }).DOCFLOW_PROCESSOR_STAGES).toEqual(["inspect", "render"]);
    expect(() => loadConfig({ DOCFLOW_PROCESSOR_STAGES: "render,ocr" })).toThrow(/DOCFLOW_PROCESSOR_STAGES.*unknown: ocr/);
    expect(() => loadConfig({ DOCFLOW_PROCESSOR_STAGES: " , " })).toThrow(/DOCFLOW_PROCESSOR_STAGES/);
  });
});
