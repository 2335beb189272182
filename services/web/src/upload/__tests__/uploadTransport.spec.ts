import { Uppy, type Body, type Meta } from "@uppy/core";
import type Tus from "@uppy/tus";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { setupApp } from "@/__tests__/helpers";
import { UPPY_ID } from "@/composables/useUploadUppy";
import { createTusTransport, TUS_RETRY_DELAYS, type UploadTransport } from "@/upload/uploadTransport";

type TusPlugin = Tus<Meta, Body>;

/** A request as tus-js-client hands it to the hooks. */
function request(method: string) {
  const headers: Record<string, string> = {};
  return {
    headers,
    getMethod: () => method,
    getURL: () => "/v1/uploads/abc",
    setHeader: (name: string, value: string) => {
      headers[name] = value;
    },
  };
}

function response(status: number, headers: Record<string, string>, body = "") {
  return { getStatus: () => status, getHeader: (name: string) => headers[name], getBody: () => body };
}

function problem(status: number, code: string, title: string, detail?: string): string {
  return JSON.stringify({ type: "about:blank", title, status, detail, code });
}

/** A finished XMLHttpRequest as Uppy's tus plugin hands it to `upload-success`. */
function answeredXhr(body: string, headers: Record<string, string> = {}): XMLHttpRequest {
  const xhr = Object.create(XMLHttpRequest.prototype) as XMLHttpRequest;
  Object.defineProperties(xhr, {
    status: { value: 200 },
    responseText: { value: body },
    getResponseHeader: { value: (name: string) => headers[name] ?? null },
  });
  return xhr;
}

const b64 = (text: string) => btoa(text);
const JOB_ID = "01890a5d-ac96-7000-8000-000000000001";

