import { rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { MemoryLocker } from "@tus/server";
import { ERRORS as TUS_ERRORS, type Locker } from "@tus/utils";
import { afterEach, describe, expect, it, vi } from "vitest";
import { objectKeys } from "@docflow/contracts";
import { NOT_A_DOCUMENT } from "@docflow/infra";
import { type Answer, clientOf, listen, pdfBytes, testContext } from "../../test/support.ts";
import { createUploads, reviseAnswer } from "./tus.ts";

const MAX_UPLOAD = 256 * 1024;
const b64 = (s: string) => Buffer.from(s).toString("base64");
const JSON_TYPE = "application/json";
const PROBLEM_TYPE = "application/problem+json";

function expectProblem(res: Answer, status: number, code: string, detail?: string | RegExp): void {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe(PROBLEM_TYPE);
  expect(res.body).toMatchObject({ type: `urn:docflow:problem:${code}`, status, code, title: expect.any(String) });
  if (detail !== undefined) expect(res.body.detail).toEqual(typeof detail === "string" ? detail : expect.stringMatching(detail));
  // tus's answer, whoever phrased it.
  expect(res.headers.get("tus-resumable")).toBe("1.0.0");
}

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.map((stop) => stop()));
  stops = [];
});

/** The uploads seam alone on a plain HTTP server (no Express: no token check or limits in front of it). */
async function serve(env: Record<string, string> = {}, options: { locker?: Locker } = {}) {
  const ctx = await testContext({ DOCFLOW_MAX_UPLOAD_BYTES: String(MAX_UPLOAD), ...env });
  const uploads = options.locker ? createUploads({ ...ctx, locker: options.locker }) : ctx.uploads;
  const { url, close } = await listen(createServer((req, res) => void uploads.handle(req, res)));
  stops.push(close, () => rm(ctx.dataDir, { recursive: true, force: true }));
  const send = clientOf(url);
  const tenant = { as: "acme" as const, tus: true };

  /** Creates an upload of `size` bytes as acme; its Location. */
  async function create(size: number, metadata: Record<string, string> = { filename: "doc.pdf" }, body?: Buffer): Promise<string> {
    const res = await send("POST", "/v1/uploads", {
      ...tenant,
      headers: {
        "upload-length": String(size),
        "upload-metadata": Object.entries(metadata)
          .map(([k, v]) => `${k} ${b64(v)}`)
          .join(","),
        ...(body ? { "content-type": "application/offset+octet-stream" } : {}),
      },
      ...(body ? { body: new Uint8Array(body) } : {}),
    });
    expect(res.status, res.text).toBe(201);
    return res.headers.get("location")!;
  }
  const patch = (location: string, offset: number, chunk: Buffer, as: "acme" | "globex" = "acme") =>
    send("PATCH", location, { as, tus: true, headers: { "upload-offset": String(offset), "content-type": "application/offset+octet-stream" }, body: new Uint8Array(chunk) });
  const head = (location: string, as: "acme" | "globex" = "acme") => send("HEAD", location, { as, tus: true });
  const keyOf = (location: string) => Buffer.from(location.split("/").pop()!, "base64url").toString("utf8");
  return { ctx, send, tenant, create, patch, head, keyOf };
}

/** The job id an upload's metadata names (set at creation). */
function jobIdOf(head: Answer): string | undefined {
  const pairs = (head.headers.get("upload-metadata") ?? "").split(",").map((p) => p.split(" "));
  const found = pairs.find(([k]) => k === "jobId");
  return found ? Buffer.from(found[1] ?? "", "base64").toString() : undefined;
}

