import { afterEach, describe, expect, it } from "vitest";
import { applyRuntimeConfig, DEFAULT_CONFIG, resetRuntimeConfig, runtimeConfig } from "@/config";

describe("runtime config", () => {
  afterEach(() => resetRuntimeConfig());

  it("takes what the gateway sends over the defaults, ignoring its upload transport: the app always uploads through tus", () => {
    applyRuntimeConfig({
      maxUploadBytes: 1024,
      uploadTransport: "xhr",
      uploadEndpoint: "/v1/documents",
      tusChunkBytes: 5_242_880,
      tracesEndpoint: "/v1/telemetry/traces",
    });
    expect({ ...runtimeConfig }).toEqual({ ...DEFAULT_CONFIG, maxUploadBytes: 1024, tusChunkBytes: 5_242_880, tracesEndpoint: "/v1/telemetry/traces" });
  });

  it("keeps the default of each field that does not validate, and of all when the answer is no object", () => {
    applyRuntimeConfig({ maxUploadBytes: -1, tusChunkBytes: "big", pollIntervalMs: 10, tracesEndpoint: "//elsewhere.example/traces" });
    expect({ ...runtimeConfig }).toEqual(DEFAULT_CONFIG);
    applyRuntimeConfig({ pollIntervalMs: 5_000 });
    applyRuntimeConfig("nonsense");
    expect({ ...runtimeConfig }).toEqual(DEFAULT_CONFIG);
  });
});
