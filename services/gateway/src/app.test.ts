import { createHash } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { decode } from "@nats-io/jwt";
import { createAccount } from "@nats-io/nkeys";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { NOT_A_DOCUMENT } from "@docflow/infra";
import { documentKey, jobCreatedAt, objectKeys, tenantEventsWildcard, type JobRecord } from "@docflow/contracts";
import { type Answer, type TestContext, type clientOf, listen, pdfBytes, startApp } from "../test/support.ts";

const MAX_UPLOAD = 256 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The answer is docflow's problem document (RFC 9457) with this status and code. */
function expectProblem(res: Answer, status: number, code: string, detail?: string | RegExp): void {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: `urn:docflow:problem:${code}`, status, code, title: expect.any(String) });
  if (detail !== undefined) expect(res.body.detail).toEqual(typeof detail === "string" ? detail : expect.stringMatching(detail));
}

/** The app on a fresh test context, listening on a free port, until the test ends. */
const start = (env: Record<string, string> = {}) => startApp({ DOCFLOW_MAX_UPLOAD_BYTES: String(MAX_UPLOAD), ...env });

/** Uploads `bytes` with `POST /v1/documents` as tenant acme and returns the Job. */
async function upload(send: ReturnType<typeof clientOf>, bytes = pdfBytes(4096), filename = "report.pdf") {
  const res = await send("POST", `/v1/documents?filename=${encodeURIComponent(filename)}`, { as: "acme", body: new Uint8Array(bytes) });
  expect(res.status, res.text).toBe(202);
  return res.body as { id: string } & Record<string, unknown>;
}