describe("the uploads seam: creation", () => {
  it("names an upload for the source object of a new job of the caller's tenant, base64url in its Location", async () => {
    const { ctx, create, head, keyOf } = await serve();
    const location = await create(1000, { filename: "a.pdf", filetype: "application/pdf" });
    expect(location).toMatch(/^\/v1\/uploads\/[A-Za-z0-9_-]+$/);
    const key = keyOf(location);
    expect(key).toMatch(/^tenants\/acme\/jobs\/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\/source$/);
    // The job id is in the metadata from the start: a client that lost the final answer finds it there.
    const state = await head(location);
    expect(state.status).toBe(200);
    expect(state.headers.get("upload-offset")).toBe("0");
    expect(jobIdOf(state)).toBe(key.split("/")[3]);
    expect(ctx.jobs.all()).toEqual([]);
  });

  it("answers a caller without a valid token 401, as a problem document (even with no token check in front)", async () => {
    const { send } = await serve();
    const res = await send("POST", "/v1/uploads", { tus: true, headers: { "upload-length": "100", authorization: "Bearer nope-nope-nope-nope" } });
    expectProblem(res, 401, "unauthorized");
  });

  it("refuses what cannot become a job: no or deferred length, empty, too large, a type that is neither PDF nor PPTX", async () => {
    const { send, tenant } = await serve();
    const post = (headers: Record<string, string>) => send("POST", "/v1/uploads", { ...tenant, headers });
    expectProblem(await post({}), 400, "validation_failed", "Upload-Length or Upload-Defer-Length header required");
    expectProblem(await post({ "upload-defer-length": "1" }), 400, "validation_failed", "Upload-Length is required (deferred length is not supported).");
    expectProblem(await post({ "upload-length": "0" }), 400, "empty_body", "The upload is empty.");
    expectProblem(await post({ "upload-length": "a lot" }), 400, "validation_failed", "Invalid upload-length");
    expectProblem(await post({ "upload-length": String(MAX_UPLOAD + 1) }), 413, "file_too_large", "Maximum size exceeded");
    expectProblem(
      await post({ "upload-length": "100", "upload-metadata": `filename ${b64("x.png")},filetype ${b64("image/png")}` }),
      415,
      "unsupported_media_type",
      "Files of type image/png are not accepted: only PDF and PowerPoint (PPTX).",
    );
    // Uppy's `type` is read as tus-js-client's `filetype` is.
    expectProblem(await post({ "upload-length": "100", "upload-metadata": `type ${b64("text/plain")}` }), 415, "unsupported_media_type");
    for (const type of ["application/pdf", "application/vnd.openxmlformats-officedocument.presentationml.presentation", "application/octet-stream"]) {
      expect((await post({ "upload-length": "100", "upload-metadata": `filetype ${b64(type)}` })).status, type).toBe(201);
    }
  });
});

describe("the uploads seam: tenants", () => {
  it("lets no other tenant see, continue, read or end an upload: for them it does not exist", async () => {
    const { send, create, patch, head } = await serve();
    const location = await create(1000);
    for (const method of ["HEAD", "GET", "DELETE"]) {
      const res = await send(method, location, { as: "globex", tus: true });
      expect(res.status, method).toBe(404);
    }
    expectProblem(await patch(location, 0, pdfBytes(1000), "globex"), 404, "not_found", "No such upload.");
    expectProblem(await send("DELETE", location, { as: "globex", tus: true }), 404, "not_found", "No such upload.");
    // Untouched for its owner.
    expect((await head(location)).headers.get("upload-offset")).toBe("0");
  });

  it("answers 404 for an upload URL that is not a source key (another path, garbage)", async () => {
    const { send } = await serve();
    for (const id of [Buffer.from("../../etc/passwd").toString("base64url"), "not-base64-at-all", Buffer.from("tenants/acme/jobs/x/source").toString("base64url")]) {
      expectProblem(
        await send("PATCH", `/v1/uploads/${id}`, { as: "acme", tus: true, headers: { "upload-offset": "0", "content-type": "application/offset+octet-stream" }, body: "x" }),
        404,
        "not_found",
      );
    }
  });
});

