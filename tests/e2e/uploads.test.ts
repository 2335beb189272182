import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { PDFDocument } from "pdf-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { testServices } from "../support/env.ts";
import { startStack, type Stack } from "../support/stack.ts";
import { TusClient, launchGateway, type Gateway } from "../support/tus.ts";
import { jobsClient } from "../support/jobs-api.ts";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
/** Random bytes that start like a PDF, so the gateway stores them. */
const pdfLike = (size: number) => Buffer.concat([Buffer.from("%PDF-1.7\n"), randomBytes(size - 9)]);

describe("resumable uploads (tus) across gateway replicas", () => {
  let stack: Stack;
  let b: Gateway;
  let tus: TusClient;
  let tenant: string;
  const extra: Gateway[] = [];

  const client = () => jobsClient(stack.baseUrl, tus.token, { context: () => stack.logs().slice(-4000) });
  const api = (path: string, init: RequestInit = {}) => client().call(path, init);
  const s3 = () => {
    const { s3: c } = testServices();
    return new S3Client({ endpoint: c.endpoint, region: c.region, forcePathStyle: true, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } });
  };
  const waitForEnd = (id: string): Promise<Job> => client().waitForEnd(id);

  beforeAll(async () => {
    stack = await startStack({ env: { DOCFLOW_UPLOAD_LOCK_TTL_MS: "2000" } });
    tenant = Object.keys(stack.tokens)[0]!;
    tus = new TusClient(stack.tokens[tenant]!);
    b = await launchGateway(stack);
    extra.push(b);
  });
  afterAll(async () => {
    await Promise.all(extra.map((g) => g.stop("SIGKILL")));
    await stack?.stop();
  });

  it("advertises a chunk size that the slowest supported client sends well inside the edge timeout", async () => {
    const config = (await (await fetch(`${stack.baseUrl}/v1/config`)).json()) as { uploadTransport: string; uploadEndpoint: string; tusChunkBytes: number };
    expect(config).toMatchObject({ uploadTransport: "tus", uploadEndpoint: "/v1/uploads" });
    // Defaults: 1 Mbit/s and a 55 s request timeout -> at most 44 s per chunk, leaving the final
    // chunk time to complete the upload; and at least S3's 5 MiB part, so chunks stream as parts.
    expect(config.tusChunkBytes / 125_000).toBeLessThanOrEqual(44);
    expect(config.tusChunkBytes).toBeGreaterThanOrEqual(5 * 1024 * 1024);
  });

  it("continues one upload on either replica, chunk by chunk, and answers the final chunk with the job", async () => {
    const dir = await mkdtemp(join(tmpdir(), "docflow-tus-"));
    await makeTextPdf(join(dir, "doc.pdf"), defaultPages(9));
    const file = Buffer.concat([await readFile(join(dir, "doc.pdf"))]);
    const { res, location } = await tus.create(stack.baseUrl, file.length, { filename: "alternating.pdf", filetype: "application/pdf" });
    expect(res.status).toBe(201);
    expect(location).toMatch(/^\/v1\/uploads\/[A-Za-z0-9_-]+$/);
    const chunk = Math.ceil(file.length / 6);
    let last: Response | undefined;
    for (let offset = 0, i = 0; offset < file.length; offset += chunk, i++) {
      const replica = i % 2 === 0 ? stack.baseUrl : b.url;
      last = await tus.patch(replica, location, offset, file.subarray(offset, offset + chunk));
      expect(last.status, await last.clone().text()).toBeLessThan(300);
      expect(Number(last.headers.get("upload-offset"))).toBe(Math.min(file.length, offset + chunk));
    }
    expect(last!.status).toBe(200);
    const job = (await last!.json()) as Job;
    expect(last!.headers.get("docflow-job-id")).toBe(job.id);
    // The final answer comes without reading the whole file back: the hash follows with processing.
    expect(job).toMatchObject({ status: "queued", filename: "alternating.pdf", size: file.length, sha256: null });
    const done = await waitForEnd(job.id);
    expect(done).toMatchObject({ status: "completed", pageCount: 9, sha256: sha256(file) });
    // A retried final chunk gets the same job back, and no second one is created.
    const again = await tus.patch(b.url, location, file.length, Buffer.alloc(0));
    expect(again.status).toBe(200);
    expect(again.headers.get("content-type")).toBe("application/json");
    expect(((await again.json()) as Job).id).toBe(job.id);
    // A client that lost the answer also finds the job id in the upload's metadata.
    const head = await fetch(`${stack.baseUrl}${location}`, { method: "HEAD", headers: tus.headers() });
    const metadata = Object.fromEntries(
      (head.headers.get("upload-metadata") ?? "")
        .split(",")
        .map((p) => p.split(" "))
        .map(([k, v]) => [k, Buffer.from(v ?? "", "base64").toString()]),
    );
    expect(metadata.jobId).toBe(job.id);
    expect(head.headers.get("upload-offset")).toBe(String(file.length));
  });

  it("resumes on the other replica after a gateway is killed mid-chunk, and stores the exact bytes", async () => {
    const victim = await launchGateway(stack);
    extra.push(victim);
    const file = pdfLike(24 * 1024 * 1024 + 123);
    const { location } = await tus.create(victim.url, file.length, { filename: "killed.pdf" });
    // First chunk completes on the victim; the second is cut by kill -9 halfway.
    const first = 10 * 1024 * 1024;
    expect((await tus.patch(victim.url, location, 0, file.subarray(0, first))).status).toBe(204);
    let sent = first;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= first + 6 * 1024 * 1024) {
          await victim.stop("SIGKILL");
          controller.error(new Error("gateway killed"));
          return;
        }
        controller.enqueue(file.subarray(sent, sent + 256 * 1024));
        sent += 256 * 1024;
      },
    });
    await tus.patch(victim.url, location, first, body).catch(() => undefined);

    // The other replica knows the offset (once the dead replica's lock expires) ...
    let state = await tus.offset(b.url, location);
    for (let i = 0; state.status !== 200 && i < 20; i++) state = await tus.offset(b.url, location);
    expect(state.status).toBe(200);
    // S3 keeps whole parts: bytes of the part being written when the replica died are gone.
    expect(state.offset).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(state.offset).toBeLessThanOrEqual(sent);
    // ... and the client continues from it.
    const rest = await tus.patch(b.url, location, state.offset, file.subarray(state.offset));
    expect(rest.status).toBe(200);
    const job = (await rest.json()) as Job;
    // Random bytes behind a PDF header: processing fails, but only after hashing the source.
    expect(await waitForEnd(job.id)).toMatchObject({ status: "failed", sha256: sha256(file) });
    const source = Buffer.from(await (await api(`/v1/jobs/${job.id}/source`)).arrayBuffer());
    expect(sha256(source)).toBe(sha256(file));
  });

  it("streams whole-part chunks straight into S3: a chunk cut short stores nothing, and the upload resumes from the unchanged offset", async () => {
    const part = 5 * 1024 * 1024;
    const file = pdfLike(2 * part + 777);
    const { location } = await tus.create(stack.baseUrl, file.length, { filename: "parts.pdf" });
    const key = Buffer.from(location.split("/").pop()!, "base64url").toString();
    const first = await tus.patch(stack.baseUrl, location, 0, file.subarray(0, part));
    expect(first.status, await first.text()).toBe(204);

    // The second chunk declares 5 MiB on replica b, sends 3 MiB and the client goes away.
    const url = new URL(`${b.url}${location}`);
    await new Promise<void>((resolve) => {
      const req = httpRequest(url, { method: "PATCH", headers: tus.headers({ "upload-offset": String(part), "content-type": "application/offset+octet-stream", "content-length": String(part) }) });
      req.on("error", () => resolve());
      req.write(file.subarray(part, part + 3 * 1024 * 1024), () => setTimeout(() => req.destroy(), 300));
    });
    // The lock is released once the replica has seen the abort.
    let state = await tus.offset(stack.baseUrl, location);
    for (let i = 0; state.status !== 200 && i < 20; i++) state = await tus.offset(stack.baseUrl, location);
    // Whole parts only: no 3 MiB "incomplete part" was staged, the offset did not move.
    expect(state).toEqual({ status: 200, offset: part });
    const bucket = stack.env.DOCFLOW_S3_BUCKET!;
    const listed = await s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key }));
    expect((listed.Contents ?? []).map((o) => o.Key!.slice(key.length))).toEqual([".info"]);

    expect((await tus.patch(b.url, location, part, file.subarray(part, 2 * part))).status).toBe(204);
    const last = await tus.patch(stack.baseUrl, location, 2 * part, file.subarray(2 * part));
    expect(last.status).toBe(200);
    const job = (await last.json()) as Job;
    const stored = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(sha256(Buffer.from(await stored.Body!.transformToByteArray()))).toBe(sha256(file));
    expect(await waitForEnd(job.id)).toMatchObject({ sha256: sha256(file), size: file.length });
  });

  it("continues an upload an earlier version created (a multipart upload without checksums), its parts unchecksummed too", async () => {
    // What the stock tus S3 store of the previous release left in S3: the multipart upload and its `.info`.
    const part = 5 * 1024 * 1024;
    const file = pdfLike(part + 4321);
    const client = s3();
    const bucket = stack.env.DOCFLOW_S3_BUCKET!;
    const key = `tenants/${tenant}/jobs/019ad000-0000-7000-8000-${randomBytes(6).toString("hex")}/source`;
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { "tus-version": "1.0.0" } }));
    const upload = {
      id: key,
      size: file.length,
      offset: 0,
      metadata: { filename: "legacy.pdf", jobId: key.split("/")[3] },
      creation_date: new Date().toISOString(),
      storage: { type: "s3", path: key, bucket },
    };
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${key}.info`, Body: JSON.stringify(upload), Metadata: { "upload-id": UploadId!, "tus-version": "1.0.0" }, Tagging: "Tus-Completed=false" }),
    );
    const location = `/v1/uploads/${Buffer.from(key).toString("base64url")}`;

    expect((await tus.patch(stack.baseUrl, location, 0, file.subarray(0, part))).status).toBe(204);
    const listed = await client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size, p.ChecksumCRC32 ?? null])).toEqual([[1, part, null]]);
    const last = await tus.patch(b.url, location, part, file.subarray(part));
    expect(last.status, await last.clone().text()).toBe(200);
    const stored = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(sha256(Buffer.from(await stored.Body!.transformToByteArray()))).toBe(sha256(file));
  });

  it("makes the job of an upload whose last bytes were stored but whose final PATCH failed, at the client's next HEAD", async () => {
    // The final PATCH's part and the multipart completion reached S3, then the job was never made
    // (the job store or storage failed, or the gateway died): the state is rebuilt in S3 directly.
    const part = 5 * 1024 * 1024;
    // A real 2-page PDF, a little over one part long (an unreferenced stream of random bytes).
    const dir = await mkdtemp(join(tmpdir(), "docflow-tus-"));
    await makeTextPdf(join(dir, "lost.pdf"), defaultPages(2));
    const doc = await PDFDocument.load(await readFile(join(dir, "lost.pdf")));
    doc.context.register(doc.context.stream(randomBytes(part + 777)));
    const file = Buffer.from(await doc.save({ useObjectStreams: false }));
    const { location } = await tus.create(stack.baseUrl, file.length, { filename: "lost-finish.pdf", filetype: "application/pdf" });
    expect((await tus.patch(stack.baseUrl, location, 0, file.subarray(0, part))).status).toBe(204);
    const key = Buffer.from(location.split("/").pop()!, "base64url").toString("utf8");
    const jobId = key.split("/")[3]!;
    const client = s3();
    const bucket = stack.env.DOCFLOW_S3_BUCKET!;
    const UploadId = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${key}.info` }))).Metadata?.["upload-id"];
    const last = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: file.subarray(part), ChecksumAlgorithm: "CRC32" }));
    const first = (await client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }))).Parts!.find((p) => p.PartNumber === 1)!;
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: first.ETag, ChecksumCRC32: first.ChecksumCRC32 },
            { PartNumber: 2, ETag: last.ETag, ChecksumCRC32: last.ChecksumCRC32 },
          ],
        },
      }),
    );
    expect((await api(`/v1/jobs/${jobId}`)).status).toBe(404);

    // The client resumes: HEAD says every byte is there, and the job now exists, once.
    expect(await tus.offset(b.url, location)).toEqual({ status: 200, offset: file.length });
    expect(await tus.offset(stack.baseUrl, location)).toEqual({ status: 200, offset: file.length });
    expect(await waitForEnd(jobId)).toMatchObject({ id: jobId, status: "completed", filename: "lost-finish.pdf", size: file.length, sha256: sha256(file) });
    const listed = (await (await api("/v1/jobs?limit=100")).json()) as { items: Job[] };
    expect(listed.items.filter((j) => j.id === jobId)).toHaveLength(1);
  });

  it("accepts creation-with-upload for a small file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "docflow-tus-"));
    await makeTextPdf(join(dir, "one.pdf"), defaultPages(1));
    const file = await readFile(join(dir, "one.pdf"));
    const { res } = await tus.create(stack.baseUrl, file.length, { filename: "one.pdf" }, file);
    expect(res.status).toBe(201);
    expect(res.headers.get("upload-offset")).toBe(String(file.length));
  });

  it("answers tus's own protocol errors as problem documents too", async () => {
    const asProblem = async (res: Response) => ({ status: res.status, type: res.headers.get("content-type"), body: JSON.parse(await res.text()) as { code: string; detail: string; status: number } });
    const noVersion = await fetch(`${stack.baseUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${tus.token}`, "upload-length": "100" } });
    expect(noVersion.headers.get("tus-resumable")).toBe("1.0.0");
    expect(await asProblem(noVersion)).toMatchObject({ status: 412, type: "application/problem+json", body: { status: 412, code: "tus_version_required", detail: "Tus-Resumable Required" } });
    const badLength = await fetch(`${stack.baseUrl}/v1/uploads`, { method: "POST", headers: tus.headers({ "upload-length": "a lot" }) });
    expect(await asProblem(badLength)).toMatchObject({
      status: 400,
      type: "application/problem+json",
      body: { status: 400, code: "validation_failed", detail: expect.stringMatching(/upload-length/i) },
    });
  });

  it("refuses wrong types, oversize and empty uploads, and other tenants' uploads", async () => {
    const asProblem = async (res: Response) => ({ status: res.status, type: res.headers.get("content-type"), body: JSON.parse(await res.text()) as { code: string } });
    expect(await asProblem((await tus.create(stack.baseUrl, 100, { filename: "x.png", filetype: "image/png" })).res)).toMatchObject({
      status: 415,
      type: "application/problem+json",
      body: { code: "unsupported_media_type" },
    });
    expect(await asProblem((await tus.create(stack.baseUrl, 1024 ** 4)).res)).toMatchObject({ status: 413, body: { code: "file_too_large" } });
    expect(await asProblem((await tus.create(stack.baseUrl, 0)).res)).toMatchObject({ status: 400, body: { code: "empty_body" } });

    const text = Buffer.from("plain text, definitely not a PDF or a presentation\n".repeat(50));
    const { location } = await tus.create(stack.baseUrl, text.length, { filename: "sneaky.pdf", filetype: "application/pdf" });
    expect(await asProblem(await tus.patch(stack.baseUrl, location, 0, text))).toMatchObject({ status: 415, type: "application/problem+json", body: { code: "unsupported_media_type" } });
    // Refusing a body while its part upload waits for S3 must not take the gateway down.
    expect((await fetch(`${stack.baseUrl}/healthz`, { headers: { connection: "close" } })).status).toBe(200);

    const mine = await tus.create(stack.baseUrl, 1000, { filename: "mine.pdf" });
    const other = new TusClient(stack.tokens[Object.keys(stack.tokens)[1]!]!);
    expect((await other.offset(stack.baseUrl, mine.location)).status).toBe(404);
    expect((await other.patch(stack.baseUrl, mine.location, 0, pdfLike(1000))).status).toBe(404);
    expect((await fetch(`${stack.baseUrl}${mine.location}`, { method: "HEAD" })).status).toBe(401);

    // Termination: the owner may cancel an unfinished upload.
    const del = await fetch(`${stack.baseUrl}${mine.location}`, { method: "DELETE", headers: tus.headers() });
    expect(del.status).toBe(204);
    expect((await tus.offset(stack.baseUrl, mine.location)).status).toBe(404);
  });

  it("expires abandoned uploads: aborts the S3 multipart upload and removes temporary objects", async () => {
    const short = await launchGateway(stack, { DOCFLOW_UPLOAD_EXPIRATION_MS: "1500", DOCFLOW_UPLOAD_CLEANUP_INTERVAL_MS: "500" });
    extra.push(short);
    const { location } = await tus.create(short.url, 20 * 1024 * 1024, { filename: "abandoned.pdf" });
    expect((await tus.patch(short.url, location, 0, pdfLike(1024 * 1024))).status).toBe(204);
    const key = Buffer.from(location.split("/").pop()!, "base64url").toString();
    const client = s3();
    const bucket = stack.env.DOCFLOW_S3_BUCKET!;
    const pending = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    expect(pending.Uploads?.length).toBe(1);
    expect((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key }))).KeyCount).toBeGreaterThan(0);

    let left = { uploads: 1, objects: 1 };
    for (let i = 0; i < 40 && (left.uploads > 0 || left.objects > 0); i++) {
      await new Promise((r) => setTimeout(r, 250));
      left = {
        uploads: (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))).Uploads?.length ?? 0,
        objects: (await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key }))).KeyCount ?? 0,
      };
    }
    expect(left).toEqual({ uploads: 0, objects: 0 });
    expect([404, 410]).toContain((await tus.offset(short.url, location)).status);
  });

  it("answers 429 with Retry-After past the per-tenant limit, without slowing other tenants", async () => {
    const tight = await launchGateway(stack, { DOCFLOW_MAX_UPLOADS_PER_TENANT: "1" });
    extra.push(tight);
    const { location } = await tus.create(tight.url, 8 * 1024 * 1024, { filename: "slow.pdf" });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const slow = tus.patch(
      tight.url,
      location,
      0,
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(pdfLike(64 * 1024));
          await held;
          controller.close();
        },
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const refused = await fetch(`${tight.url}/v1/documents?filename=x.pdf`, { method: "POST", headers: { authorization: `Bearer ${tus.token}` }, body: pdfLike(1000) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { code: string }).code).toBe("too_many_uploads");
    const otherTenant = stack.tokens[Object.keys(stack.tokens)[1]!]!;
    const accepted = await fetch(`${tight.url}/v1/documents?filename=x.pdf`, { method: "POST", headers: { authorization: `Bearer ${otherTenant}` }, body: pdfLike(1000) });
    expect(accepted.status).toBe(202);
    release();
    await slow;
  });

  it("cuts off slow and stalled clients by their timeouts while others are served", async () => {
    const strict = await launchGateway(stack, {
      DOCFLOW_EDGE_TIMEOUT_MS: "4000",
      DOCFLOW_REQUEST_TIMEOUT_MS: "2000",
      DOCFLOW_KEEP_ALIVE_TIMEOUT_MS: "1000",
      DOCFLOW_HEADERS_TIMEOUT_MS: "1500",
      DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS: "20000000",
    });
    extra.push(strict);
    const port = Number(new URL(strict.url).port);

    // Slowloris: headers trickle in and never end.
    const started = Date.now();
    const slowloris = new Promise<number>((resolve) => {
      const socket = tcpConnect(port, "127.0.0.1", () => socket.write("POST /v1/documents HTTP/1.1\r\nHost: x\r\n"));
      const drip = setInterval(() => socket.write("X-Drip: 1\r\n"), 200);
      socket.on("error", () => {});
      socket.on("close", () => {
        clearInterval(drip);
        resolve(Date.now() - started);
      });
    });

    // A chunk that stalls halfway.
    const { location } = await tus.create(strict.url, 4 * 1024 * 1024, { filename: "stalled.pdf" });
    const stalledAt = Date.now();
    const stalled = await tus
      .patch(
        strict.url,
        location,
        0,
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(pdfLike(128 * 1024));
          },
        }),
      )
      .then(
        (r) => r.status,
        () => "cut",
      );
    const stalledFor = Date.now() - stalledAt;

    // Meanwhile everyone else is served at once.
    const t0 = Date.now();
    expect((await fetch(`${strict.url}/healthz`)).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(200);

    expect([408, "cut"]).toContain(stalled);
    expect(stalledFor).toBeLessThan(4000);
    expect(await slowloris).toBeLessThan(4000);
  });
});
