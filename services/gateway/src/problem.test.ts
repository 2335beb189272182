import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import express from "express";
import { describe, expect, it, vi } from "vitest";
import { DocflowError } from "@docflow/contracts";
import { createLogger } from "@docflow/telemetry";
import { errorHandler } from "./problem.ts";

describe("errorHandler once the answer has started", () => {
  it("takes a client that leaves mid-download as routine: no stack trace on stderr, a debug line, the socket cut", async () => {
    const log = createLogger("test");
    const debug = vi.spyOn(log, "debug");
    const error = vi.spyOn(log, "error");
    const stderr = vi.spyOn(process.stderr, "write");
    const body = new PassThrough();
    const app = express();
    app.get("/big", async (_req, res) => {
      res.set("Content-Length", String(10 * 1024 * 1024));
      body.write(Buffer.alloc(64 * 1024));
      await pipeline(body, res);
    });
    app.use(errorHandler(log));
    const server = app.listen(0);
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as { port: number };
    try {
      const controller = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/big`, { signal: controller.signal });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      await vi.waitFor(() => expect(debug).toHaveBeenCalledWith(expect.objectContaining({ path: "/big" }), "client went away during the answer"));
      expect(error).not.toHaveBeenCalled();
      expect(stderr.mock.calls.map((c) => String(c[0])).join("")).not.toMatch(/ERR_STREAM_PREMATURE_CLOSE|Premature close/);
    } finally {
      stderr.mockRestore();
      server.close();
    }
  });
});

describe("errorHandler for a DocflowError", () => {
  it("answers a problem code with its problem document, and a job-failure reason, never an HTTP answer, as a logged 500", async () => {
    const log = createLogger("test");
    const error = vi.spyOn(log, "error").mockImplementation(() => {});
    const app = express();
    app.get("/problem", () => {
      throw new DocflowError("job_not_ready", "The job is queued.", { extra: { jobStatus: "queued" } });
    });
    app.get("/failure", () => {
      throw new DocflowError("pdf_encrypted");
    });
    app.use(errorHandler(log));
    const server = app.listen(0);
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as { port: number };
    try {
      const problem = await fetch(`http://127.0.0.1:${port}/problem`);
      expect(problem.status).toBe(409);
      expect(await problem.text()).toBe(
        JSON.stringify({
          type: "urn:docflow:problem:job_not_ready",
          title: "The job has not finished processing yet",
          status: 409,
          detail: "The job is queued.",
          code: "job_not_ready",
          instance: "/problem",
          jobStatus: "queued",
        }),
      );
      const failure = await fetch(`http://127.0.0.1:${port}/failure`);
      expect(failure.status).toBe(500);
      expect(await failure.json()).toMatchObject({ code: "internal", detail: "Internal error", instance: "/failure" });
      expect(error).toHaveBeenCalledWith(expect.objectContaining({ err: expect.objectContaining({ code: "pdf_encrypted" }), path: "/failure" }), "unhandled error");
    } finally {
      server.close();
    }
  });
});