describe("the uploads seam: completion", () => {
  it("answers the final PATCH with the queued Job (200, Docflow-Job-Id), created and announced once", async () => {
    const { ctx, create, patch, keyOf } = await serve();
    const bytes = pdfBytes(120_000);
    const location = await create(bytes.length, { filename: "../../minutes.pdf" });
    const jobId = keyOf(location).split("/")[3]!;
    expect((await patch(location, 0, bytes.subarray(0, 70_000))).status).toBe(204);
    const last = await patch(location, 70_000, bytes.subarray(70_000));
    expect(last.status).toBe(200);
    expect(last.headers.get("content-type")).toBe(JSON_TYPE);
    expect(last.headers.get("docflow-job-id")).toBe(jobId);
    expect(last.headers.get("docflow-job-location")).toBe(`/v1/jobs/${jobId}`);
    expect(last.headers.get("upload-offset")).toBe(String(bytes.length));
    expect(last.body).toMatchObject({ id: jobId, status: "queued", filename: "minutes.pdf", contentType: "application/pdf", size: bytes.length, sha256: null });
    expect(ctx.jobs.all()).toEqual([expect.objectContaining({ id: jobId, tenant: "acme", sourceKey: objectKeys.source("acme", jobId) })]);
    expect(ctx.publisher.messages).toEqual([{ v: 1, stage: "inspect", jobId, tenant: "acme" }]);
    expect(ctx.events.map((e) => e.event.type)).toEqual(["job.queued"]);
  });

  it("answers a retried final PATCH (its answer was lost) with the same Job as JSON, and makes no second job", async () => {
    const { ctx, create, patch } = await serve();
    const bytes = pdfBytes(50_000);
    const location = await create(bytes.length);
    await patch(location, 0, bytes.subarray(0, 20_000));
    const job = (await patch(location, 20_000, bytes.subarray(20_000))).body;
    // The same chunk again (the client never saw the answer), or an empty one at the end.
    for (const [offset, chunk] of [
      [20_000, bytes.subarray(20_000)],
      [bytes.length, Buffer.alloc(0)],
    ] as const) {
      const again = await patch(location, offset, chunk);
      expect(again.status).toBe(200);
      expect(again.headers.get("content-type")).toBe(JSON_TYPE);
      expect(again.body).toEqual(job);
    }
    expect(ctx.jobs.all()).toHaveLength(1);
    expect(ctx.publisher.messages).toHaveLength(1);
  });

  it("answers creation-with-upload of a whole file with 201 and the Job", async () => {
    const { send, tenant } = await serve();
    const bytes = pdfBytes(3000);
    const res = await send("POST", "/v1/uploads", {
      ...tenant,
      headers: { "upload-length": String(bytes.length), "content-type": "application/offset+octet-stream", "upload-metadata": `name ${b64("uppy.pdf")}` },
      body: new Uint8Array(bytes),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe(JSON_TYPE);
    expect(res.headers.get("location")).toMatch(/^\/v1\/uploads\//);
    expect(res.headers.get("upload-offset")).toBe(String(bytes.length));
    expect(res.body).toMatchObject({ status: "queued", filename: "uppy.pdf", size: bytes.length });
  });

  it("makes the job at the next HEAD when the final PATCH stored every byte but failed before the job existed", async () => {
    const { ctx, create, patch, head, keyOf } = await serve();
    const error = vi.spyOn(ctx.log, "error");
    const bytes = pdfBytes(10_000);
    const location = await create(bytes.length);
    vi.spyOn(ctx.jobs, "create").mockRejectedValueOnce(new Error("nats: timeout"));
    const failed = await patch(location, 0, bytes);
    expectProblem(failed, 500, "internal", "The upload could not be stored; retry it from the offset a HEAD request reports.");
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ err: expect.objectContaining({ message: "nats: timeout" }) }), "upload request failed");
    expect(ctx.jobs.all()).toEqual([]);

    // The client resumes with a HEAD, finds every byte there and takes the upload as done: the job now exists, once.
    for (let i = 0; i < 2; i++) {
      const state = await head(location);
      expect(state.status).toBe(200);
      expect(state.headers.get("upload-offset")).toBe(String(bytes.length));
    }
    expect(ctx.jobs.all().map((j) => j.id)).toEqual([keyOf(location).split("/")[3]]);
    expect(ctx.publisher.messages).toHaveLength(1);
  });

  it("judges the stored bytes again on completion, and removes a source that is no document", async () => {
    const { ctx, create, patch, keyOf } = await serve();
    const bytes = pdfBytes(20_000);
    const location = await create(bytes.length);
    expect((await patch(location, 0, bytes.subarray(0, 10_000))).status).toBe(204);
    // What is stored changed under the upload (it is judged by what the processor would read).
    await writeFile(join(ctx.dataDir, "objects", keyOf(location)), Buffer.alloc(10_000, 0x41));
    expectProblem(await patch(location, 10_000, bytes.subarray(10_000)), 415, "unsupported_media_type", NOT_A_DOCUMENT);
    expect(await ctx.store.head(keyOf(location))).toBeNull();
    expect(ctx.jobs.all()).toEqual([]);
  });
});