describe("tus upload transport", () => {
  let uppy: Uppy<Meta, Body>;
  let transport: UploadTransport;
  let resumed: ReturnType<typeof vi.fn<(fileId: string, offset: number) => void>>;
  let plugin: TusPlugin;
  let onUnauthorized: ReturnType<typeof setupApp>["onUnauthorized"];

  beforeEach(async () => {
    ({ onUnauthorized } = setupApp());
    uppy = new Uppy<Meta, Body>({ id: UPPY_ID });
    transport = await createTusTransport({ tusChunkBytes: 262_144 });
    resumed = vi.fn<(fileId: string, offset: number) => void>();
    transport.install(uppy, { resumed });
    plugin = uppy.getPlugin("docflow-tus") as unknown as TusPlugin;
  });

  it("sends chunks of the advertised size to a fixed endpoint, retries with growing delays, and forgets finished uploads", () => {
    expect(plugin.opts).toMatchObject({ endpoint: "/v1/uploads", chunkSize: 262_144, removeFingerprintOnSuccess: true, retryDelays: [...TUS_RETRY_DELAYS] });
    // Each wait at least as long as the one before, about two minutes in all before giving up.
    expect([...TUS_RETRY_DELAYS].sort((a, b) => a - b)).toEqual([...TUS_RETRY_DELAYS]);
    expect(TUS_RETRY_DELAYS.reduce((sum, ms) => sum + ms, 0)).toBeGreaterThanOrEqual(120_000);
  });

  it("says an upload resumed when a HEAD finds bytes of it on the server, and for which file", async () => {
    const { onBeforeRequest, onAfterResponse } = plugin.opts;
    const file = { id: "docflow-upload-report/pdf-1e-application/pdf-1000-1" } as never;

    const head = request("HEAD");
    await onBeforeRequest!(head as never, file);
    expect(head.headers).toEqual({ Authorization: "Bearer test-token" });
    await onAfterResponse!(head as never, response(200, { "Upload-Offset": "524288", "Upload-Length": "1000000" }) as never);
    expect(resumed).toHaveBeenCalledExactlyOnceWith("docflow-upload-report/pdf-1e-application/pdf-1000-1", 524_288);

    // Nothing there yet, gone, or not a HEAD at all: no resume.
    for (const [method, status, offset] of [
      ["HEAD", 200, "0"],
      ["HEAD", 404, "10"],
      ["PATCH", 204, "786432"],
    ] as const) {
      const other = request(method);
      await onBeforeRequest!(other as never, file);
      await onAfterResponse!(other as never, response(status, { "Upload-Offset": offset }) as never);
    }
    expect(resumed).toHaveBeenCalledTimes(1);
  });

  it("finds the job in the final answer, or its id in a header or in the upload's metadata", () => {
    const job = { id: JOB_ID, status: "queued", filename: "report.pdf" };
    const success = (xhr: XMLHttpRequest) => ({ body: { xhr } });

    expect(transport.jobFromSuccess(success(answeredXhr(JSON.stringify(job))))).toEqual(job);
    expect(transport.jobIdFromSuccess(success(answeredXhr(JSON.stringify(job))))).toBe(JOB_ID);
    expect(transport.jobIdFromSuccess(success(answeredXhr("", { "Docflow-Job-Id": JOB_ID })))).toBe(JOB_ID);
    // A HEAD that found the upload finished (the answer to the last chunk was lost).
    const head = answeredXhr("", { "Upload-Metadata": `filename ${b64("report.pdf")},jobId ${b64(JOB_ID)},empty` });
    expect(transport.jobFromSuccess(success(head))).toBeNull();
    expect(transport.jobIdFromSuccess(success(head))).toBe(JOB_ID);
    expect(transport.jobIdFromSuccess(success(answeredXhr("", { "Upload-Metadata": `filename ${b64("report.pdf")}` })))).toBeNull();
    expect(transport.jobIdFromSuccess({ body: {} })).toBeNull();
  });

  it("waits out a 429 as long as Retry-After says, however many 429s came before, and still retries", () => {
    const { onShouldRetry } = plugin.opts;
    const tooMany = (retryAfter?: string) => ({ originalResponse: response(429, retryAfter ? { "Retry-After": retryAfter } : {}) }) as never;
    const next = vi.fn(() => true);
    const rateLimit = vi.spyOn(plugin.requests, "rateLimit");
    const paused = vi.spyOn(plugin.requests, "isPaused", "get");

    // More 429s than Uppy's retry delays (which it shares across the plugin and would run out of).
    for (let i = 0; i < TUS_RETRY_DELAYS.length + 4; i++) {
      paused.mockReturnValue(false);
      expect(onShouldRetry!(tooMany("5"), i, plugin.opts, next)).toBe(true);
    }
    expect(rateLimit.mock.calls.every(([ms]) => ms === 5000)).toBe(true);
    expect(rateLimit).toHaveBeenCalledTimes(TUS_RETRY_DELAYS.length + 4);
    // Without the header: the retry delay of that attempt. Already paused: no second pause.
    onShouldRetry!(tooMany(), 2, plugin.opts, next);
    expect(rateLimit).toHaveBeenLastCalledWith(TUS_RETRY_DELAYS[2]);
    paused.mockReturnValue(true);
    onShouldRetry!(tooMany("5"), 0, plugin.opts, next);
    expect(rateLimit).toHaveBeenCalledTimes(TUS_RETRY_DELAYS.length + 5);
    // Every error still goes through Uppy's handling, which queues the request again.
    expect(next).toHaveBeenCalledTimes(TUS_RETRY_DELAYS.length + 6);
    // Other errors are Uppy's to judge alone.
    onShouldRetry!({ originalResponse: response(500, {}) } as never, 0, plugin.opts, next);
    expect(rateLimit).toHaveBeenCalledTimes(TUS_RETRY_DELAYS.length + 5);
  });

  it("follows a new chunk size for the uploads that start after it", () => {
    transport.setChunkBytes(uppy, 5_242_880);
    expect(plugin.opts.chunkSize).toBe(5_242_880);
    expect(plugin.opts.endpoint).toBe("/v1/uploads");
  });

  it("tells people why an upload failed, and whether trying again may help", () => {
    const failure = (status: number, body: string) => transport.describeFailure(Object.assign(new Error("tus: unexpected response"), { originalResponse: response(status, {}, body) }));

    expect(failure(415, problem(415, "unsupported_media_type", "Only PDF and PowerPoint (PPTX) files are accepted", "The file looks like a ZIP archive, not a PDF."))).toEqual({
      status: 415,
      message: "The file looks like a ZIP archive, not a PDF.",
      retryable: false,
    });
    expect(failure(413, problem(413, "file_too_large", "The file is too large"))).toMatchObject({ message: "The file is too large", retryable: false });
    for (const status of [409, 423, 429, 500, 503]) expect(failure(status, "")).toMatchObject({ status, retryable: true });
    expect(onUnauthorized).not.toHaveBeenCalled();
    expect(failure(401, problem(401, "unauthorized", "Sign in again"))).toMatchObject({ status: 401, retryable: false });
    expect(onUnauthorized).toHaveBeenCalledOnce();
    // No answer at all.
    expect(transport.describeFailure(new Error("tus: failed to upload chunk"))).toEqual({
      status: 0,
      message: "The upload was interrupted. Check your connection and try again.",
      retryable: true,
    });
  });

  it("on detach, stops the uploads in flight without ending them on the server", () => {
    const upload = { abort: vi.fn(async () => undefined) };
    const events = { remove: vi.fn() };
    plugin.uploaders["f1"] = upload as never;
    plugin.uploaderEvents["f1"] = events as never;

    transport.detach(uppy);
    uppy.cancelAll();
    uppy.destroy();

    // abort(true) would also DELETE the upload and forget it: only the requests stop.
    expect(upload.abort.mock.calls).toEqual([[]]);
    expect(events.remove).toHaveBeenCalledOnce();
    expect(plugin.uploaders["f1"]).toBeNull();
  });
});