describe("probes and public documents", () => {
  it("/healthz answers from the process alone, uncached, even when a dependency is down", async () => {
    const { ctx, send } = await start();
    ctx.readiness = {
      rabbitmq: () => {
        throw new Error("not connected");
      },
    };
    const res = await send("GET", "/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("/readyz runs every dependency check, and answers 503 not_ready naming the failing ones", async () => {
    const { ctx, send } = await start();
    ctx.readiness = { nats: () => {}, objectStore: async () => {} };
    const ready = await send("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: "ready", checks: { nats: "ok", objectStore: "ok" } });
    expect(ready.headers.get("cache-control")).toBe("no-store");

    ctx.readiness = {
      nats: () => {},
      rabbitmq: () => {
        throw new Error("not connected");
      },
      objectStore: () => Promise.reject(new Error("")),
    };
    const down = await send("GET", "/readyz");
    expectProblem(down, 503, "not_ready", "rabbitmq: not connected; objectStore: failed");
    expect(down.body.checks).toEqual({ nats: "ok", rabbitmq: "not connected", objectStore: "failed" });
  });

  it("/readyz turns false as soon as the gateway drains, before checking anything", async () => {
    const { ctx, send } = await start();
    const check = vi.fn();
    ctx.readiness = { nats: check };
    ctx.draining = () => true;
    const res = await send("GET", "/readyz");
    expectProblem(res, 503, "not_ready", "draining");
    expect(res.body.checks).toEqual({ draining: "shutting down" });
    expect(check).not.toHaveBeenCalled();
  });

  it("/v1/config and /v1/openapi.json need no token; /v1/config tells the web app its limits and where to upload", async () => {
    const { send } = await start();
    const config = await send("GET", "/v1/config");
    expect(config.status).toBe(200);
    expect(config.body).toEqual({ maxUploadBytes: MAX_UPLOAD, uploadTransport: "tus", uploadEndpoint: "/v1/uploads", tusChunkBytes: 5 * 1024 * 1024, tracesEndpoint: null });
    const openapi = await send("GET", "/v1/openapi.json");
    expect(openapi.status).toBe(200);
    expect(openapi.body).toMatchObject({ openapi: "3.0.3", security: [{ bearer: [] }] });
    expect(Object.keys(openapi.body.paths as object)).toContain("/v1/jobs/{id}");
  });

  it("/metrics counts requests by route template, not by URL", async () => {
    const { send } = await start();
    const job = await upload(send);
    await send("GET", `/v1/jobs/${job.id}`, { as: "acme" });
    await send("GET", "/v1/nowhere", { as: "acme" });
    const metrics = await send("GET", "/metrics");
    expect(metrics.status).toBe(200);
    /** The value of the sample of `name` whose labels include `labels`. */
    const sample = (name: string, labels: Record<string, string>) =>
      metrics.text
        .split("\n")
        .filter((line) => line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
        .map((line) => Number(line.split(" ").at(-1)));
    expect(sample("http_server_request_duration_seconds_count", { http_route: "/v1/jobs/:id", http_request_method: "GET", http_response_status_code: "200" })).toEqual([1]);
    expect(sample("http_server_request_duration_seconds_count", { http_route: "/v1/{*rest}", http_response_status_code: "404" })).toEqual([1]);
    expect(metrics.text).not.toContain(job.id);
    expect(sample("docflow_jobs_created_total", { content_type: "application/pdf" })).toEqual([1]);
  });
});

describe("authentication", () => {
  const routes: [string, string][] = [
    ["GET", "/v1/jobs"],
    ["GET", "/v1/jobs/019ad000-0000-7000-8000-000000000000"],
    ["DELETE", "/v1/jobs/019ad000-0000-7000-8000-000000000000"],
    ["POST", "/v1/documents"],
    ["POST", "/v1/uploads"],
    ["OPTIONS", "/v1/uploads"],
    ["PATCH", "/v1/uploads/abc"],
    ["POST", "/v1/realtime/credentials"],
    ["POST", "/v1/telemetry/traces"],
    ["GET", "/v1/no-such-route"],
  ];

  it("answers 401 problem+json with a Bearer challenge on every /v1 route without a valid token", async () => {
    const { send } = await start();
    for (const [method, path] of routes) {
      for (const headers of [{}, { authorization: "Bearer not-a-known-token-at-all" }, { authorization: "Basic YWNtZTpzZWNyZXQ=" }] as Record<string, string>[]) {
        const res = await send(method, path, { headers });
        expectProblem(res, 401, "unauthorized");
        expect(res.body.instance, `${method} ${path}`).toBe(path);
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="docflow"');
      }
    }
  });

  it("answers 404 route_not_found for an unknown /v1 route once the caller is known", async () => {
    const { send } = await start();
    expectProblem(await send("GET", "/v1/no-such-route", { as: "acme" }), 404, "route_not_found");
  });
});

describe("problem documents", () => {
  it("are written byte for byte: type, title, status, detail (the title when there is none), code, instance, then extension members", async () => {
    const { send } = await start();
    const big = await send("POST", "/v1/documents?filename=big.pdf", { as: "acme", body: new Uint8Array(pdfBytes(MAX_UPLOAD + 1)) });
    expect(big.text).toBe(
      JSON.stringify({
        type: "urn:docflow:problem:file_too_large",
        title: "The file is larger than the upload limit",
        status: 413,
        detail: `The file is larger than the limit of ${MAX_UPLOAD} bytes.`,
        code: "file_too_large",
        instance: "/v1/documents?filename=big.pdf",
        limit: MAX_UPLOAD,
      }),
    );
    const nowhere = await send("GET", "/v1/nowhere", { as: "acme" });
    expect(nowhere.text).toBe(
      JSON.stringify({ type: "urn:docflow:problem:route_not_found", title: "No such endpoint", status: 404, detail: "No such endpoint", code: "route_not_found", instance: "/v1/nowhere" }),
    );
    const invalid = await send("GET", "/v1/jobs?limit=0", { as: "acme" });
    expect(JSON.parse(invalid.text)).toEqual({
      type: "urn:docflow:problem:validation_failed",
      title: "The request is not valid",
      status: 400,
      detail: expect.stringMatching(/^limit: /),
      code: "validation_failed",
      instance: "/v1/jobs?limit=0",
    });
    expect(Object.keys(JSON.parse(invalid.text))).toEqual(["type", "title", "status", "detail", "code", "instance"]);
  });
});

describe("POST /v1/documents", () => {
  it("stores the raw body, records the job and queues it: 202 with the Job, its Location and ETag", async () => {
    const { ctx, send } = await start();
    const bytes = pdfBytes(100_000);
    const res = await send("POST", "/v1/documents?filename=Q3%20report.pdf", { as: "acme", body: new Uint8Array(bytes) });
    expect(res.status).toBe(202);
    const id = String(res.body.id);
    expect(res.headers.get("location")).toBe(`/v1/jobs/${id}`);
    expect(res.headers.get("etag")).toMatch(/^"\d+"$/);
    expect(res.body).toEqual({
      id,
      status: "queued",
      filename: "Q3 report.pdf",
      contentType: "application/pdf",
      size: bytes.length,
      sha256: sha256(bytes),
      pageCount: null,
      pagesDone: 0,
      createdAt: jobCreatedAt(id),
      updatedAt: expect.any(String),
    });
    // The record is the tenant's, the bytes are where the processor reads them, the work is queued.
    expect(ctx.jobs.all()).toEqual([expect.objectContaining({ id, tenant: "acme", sourceKey: objectKeys.source("acme", id) })]);
    const stored = await ctx.store.get(objectKeys.source("acme", id));
    expect(Buffer.concat(await stored!.body.toArray())).toEqual(bytes);
    expect(ctx.publisher.messages).toEqual([{ v: 1, stage: "inspect", jobId: id, tenant: "acme" }]);
    expect(ctx.events).toEqual([{ subject: `docflow.events.acme.${id}`, event: expect.objectContaining({ type: "job.queued", jobId: id }) }]);
  });

  it("takes the multipart field `file`, named by the form (without its path), or a default name", async () => {
    const { send } = await start();
    const form = new FormData();
    form.append("note", "ignored");
    form.append("file", new Blob([new Uint8Array(pdfBytes(5000))], { type: "application/pdf" }), "C:\\Users\\me\\deck.pdf");
    const res = await send("POST", "/v1/documents", { as: "acme", body: form });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ filename: "deck.pdf", size: 5000 });
    expect((await upload(send, pdfBytes(1000), "")).filename).toBe("document.pdf");
  });

  it("refuses a body declared larger than the limit with 413, before reading it, keeping nothing", async () => {
    const { ctx, send } = await start();
    const res = await send("POST", "/v1/documents?filename=big.pdf", { as: "acme", body: new Uint8Array(pdfBytes(MAX_UPLOAD + 1)) });
    expectProblem(res, 413, "file_too_large", `The file is larger than the limit of ${MAX_UPLOAD} bytes.`);
    expect(res.body.limit).toBe(MAX_UPLOAD);
    expect(ctx.jobs.all()).toEqual([]);
    expect(ctx.publisher.messages).toEqual([]);
  });

  it("refuses a streamed body of unknown length once it passes the limit, keeping nothing", async () => {
    const { ctx, send } = await start();
    const bytes = pdfBytes(MAX_UPLOAD + 64 * 1024);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 16 * 1024) controller.enqueue(new Uint8Array(bytes.subarray(at, at + 16 * 1024)));
        controller.close();
      },
    });
    expectProblem(await send("POST", "/v1/documents", { as: "acme", body }), 413, "file_too_large");
    expect(ctx.jobs.all()).toEqual([]);
    expect(await ctx.store.deletePrefix("tenants/")).toBe(0);
  });

  it("answers 400 and 415 problems for an empty body, a form without `file`, a broken form and a file of another type", async () => {
    const { ctx, send } = await start();
    expectProblem(await send("POST", "/v1/documents", { as: "acme", body: new Uint8Array(0) }), 400, "empty_body");
    const form = new FormData();
    form.append("other", "value");
    expectProblem(await send("POST", "/v1/documents", { as: "acme", body: form }), 400, "missing_file");
    const broken = await send("POST", "/v1/documents", { as: "acme", headers: { "content-type": "multipart/form-data" }, body: "--x\r\n" });
    expectProblem(broken, 400, "validation_failed", /^Malformed multipart request/);
    const text = await send("POST", "/v1/documents?filename=notes.pdf", { as: "acme", body: "just some text, not a document\n".repeat(100) });
    expectProblem(text, 415, "unsupported_media_type", NOT_A_DOCUMENT);
    expect(ctx.jobs.all()).toEqual([]);
    expect(ctx.publisher.messages).toEqual([]);
  });

  it("answers 503 not_ready and keeps nothing when the job cannot be recorded", async () => {
    const { ctx, send } = await start();
    vi.spyOn(ctx.jobs, "create").mockRejectedValueOnce(new Error("nats: timeout"));
    const res = await send("POST", "/v1/documents?filename=a.pdf", { as: "acme", body: new Uint8Array(pdfBytes(2000)) });
    expectProblem(res, 503, "not_ready", "The job could not be recorded; nothing was kept. Retry shortly.");
    expect(await ctx.store.deletePrefix("tenants/")).toBe(0);
    expect(ctx.publisher.messages).toEqual([]);
  });

  it("answers 202 even when the broker does not confirm the inspect message: the sweeper sends it later", async () => {
    const { ctx, send } = await start();
    vi.spyOn(ctx.publisher, "publish").mockRejectedValueOnce(new Error("channel closed"));
    const job = await upload(send);
    expect(ctx.jobs.all().map((r) => r.id)).toEqual([job.id]);
    expect((await ctx.metrics.publishFailures.get()).values[0]?.value).toBe(1);
  });

  it("refuses new uploads with 503 while draining", async () => {
    const { ctx, send } = await start();
    ctx.draining = () => true;
    const res = await send("POST", "/v1/documents?filename=a.pdf", { as: "acme", body: new Uint8Array(pdfBytes(2000)) });
    expectProblem(res, 503, "not_ready", "The server is shutting down; retry on another instance.");
  });

  it("answers 429 with Retry-After past the tenant's uploads in flight, without holding up other tenants", async () => {
    const { ctx, send } = await start({ DOCFLOW_MAX_UPLOADS_PER_TENANT: "1" });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = send("POST", "/v1/documents?filename=slow.pdf", {
      as: "acme",
      body: new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new Uint8Array(pdfBytes(8 * 1024)));
          await held;
          controller.close();
        },
      }),
    });
    await vi.waitFor(async () => expect((await ctx.metrics.uploadsInFlight.get()).values[0]?.value).toBe(1));
    const refused = await send("POST", "/v1/documents?filename=x.pdf", { as: "acme", body: new Uint8Array(pdfBytes(1000)) });
    expectProblem(refused, 429, "too_many_uploads", "Too many uploads in progress (at most 1 at once for your account); retry in 5 s.");
    expect(refused.headers.get("retry-after")).toBe("5");
    // So is a tus chunk of the same tenant.
    expect((await send("PATCH", "/v1/uploads/abc", { as: "acme", tus: true, body: "x" })).status).toBe(429);
    expect((await send("POST", "/v1/documents?filename=x.pdf", { as: "globex", body: new Uint8Array(pdfBytes(1000)) })).status).toBe(202);
    release();
    expect((await slow).status).toBe(202);
    expect((await send("POST", "/v1/documents?filename=y.pdf", { as: "acme", body: new Uint8Array(pdfBytes(1000)) })).status).toBe(202);
  });
});