describe("the uploads seam: bytes", () => {
  it("refuses a first chunk that is neither a PDF nor a PPTX as it arrives, saying what it is where it can", async () => {
    const { create, patch, head } = await serve();
    const text = Buffer.from("plain text, definitely not a PDF or a presentation\n".repeat(50));
    const location = await create(text.length);
    expectProblem(await patch(location, 0, text), 415, "unsupported_media_type", NOT_A_DOCUMENT);
    expect((await head(location)).headers.get("upload-offset")).toBe("0");
    const ole = Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(4000)]);
    const other = await create(ole.length);
    expectProblem(await patch(other, 0, ole), 415, "unsupported_media_type", /password-protected Office file/);
  });

  it("counts every byte received", async () => {
    const { ctx, create, patch } = await serve();
    const bytes = pdfBytes(30_000);
    const location = await create(bytes.length);
    await patch(location, 0, bytes.subarray(0, 12_345));
    await patch(location, 12_345, bytes.subarray(12_345));
    expect((await ctx.metrics.uploadBytes.get()).values[0]?.value).toBe(bytes.length);
  });

  it("answers 409 upload_offset_mismatch for a chunk at the wrong offset, and 413 for bytes past the declared length", async () => {
    const { create, patch, head } = await serve();
    const bytes = pdfBytes(10_000);
    const location = await create(bytes.length);
    expect((await patch(location, 0, bytes.subarray(0, 4000))).status).toBe(204);
    expectProblem(await patch(location, 3000, bytes.subarray(3000, 5000)), 409, "upload_offset_mismatch", "Upload-Offset conflict");
    expectProblem(await patch(location, 4000, Buffer.concat([bytes.subarray(4000), Buffer.alloc(10)])), 413, "file_too_large");
    expect((await head(location)).headers.get("upload-offset")).toBe("4000");
  });

  it("lets the owner terminate an unfinished upload, not a finished one", async () => {
    const { send, create, patch, head } = await serve();
    const unfinished = await create(1000);
    expect((await send("DELETE", unfinished, { as: "acme", tus: true })).status).toBe(204);
    expect((await head(unfinished)).status).toBe(404);
    const bytes = pdfBytes(1000);
    const finished = await create(bytes.length);
    await patch(finished, 0, bytes);
    expectProblem(await send("DELETE", finished, { as: "acme", tus: true }), 400, "validation_failed", "Cannot terminate an already completed upload");
  });

  it("answers 410 upload_expired for an upload past its expiration", async () => {
    const { create, head, patch } = await serve({ DOCFLOW_UPLOAD_EXPIRATION_MS: "50" });
    const location = await create(1000);
    await new Promise((r) => setTimeout(r, 100));
    const expired = await head(location);
    expect(expired.status).toBe(410);
    expect(expired.headers.get("content-type")).toBe(PROBLEM_TYPE);
    expectProblem(await patch(location, 0, pdfBytes(1000)), 410, "upload_expired", "The file for this url no longer exists");
  });
});

describe("the uploads seam: tus's own answers, in docflow's words", () => {
  it("answers tus's plain-text refusals (before any hook runs) as problem documents with tus's words as the detail", async () => {
    const { send } = await serve();
    const noVersion = await send("POST", "/v1/uploads", { as: "acme", headers: { "upload-length": "100" } });
    expectProblem(noVersion, 412, "tus_version_required", "Tus-Resumable Required");
    // The answer was rewritten whole: no stale length of tus's text.
    expect(JSON.parse(noVersion.text)).toEqual(noVersion.body);
    expectProblem(await send("PUT", "/v1/uploads", { as: "acme", tus: true }), 404, "not_found", "Not found");
    expectProblem(await send("PATCH", "/v1/uploads/x", { as: "acme", tus: true, headers: { "upload-offset": "-1" } }), 400, "validation_failed", "Invalid upload-offset");
  });

  it("writes its problem documents byte for byte as the rest of the API does, without an instance", async () => {
    const { send, tenant } = await serve();
    const noVersion = await send("POST", "/v1/uploads", { as: "acme", headers: { "upload-length": "100" } });
    expect(noVersion.text).toBe(
      JSON.stringify({
        type: "urn:docflow:problem:tus_version_required",
        title: "Uploads at /v1/uploads use tus 1.0.0: send the header Tus-Resumable: 1.0.0",
        status: 412,
        detail: "Tus-Resumable Required",
        code: "tus_version_required",
      }),
    );
    const empty = await send("POST", "/v1/uploads", { ...tenant, headers: { "upload-length": "0" } });
    expect(empty.text).toBe(JSON.stringify({ type: "urn:docflow:problem:empty_body", title: "The upload is empty", status: 400, detail: "The upload is empty.", code: "empty_body" }));
  });

  it("answers a PATCH without Upload-Offset or Content-Type with a problem whose status is the answer's", async () => {
    const { send, create } = await serve();
    const location = await create(pdfBytes(1000).length);
    const partial: Record<string, string>[] = [{ "content-type": "application/offset+octet-stream" }, { "upload-offset": "0" }];
    for (const headers of partial) {
      const res = await send("PATCH", location, { as: "acme", tus: true, headers, body: new Uint8Array(pdfBytes(1000)) });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get("content-type")).toBe(PROBLEM_TYPE);
      expect(res.body.status, res.text).toBe(res.status);
    }
  });

  it("keeps tus's own headers on its successes", async () => {
    const { send, create, head } = await serve();
    const options = await send("OPTIONS", "/v1/uploads", { as: "acme" });
    expect(options.status).toBe(204);
    expect(options.headers.get("tus-max-size")).toBe(String(MAX_UPLOAD));
    const location = await create(1000);
    const state = await head(location);
    expect(state.headers.get("content-type")).toBe("text/plain;charset=UTF-8");
    expect(state.headers.get("upload-length")).toBe("1000");
  });

  it("answers a failure of the gateway or its storage as a logged 500 problem, in tus's words where tus had some", async () => {
    // Creating the upload takes the lock; the next request finds it held for good.
    let locks = 0;
    const timeout: Locker = { newLock: () => ({ lock: () => (locks++ === 0 ? Promise.resolve() : Promise.reject(TUS_ERRORS.ERR_LOCK_TIMEOUT)), unlock: async () => {} }) };
    const { ctx, create, head, patch } = await serve({}, { locker: timeout });
    const error = vi.spyOn(ctx.log, "error");
    const location = await create(1000);
    const res = await head(location);
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toBe(PROBLEM_TYPE);
    expectProblem(await patch(location, 0, pdfBytes(1000)), 500, "internal", TUS_ERRORS.ERR_LOCK_TIMEOUT.body.trim());
    expect(error).toHaveBeenCalledWith({ status: 500, detail: TUS_ERRORS.ERR_LOCK_TIMEOUT.body }, "upload request failed");
  });

  it("serves several uploads at once, each with its own answer", async () => {
    const { create, patch } = await serve({}, { locker: new MemoryLocker() });
    const files = [pdfBytes(40_000), pdfBytes(50_000), Buffer.from("not a pdf".repeat(2000))];
    const locations = await Promise.all(files.map((f) => create(f.length)));
    const answers = await Promise.all(files.map((f, i) => patch(locations[i]!, 0, f)));
    expect(answers.map((a) => [a.status, a.headers.get("content-type")])).toEqual([
      [200, JSON_TYPE],
      [200, JSON_TYPE],
      [415, PROBLEM_TYPE],
    ]);
  });
});

