import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { NatsConnection } from "@nats-io/transport-node";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, JobEvent } from "@docflow/contracts";
import { defaultPages, makeEncryptedPdf, makeFakePdf, makePptx, makeTextPdf, makeTruncatedPdf, pageWords } from "../fixtures/generate.ts";
import { connectTestNats, testServices } from "../support/env.ts";
import { startStack, type Stack } from "../support/stack.ts";
import { pdftotextPage } from "../support/poppler.ts";
import { jobsClient } from "../support/jobs-api.ts";

const run = promisify(execFile);
const MAX_UPLOAD = 5 * 1024 * 1024;

async function pdfinfoPages(path: string): Promise<number> {
  const { stdout } = await run("pdfinfo", [path]);
  return Number(/^Pages:\s+(\d+)/m.exec(stdout)?.[1]);
}

const norm = (s: string) => s.replace(/\s+/g, " ").trim();

describe("docflow end to end: real gateway and processor on RabbitMQ, NATS and S3", () => {
  let stack: Stack;
  let dir: string;
  let nats: NatsConnection;
  const events: JobEvent[] = [];
  let acme: string;
  let globex: string;

  const as = (tenant: string) => jobsClient(stack.baseUrl, stack.tokens[tenant] ?? "", { pollMs: 250, context: () => stack.logs().slice(-4000) });
  const api = (tenant: string, path: string, init: RequestInit = {}) => as(tenant).call(path, init);
  const upload = (tenant: string, path: string, filename: string) => as(tenant).post(path, filename);
  const waitForEnd = (tenant: string, id: string, timeoutMs = 150_000): Promise<Job> => as(tenant).waitForEnd(id, timeoutMs);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-e2e-files-"));
    stack = await startStack({ storage: "s3", env: { DOCFLOW_MAX_UPLOAD_BYTES: String(MAX_UPLOAD), DOCFLOW_RANGE_SIZE: "4" } });
    [acme, globex] = Object.keys(stack.tokens) as [string, string];
    nats = await connectTestNats();
    const sub = nats.subscribe(`docflow.events.${acme}.>`);
    void (async () => {
      for await (const m of sub) events.push(m.json<JobEvent>());
    })();
    await makeTextPdf(join(dir, "report.pdf"), defaultPages(11));
    await makePptx(join(dir, "deck.pptx"), ["Quarterly results alpha", "Roadmap bravo", "Questions charlie"]);
    await makeTruncatedPdf(join(dir, "report.pdf"), join(dir, "truncated.pdf"));
    await makeEncryptedPdf(join(dir, "report.pdf"), join(dir, "encrypted.pdf"));
    await makeFakePdf(join(dir, "fake.pdf"));
  });

  afterAll(async () => {
    await nats?.drain();
    await stack?.stop();
  });

  it("turns a multi-page PDF into a completed job with every page's text, thumbnail and preview", async () => {
    const file = join(dir, "report.pdf");
    const bytes = await readFile(file);
    const res = await upload(acme, file, "Q3 report.pdf");
    expect(res.status).toBe(202);
    const queued = (await res.json()) as Job;
    expect(res.headers.get("location")).toBe(`/v1/jobs/${queued.id}`);
    expect(queued).toMatchObject({ status: "queued", filename: "Q3 report.pdf", contentType: "application/pdf", size: bytes.length });
    expect(queued.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));

    const job = await waitForEnd(acme, queued.id);
    expect(job.status).toBe("completed");
    const pages = await pdfinfoPages(file);
    expect(job.pageCount).toBe(pages);
    expect(job.pagesDone).toBe(pages);

    const result = (await (await api(acme, `/v1/jobs/${job.id}/result`)).json()) as { pages: { n: number; text: string; width: number; height: number; thumbnailUrl: string; previewUrl: string }[] };
    expect(result.pages.map((p) => p.n)).toEqual(Array.from({ length: pages }, (_, i) => i + 1));
    for (const page of result.pages) {
      expect(norm(page.text)).toBe(norm(await pdftotextPage(file, page.n)));
      expect(page.text).toContain(pageWords(page.n));
      expect([page.width, page.height]).toEqual([612, 792]);
    }
    const thumb = Buffer.from(await (await api(acme, result.pages[2]!.thumbnailUrl)).arrayBuffer());
    expect(await sharp(thumb).metadata()).toMatchObject({ format: "webp", width: 200 });
    const preview = await api(acme, result.pages[0]!.previewUrl);
    expect(preview.headers.get("content-type")).toBe("image/png");
    const meta = await sharp(Buffer.from(await preview.arrayBuffer())).metadata();
    expect(meta.format).toBe("png");
    expect(meta.width).toBeGreaterThanOrEqual(1270);
    expect(meta.width).toBeLessThanOrEqual(1280);

    const source = await api(acme, `/v1/jobs/${job.id}/source`);
    expect(Buffer.from(await source.arrayBuffer()).equals(bytes)).toBe(true);

    // Live events: every page announced, then completion, revisions never going back.
    const mine = events.filter((e) => e.jobId === job.id);
    expect(
      mine
        .filter((e) => e.type === "page.ready")
        .map((e) => e.page)
        .sort((a, b) => a! - b!),
    ).toEqual(result.pages.map((p) => p.n));
    expect(mine.map((e) => e.type)).toContain("job.completed");
    expect(mine[0]?.type).toBe("job.queued");
    const completed = mine.find((e) => e.type === "job.completed")!;
    expect(mine.every((e) => e.revision <= completed.revision)).toBe(true);
  });

  it("converts a PPTX through LibreOffice and extracts every slide (multipart upload)", async () => {
    const form = new FormData();
    form.append("note", "ignored field");
    form.append("file", new Blob([await readFile(join(dir, "deck.pptx"))]), "deck.pptx");
    const res = await api(acme, "/v1/documents", { method: "POST", body: form });
    expect(res.status).toBe(202);
    const queued = (await res.json()) as Job;
    expect(queued).toMatchObject({ filename: "deck.pptx", contentType: "application/vnd.openxmlformats-officedocument.presentationml.presentation" });
    const job = await waitForEnd(acme, queued.id);
    expect(job.status).toBe("completed");
    expect(job.pageCount).toBe(3);
    const result = (await (await api(acme, `/v1/jobs/${job.id}/result`)).json()) as { pages: { text: string }[] };
    expect(result.pages.map((p) => norm(p.text))).toEqual([expect.stringContaining("Quarterly results alpha"), expect.stringContaining("Roadmap bravo"), expect.stringContaining("Questions charlie")]);
  });

  it("refuses bad uploads with problem+json and a stable code, before storing them", async () => {
    const problem = async (res: Response) => ({ status: res.status, type: res.headers.get("content-type"), body: (await res.json()) as { code: string; detail: string } });

    const empty = await problem(await api(acme, "/v1/documents?filename=x.pdf", { method: "POST", body: new Uint8Array(0) }));
    expect(empty).toMatchObject({ status: 400, body: { code: "empty_body" } });
    expect(empty.type).toMatch(/^application\/problem\+json/);

    const text = await problem(await api(acme, "/v1/documents?filename=notes.pdf", { method: "POST", body: "just some text, named like a PDF" }));
    expect(text).toMatchObject({ status: 415, body: { code: "unsupported_media_type" } });

    const big = Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(MAX_UPLOAD + 1)]);
    const declared = await problem(await api(acme, "/v1/documents?filename=big.pdf", { method: "POST", body: big }));
    expect(declared).toMatchObject({ status: 413, body: { code: "file_too_large" } });

    // Streamed without a Content-Length: cut off when the limit is crossed.
    const stream = new ReadableStream({
      start(controller) {
        for (let at = 0; at < big.length; at += 256 * 1024) controller.enqueue(big.subarray(at, at + 256 * 1024));
        controller.close();
      },
    });
    const streamed = await problem(await api(acme, "/v1/documents?filename=big.pdf", { method: "POST", body: stream, duplex: "half" } as RequestInit));
    expect(streamed).toMatchObject({ status: 413, body: { code: "file_too_large" } });

    const noFile = new FormData();
    noFile.append("other", "x");
    expect(await problem(await api(acme, "/v1/documents", { method: "POST", body: noFile }))).toMatchObject({ status: 400, body: { code: "missing_file" } });

    const anonymous = await fetch(`${stack.baseUrl}/v1/documents`, { method: "POST", body: "x" });
    expect(anonymous.status).toBe(401);

    // None of the refused uploads became a job.
    const list = (await (await api(acme, "/v1/jobs?limit=100")).json()) as { items: Job[] };
    expect(list.items.map((j) => j.filename)).not.toContain("big.pdf");
    expect(list.items.map((j) => j.filename)).not.toContain("notes.pdf");
  });

  it.each([
    ["truncated.pdf", "pdf_invalid"],
    ["encrypted.pdf", "pdf_encrypted"],
    ["fake.pdf", "pdf_invalid"],
  ])("ends %s as a failed job with code %s, without retry loops", async (name, code) => {
    const res = await upload(acme, join(dir, name), name);
    expect(res.status).toBe(202);
    const job = await waitForEnd(acme, ((await res.json()) as Job).id, 60_000);
    expect(job).toMatchObject({ status: "failed", error: { code } });
    expect(job.error?.message.length).toBeGreaterThan(10);
    expect(events.some((e) => e.jobId === job.id && e.type === "job.failed" && e.error?.code === code)).toBe(true);
  });

  it("scopes every read to the caller's tenant, and deletes a job with its objects", async () => {
    const res = await upload(acme, join(dir, "report.pdf"), "private.pdf");
    const job = (await res.json()) as Job;
    await waitForEnd(acme, job.id);
    for (const path of [`/v1/jobs/${job.id}`, `/v1/jobs/${job.id}/result`, `/v1/jobs/${job.id}/pages/1`, `/v1/jobs/${job.id}/pages/1/thumbnail`, `/v1/jobs/${job.id}/source`]) {
      const other = await api(globex, path);
      expect(other.status, path).toBe(404);
      expect(((await other.json()) as { code: string }).code).toBe("not_found");
    }
    expect((await api(globex, `/v1/jobs/${job.id}`, { method: "DELETE" })).status).toBe(404);
    const theirs = (await (await api(globex, "/v1/jobs")).json()) as { items: Job[] };
    expect(theirs.items).toEqual([]);

    const { s3 } = testServices();
    const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const prefix = `tenants/${acme}/jobs/${job.id}/`;
    const before = await client.send(new ListObjectsV2Command({ Bucket: stack.env.DOCFLOW_S3_BUCKET, Prefix: prefix }));
    expect(before.KeyCount).toBeGreaterThan(3);

    expect((await api(acme, `/v1/jobs/${job.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(acme, `/v1/jobs/${job.id}`)).status).toBe(404);
    const after = await client.send(new ListObjectsV2Command({ Bucket: stack.env.DOCFLOW_S3_BUCKET, Prefix: prefix }));
    expect(after.KeyCount ?? 0).toBe(0);
  });

  it("lists the caller's jobs newest first and serves its OpenAPI document and probes", async () => {
    const list = (await (await api(acme, "/v1/jobs?limit=3")).json()) as { items: Job[]; nextCursor: string | null };
    expect(list.items).toHaveLength(3);
    const created = list.items.map((j) => j.createdAt);
    expect([...created].sort().reverse()).toEqual(created);
    expect(list.nextCursor).toBe(list.items[2]!.id);
    const next = (await (await api(acme, `/v1/jobs?limit=3&cursor=${list.nextCursor}`)).json()) as { items: Job[] };
    expect(next.items[0]!.createdAt <= created[2]!).toBe(true);

    const openapi = (await (await fetch(`${stack.baseUrl}/v1/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(openapi.openapi).toMatch(/^3\./);
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/v1/documents", "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/result"]));
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${stack.baseUrl}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/nodejs_eventloop_lag_p99_seconds/);
    expect(metrics).toMatch(/http_server_request_duration_seconds_bucket\{.*http_route="\/v1\/documents"/);
  });
});