describe("jobs, always scoped to the caller's tenant", () => {
  /** Marks the job completed with `pages` pages, each with its JSON and images stored. */
  async function complete(ctx: TestContext, id: string, pages: number) {
    await ctx.jobs.update("acme", id, (r): JobRecord => ({ ...r, status: "completed", pageCount: pages, pagesDone: pages }));
    for (let n = 1; n <= pages; n++) {
      await ctx.store.put(objectKeys.pageJson("acme", id, n), Buffer.from(JSON.stringify({ n, width: 612, height: 792, text: `page ${n}` })));
      await ctx.store.put(objectKeys.pageThumbnail("acme", id, n), Buffer.from(`webp ${n}`));
    }
  }

  it("shows a job to its tenant with its revision as the ETag, and to no one else (404)", async () => {
    const { send } = await start();
    const job = await upload(send);
    const mine = await send("GET", `/v1/jobs/${job.id}`, { as: "acme" });
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual(job);
    expect(mine.headers.get("etag")).toMatch(/^"\d+"$/);
    expectProblem(await send("GET", `/v1/jobs/${job.id}`, { as: "globex" }), 404, "not_found", "No such job.");
    expectProblem(await send("GET", `/v1/jobs/${job.id}/source`, { as: "globex" }), 404, "not_found");
    expectProblem(await send("GET", `/v1/jobs/${job.id}/result`, { as: "globex" }), 404, "not_found");
    expectProblem(await send("GET", "/v1/jobs/not-a-job-id", { as: "acme" }), 404, "not_found");
  });

  it("lists the tenant's own jobs, newest first, a page at a time", async () => {
    const { send } = await start();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await upload(send)).id);
    await send("POST", "/v1/documents?filename=other.pdf", { as: "globex", body: new Uint8Array(pdfBytes(1000)) });
    const first = await send("GET", "/v1/jobs?limit=2", { as: "acme" });
    expect(first.status).toBe(200);
    expect((first.body.items as { id: string }[]).map((j) => j.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.nextCursor).toBe(ids[1]);
    expect(Object.keys(first.body)).toEqual(["items", "nextCursor"]);
    const second = await send("GET", `/v1/jobs?limit=2&cursor=${ids[1]}`, { as: "acme" });
    expect((second.body.items as { id: string }[]).map((j) => j.id)).toEqual([ids[0]]);
    expect(second.body.nextCursor).toBeNull();
    expect(((await send("GET", "/v1/jobs", { as: "globex" })).body.items as { filename: string }[]).map((j) => j.filename)).toEqual(["other.pdf"]);
  });

  it("answers 400 validation_failed, naming the parameter, for a bad limit or cursor", async () => {
    const { send } = await start();
    expectProblem(await send("GET", "/v1/jobs?limit=0", { as: "acme" }), 400, "validation_failed", /^limit: /);
    expectProblem(await send("GET", "/v1/jobs?limit=101", { as: "acme" }), 400, "validation_failed", /^limit: /);
    expectProblem(await send("GET", "/v1/jobs?limit=ten", { as: "acme" }), 400, "validation_failed", /^limit: /);
    expectProblem(await send("GET", "/v1/jobs?cursor=42", { as: "acme" }), 400, "validation_failed", /^cursor: not a job id/);
  });

  it("deletes a job and all its objects for its tenant only, announcing the cancellation", async () => {
    const { ctx, send } = await start();
    const job = await upload(send);
    expectProblem(await send("DELETE", `/v1/jobs/${job.id}`, { as: "globex" }), 404, "not_found");
    expect(ctx.jobs.all()).toHaveLength(1);

    const res = await send("DELETE", `/v1/jobs/${job.id}`, { as: "acme" });
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expect(ctx.jobs.all()).toEqual([]);
    expect(await ctx.store.head(objectKeys.source("acme", job.id))).toBeNull();
    expect(ctx.events.map((e) => e.event.type)).toEqual(["job.queued", "job.canceled"]);
    expectProblem(await send("GET", `/v1/jobs/${job.id}`, { as: "acme" }), 404, "not_found");
  });

  it("answers 409 job_not_ready for the result of a job still in progress, and the pages once it is completed", async () => {
    const { ctx, send } = await start();
    const job = await upload(send);
    const early = await send("GET", `/v1/jobs/${job.id}/result`, { as: "acme" });
    expectProblem(early, 409, "job_not_ready", "The job is queued; the result is available once it is completed.");
    expect(early.body.jobStatus).toBe("queued");

    await complete(ctx, job.id, 2);
    const result = await send("GET", `/v1/jobs/${job.id}/result`, { as: "acme" });
    expect(result.status).toBe(200);
    expect(result.body.job).toMatchObject({ id: job.id, status: "completed", pageCount: 2 });
    expect(result.body.pages).toEqual(
      [1, 2].map((n) => ({ n, width: 612, height: 792, text: `page ${n}`, thumbnailUrl: `/v1/jobs/${job.id}/pages/${n}/thumbnail`, previewUrl: `/v1/jobs/${job.id}/pages/${n}/preview` })),
    );
    expect(result.body).not.toHaveProperty("document");
    expect(Object.keys(result.body)).toEqual(["job", "pages"]);

    // What inspection found in full comes along once it is stored.
    const document = { encrypted: false, javascript: false, slideCount: 1, slides: [{ n: 1, title: "Intro", notes: "" }] };
    await ctx.store.put(documentKey("acme", job.id), Buffer.from(JSON.stringify(document)));
    const withDocument = await send("GET", `/v1/jobs/${job.id}/result`, { as: "acme" });
    expect(Object.keys(withDocument.body)).toEqual(["job", "pages", "document"]);
    expect(withDocument.body.document).toEqual(document);
  });

  it("serves one page, its thumbnail and the source; a page past the end is 404, one not rendered yet page_not_ready", async () => {
    const { ctx, send } = await start();
    const bytes = pdfBytes(3000);
    const job = await upload(send, bytes, 'Ünïcode "deck".pdf');
    await complete(ctx, job.id, 1);
    expect((await send("GET", `/v1/jobs/${job.id}/pages/1`, { as: "acme" })).body).toEqual({
      n: 1,
      width: 612,
      height: 792,
      text: "page 1",
      thumbnailUrl: `/v1/jobs/${job.id}/pages/1/thumbnail`,
      previewUrl: `/v1/jobs/${job.id}/pages/1/preview`,
    });
    const thumbnail = await send("GET", `/v1/jobs/${job.id}/pages/1/thumbnail`, { as: "acme" });
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers.get("content-type")).toBe("image/webp");
    expect(thumbnail.headers.get("cache-control")).toBe("private, max-age=86400, immutable");
    expect(thumbnail.text).toBe("webp 1");
    expectProblem(await send("GET", `/v1/jobs/${job.id}/pages/1/preview`, { as: "acme" }), 404, "page_not_ready");
    expectProblem(await send("GET", `/v1/jobs/${job.id}/pages/2`, { as: "acme" }), 404, "not_found", "No such page.");
    expectProblem(await send("GET", `/v1/jobs/${job.id}/pages/0/thumbnail`, { as: "acme" }), 404, "not_found", "No such page.");
    expectProblem(await send("GET", `/v1/jobs/${job.id}/pages/1/thumbnail`, { as: "globex" }), 404, "not_found");

    const res = await send("GET", `/v1/jobs/${job.id}/source`, { as: "acme" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/pdf");
    expect(res.headers.get("content-length")).toBe(String(bytes.length));
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="_n_code _deck_.pdf"; filename*=UTF-8''${encodeURIComponent('Ünïcode "deck".pdf')}`);
    expect(res.headers.get("digest")).toBe(`sha-256=${Buffer.from(sha256(bytes), "hex").toString("base64")}`);
  });
});

describe("live updates and browser traces", () => {
  it("answers 501 realtime_unavailable and 404 telemetry_unavailable where they are not configured", async () => {
    const { send } = await start();
    expectProblem(await send("POST", "/v1/realtime/credentials", { as: "acme" }), 501, "realtime_unavailable");
    expectProblem(await send("POST", "/v1/telemetry/traces", { as: "acme", headers: { "content-type": "application/json" }, body: "{}" }), 404, "telemetry_unavailable");
  });

  it("signs NATS credentials that may subscribe to the caller's own tenant's events only, and publish nothing", async () => {
    const account = createAccount();
    const { send } = await start({
      DOCFLOW_REALTIME_SIGNING_SEED: new TextDecoder().decode(account.getSeed()),
      DOCFLOW_REALTIME_ACCOUNT: account.getPublicKey(),
      DOCFLOW_REALTIME_WS_URL: "/nats",
    });
    const res = await send("POST", "/v1/realtime/credentials", { as: "globex" });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.body).toMatchObject({ url: "/nats", subject: tenantEventsWildcard("globex"), expiresAt: expect.any(String) });
    expect(Object.keys(res.body)).toEqual(["url", "jwt", "subject", "expiresAt"]);
    const claims = decode<Record<string, unknown>>(String(res.body.jwt));
    expect(claims.nats).toMatchObject({ sub: { allow: [tenantEventsWildcard("globex")] }, pub: { deny: [">"] }, allowed_connection_types: ["WEBSOCKET"] });
    expect(claims.exp! * 1000).toBe(Date.parse(String(res.body.expiresAt)));
  });

  it("forwards a signed-in caller's span batch to the collector, and maps its refusals to problems", async () => {
    const received: { type: string | undefined; body: string }[] = [];
    let answer = 200;
    const collector = createServer(async (req: IncomingMessage, res) => {
      received.push({ type: req.headers["content-type"], body: Buffer.concat(await req.toArray()).toString() });
      res.writeHead(answer).end();
    });
    const { url: collectorUrl, close } = await listen(collector);
    onTestFinished(close);
    const { ctx, send } = await start({ DOCFLOW_BROWSER_TRACES_URL: `${collectorUrl}/v1/traces`, DOCFLOW_BROWSER_TRACES_MAX_BYTES: "1024" });
    const batch = JSON.stringify({ resourceSpans: [] });

    const res = await send("POST", "/v1/telemetry/traces", { as: "acme", headers: { "content-type": "application/json" }, body: batch });
    expect(res.status).toBe(204);
    expect(received).toEqual([{ type: "application/json", body: batch }]);
    expect((await ctx.metrics.browserSpanBatches.get()).values[0]?.value).toBe(1);

    expectProblem(await send("POST", "/v1/telemetry/traces", { as: "acme", headers: { "content-type": "text/plain" }, body: batch }), 415, "telemetry_unsupported_media_type");
    expectProblem(
      await send("POST", "/v1/telemetry/traces", { as: "acme", headers: { "content-type": "application/json" }, body: "x".repeat(2048) }),
      413,
      "telemetry_batch_too_large",
      "a batch may hold up to 1024 bytes",
    );
    answer = 500;
    expectProblem(await send("POST", "/v1/telemetry/traces", { as: "acme", headers: { "content-type": "application/json" }, body: batch }), 502, "collector_unavailable", "the collector answered 500");
  });
});

describe("resumable uploads (tus) through the app", () => {
  it("needs a token for every tus request, OPTIONS included", async () => {
    const { send } = await start();
    const options = await send("OPTIONS", "/v1/uploads", { as: "acme" });
    expect(options.status).toBe(204);
    expect(options.headers.get("tus-version")).toBe("1.0.0");
    expect(options.headers.get("tus-extension")).toBe("creation,creation-with-upload,creation-defer-length,termination,expiration");
    expect(options.headers.get("tus-max-size")).toBe(String(MAX_UPLOAD));
    expectProblem(await send("OPTIONS", "/v1/uploads"), 401, "unauthorized");
    const head = await send("HEAD", "/v1/uploads/abc", { tus: true });
    expect(head.status).toBe(401);
    expect(head.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });

  it("creates, resumes and completes an upload: POST, HEAD, PATCH, PATCH; the final answer is the queued Job", async () => {
    const { ctx, send } = await start();
    const bytes = pdfBytes(150_000);
    const created = await send("POST", "/v1/uploads", {
      as: "acme",
      tus: true,
      headers: { "upload-length": String(bytes.length), "upload-metadata": `filename ${Buffer.from("scan.pdf").toString("base64")},filetype ${Buffer.from("application/pdf").toString("base64")}` },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("tus-resumable")).toBe("1.0.0");
    const location = created.headers.get("location")!;
    expect(location).toMatch(/^\/v1\/uploads\/[A-Za-z0-9_-]+$/);

    const head = await send("HEAD", location, { as: "acme", tus: true });
    expect(head.status).toBe(200);
    expect(head.headers.get("upload-offset")).toBe("0");
    expect(head.headers.get("upload-length")).toBe(String(bytes.length));
    expect(head.headers.get("cache-control")).toBe("no-store");

    const patch = (offset: number, chunk: Buffer) =>
      send("PATCH", location, { as: "acme", tus: true, headers: { "upload-offset": String(offset), "content-type": "application/offset+octet-stream" }, body: new Uint8Array(chunk) });
    const first = await patch(0, bytes.subarray(0, 100_000));
    expect(first.status).toBe(204);
    expect(first.headers.get("upload-offset")).toBe("100000");
    expect(ctx.jobs.all()).toEqual([]);

    const last = await patch(100_000, bytes.subarray(100_000));
    expect(last.status).toBe(200);
    expect(last.headers.get("content-type")).toBe("application/json");
    expect(last.headers.get("upload-offset")).toBe(String(bytes.length));
    const id = String(last.body.id);
    expect(last.headers.get("docflow-job-id")).toBe(id);
    expect(last.headers.get("docflow-job-location")).toBe(`/v1/jobs/${id}`);
    expect(last.body).toMatchObject({ status: "queued", filename: "scan.pdf", contentType: "application/pdf", size: bytes.length, sha256: null });

    // The job is the tenant's like any other, and its source is the uploaded file.
    expect((await send("GET", `/v1/jobs/${id}`, { as: "acme" })).body).toEqual(last.body);
    expectProblem(await send("GET", `/v1/jobs/${id}`, { as: "globex" }), 404, "not_found");
    const source = await ctx.store.get(objectKeys.source("acme", id));
    expect(Buffer.concat(await source!.body.toArray())).toEqual(bytes);
    expect(ctx.publisher.messages).toEqual([{ v: 1, stage: "inspect", jobId: id, tenant: "acme" }]);
  });
});