describe("reviseAnswer (the one place an answer of tus is changed)", () => {
  /** A server that answers as @tus/server does (srvx: writeHead with raw headers, then write and end), revised by `revise`. */
  async function answering(revise: Parameters<typeof reviseAnswer>[1], headers: string[] | Record<string, string> = ["Content-Type", "text/plain;charset=UTF-8", "Content-Length", "23"]) {
    const written: string[] = [];
    const { url, close } = await listen(
      createServer((_req, res) => {
        reviseAnswer(res, revise);
        res.writeHead(409, "Conflict", headers);
        res.write("Upload-Offset ", () => written.push("first"));
        res.write(Buffer.from("conflict"), () => written.push("second"));
        res.end("\n", () => written.push("end"));
      }),
    );
    stops.push(close);
    const res = await fetch(url);
    return { status: res.status, type: res.headers.get("content-type"), length: res.headers.get("content-length"), body: await res.text(), written };
  }

  it("leaves an answer it is not asked to revise as tus wrote it", async () => {
    const revise = vi.fn(() => undefined);
    expect(await answering(revise)).toEqual({ status: 409, type: "text/plain;charset=UTF-8", length: "23", body: "Upload-Offset conflict\n", written: ["first", "second", "end"] });
    expect(revise).toHaveBeenCalledWith(409);
  });

  it("relabels the body tus wrote, keeping it and its length", async () => {
    expect(await answering(() => ({ contentType: JSON_TYPE }))).toMatchObject({ type: JSON_TYPE, length: "23", body: "Upload-Offset conflict\n" });
    expect(await answering(() => ({ contentType: JSON_TYPE }), ["Content-Length", "23"])).toMatchObject({ type: JSON_TYPE, body: "Upload-Offset conflict\n" });
  });

  it("replaces the body with one made from all tus wrote, without tus's length, and still calls tus's callbacks", async () => {
    const res = await answering(() => ({ contentType: PROBLEM_TYPE, body: (text) => JSON.stringify({ detail: text.trim() }) }));
    expect(res).toEqual({ status: 409, type: PROBLEM_TYPE, length: null, body: '{"detail":"Upload-Offset conflict"}', written: ["first", "second", "end"] });
  });

  it("passes a writeHead that is not tus's (headers as an object) untouched", async () => {
    const revise = vi.fn(() => ({ contentType: PROBLEM_TYPE }));
    expect(await answering(revise, { "Content-Type": "text/plain", "Content-Length": "23" })).toMatchObject({ type: "text/plain", body: "Upload-Offset conflict\n" });
    expect(revise).not.toHaveBeenCalled();
  });
});
