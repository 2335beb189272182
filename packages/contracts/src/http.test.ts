import { describe, expect, it } from "vitest";
import { ClientConfig, JobList, Problem } from "./http.ts";

describe("the HTTP answers' schemas", () => {
  const problem = { type: "urn:docflow:problem:file_too_large", title: "The file is larger than the upload limit", status: 413, detail: "At most 10 bytes.", code: "file_too_large" };

  it("take a problem document with its extension members, and no job-failure reason as its code", () => {
    expect(Problem.parse({ ...problem, instance: "/v1/documents", limit: 10 })).toEqual({ ...problem, instance: "/v1/documents", limit: 10 });
    expect(Problem.safeParse({ ...problem, code: "pdf_invalid", type: "urn:docflow:problem:pdf_invalid" }).success).toBe(false);
    expect(Problem.safeParse({ ...problem, type: "about:blank" }).success).toBe(false);
    expect(Problem.safeParse({ ...problem, status: 200 }).success).toBe(false);
  });

  it("take a job id or null as the list's cursor", () => {
    expect(JobList.parse({ items: [], nextCursor: null })).toEqual({ items: [], nextCursor: null });
    expect(JobList.safeParse({ items: [], nextCursor: "0190a000-0000-7000-8000-000000000000" }).success).toBe(true);
    expect(JobList.safeParse({ items: [], nextCursor: "42" }).success).toBe(false);
  });

  it("take paths on the app's own origin only as the client's endpoints", () => {
    const config = { maxUploadBytes: 1024, uploadTransport: "tus", uploadEndpoint: "/v1/uploads", tusChunkBytes: 512, tracesEndpoint: "/v1/telemetry/traces" };
    expect(ClientConfig.parse(config)).toEqual(config);
    expect(ClientConfig.parse({ ...config, tracesEndpoint: null }).tracesEndpoint).toBeNull();
    for (const elsewhere of ["//elsewhere.example/traces", "https://elsewhere.example/traces", "/"]) {
      expect(ClientConfig.safeParse({ ...config, tracesEndpoint: elsewhere }).success, elsewhere).toBe(false);
    }
    expect(ClientConfig.safeParse({ ...config, uploadTransport: "xhr" }).success).toBe(false);
  });
});
