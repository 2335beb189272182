import { createHash } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { connect, type ChannelModel } from "amqplib";
import type { NatsConnection } from "@nats-io/transport-node";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKeys, type Job, type JobEvent, type JobRecord } from "@docflow/contracts";
import { JobStore } from "@docflow/infra";
import {
  defaultPages,
  makeEncryptedPdf,
  makeHugePagePdf,
  makeJavaScriptPdf,
  makePptx,
  makePptxDeck,
  makePptxWithExternalImage,
  makeTextPdf,
  makeTruncatedPdf,
  makeZipBombPptx,
  pageWords,
} from "../fixtures/generate.ts";
import { connectTestNats, testServices } from "../support/env.ts";
import { jobsApi } from "../support/jobs-api.ts";
import { startStack, type Stack } from "../support/stack.ts";

const WINDOW = 4;
const MAX_PAGES = 150;

/**
 * The processing pipeline on the real stack (gateway + two processors on
 * RabbitMQ, NATS, S3): windowed fan-out, stages as queues, retries, the DLQ,
 * cancellation, PPTX inspection and conversion, hostile inputs, and a
 * processor killed with SIGKILL mid-range (last: it leaves one processor).
 */
describe("processing pipeline", () => {
  let stack: Stack;
  let dir: string;
  let nats: NatsConnection;
  let jobs: JobStore;
  let amqp: ChannelModel;
  let s3: S3Client;
  let acme: string;
  let globex: string;
  const events: JobEvent[] = [];

  const { api, upload, getJob, waitFor, waitForEnd } = jobsApi(() => stack);
  /** The job once inspect has also recorded its font and image counts (they come after the ranges are out). */
  async function withCounts(tenant: string, id: string): Promise<Job> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const job = await getJob(tenant, id);
      if (job.document?.fontCount !== undefined || Date.now() > deadline) return job;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const of = (id: string, type?: string) => events.filter((e) => e.jobId === id && (type === undefined || e.type === type));
  /** page -> how many page.ready events announced it. */
  const pageReadyCounts = (id: string) => {
    const counts = new Map<number, number>();
    for (const e of of(id, "page.ready")) counts.set(e.page!, (counts.get(e.page!) ?? 0) + 1);
    return counts;
  };
  const objectKeysOf = async (tenant: string, id: string): Promise<string[]> => {
    const prefix = objectKeys.jobPrefix(tenant, id);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: stack.env.DOCFLOW_S3_BUCKET, Prefix: prefix }));
    return (listed.Contents ?? []).map((o) => o.Key!.slice(prefix.length)).sort();
  };
  const expectEveryPageOnce = async (tenant: string, job: Job) => {
    const n = job.pageCount!;
    // The status can be read over HTTP a moment before the last events arrive over NATS: the
    // completion event is published last, so once it is here every page.ready is too.
    await waitFor("the job.completed event", () => (of(job.id, "job.completed").length > 0 ? true : undefined), 10_000);
    const counts = pageReadyCounts(job.id);
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect([...counts.values()].every((c) => c === 1)).toBe(true);
    expect(of(job.id, "job.completed")).toHaveLength(1);
    const keys = await objectKeysOf(tenant, job.id);
    expect(keys.filter((k) => k.startsWith("pages/"))).toHaveLength(3 * n);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-processing-"));
    stack = await startStack({
      processors: 2,
      env: {
        DOCFLOW_PROCESSOR_CONCURRENCY: "2",
        DOCFLOW_RANGE_SIZE: "2",
        DOCFLOW_RANGE_WINDOW: String(WINDOW),
        DOCFLOW_RETRY_BASE_MS: "300",
        // Shorter than a 2-page range takes to render (~150 ms), so a task in flight when its job is deleted is checked before it ends.
        DOCFLOW_CANCEL_CHECK_MS: "50",
        DOCFLOW_MAX_PAGES: String(MAX_PAGES),
        DOCFLOW_PPTX_MAX_UNCOMPRESSED_BYTES: String(32 * 1024 * 1024),
        DOCFLOW_TASK_TIMEOUT_MS: "60000",
      },
    });
    [acme, globex] = Object.keys(stack.tokens) as [string, string];
    nats = await connectTestNats();
    jobs = await JobStore.open(nats, stack.env.DOCFLOW_JOBS_BUCKET!);
    for (const tenant of [acme, globex]) {
      const sub = nats.subscribe(`docflow.events.${tenant}.>`);
      void (async () => {
        for await (const m of sub) events.push(m.json<JobEvent>());
      })();
    }
    const services = testServices();
    amqp = await connect(services.amqpUrl);
    s3 = new S3Client({
      endpoint: services.s3.endpoint,
      region: services.s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: services.s3.accessKeyId, secretAccessKey: services.s3.secretAccessKey },
    });
  });

  afterAll(async () => {
    await amqp?.close().catch(() => {});
    await nats?.drain();
    await stack?.stop();
  });

  it("keeps at most the window of one job's ranges in flight, and a 1-page upload of another tenant finishes while a long document is processing", async () => {
    const long = join(dir, "long.pdf");
    await makeTextPdf(long, defaultPages(120));
    const small = join(dir, "small.pdf");
    await makeTextPdf(small, defaultPages(1));
    const big = await upload(acme, long, "long.pdf");
    // Watch the record while it works: dispatched-but-not-done ranges never exceed the window.
    let maxInFlight = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r = (await jobs.get(acme, big.id))?.record;
        if (r && r.ranges.length > 0) {
          const done = new Set(r.rangesDone);
          const inFlight = r.ranges.slice(0, r.rangesDispatched ?? r.ranges.length).filter((x) => !done.has(x.first)).length;
          maxInFlight = Math.max(maxInFlight, inFlight);
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    await waitFor("the long document's first page", () => of(big.id, "page.ready")[0]);
    const tiny = await upload(globex, small, "small.pdf");
    const tinyJob = await waitForEnd(globex, tiny.id, 60_000);
    expect(tinyJob.status).toBe("completed");
    expect((await getJob(acme, big.id)).status).toBe("processing"); // the small one did not wait for it
    const bigJob = await waitForEnd(acme, big.id, 180_000);
    watching = false;
    await watcher;
    expect(bigJob).toMatchObject({ status: "completed", pageCount: 120, pagesDone: 120 });
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxInFlight).toBeLessThanOrEqual(WINDOW);
    await expectEveryPageOnce(acme, bigJob);
    expect((await withCounts(acme, big.id)).document).toMatchObject({ title: "docflow fixture", encrypted: false, javascript: false, fontCount: 1, imageCount: 0 });
  });

  it("renders every page exactly once when every range message is delivered twice", async () => {
    const file = join(dir, "dup.pdf");
    await makeTextPdf(file, defaultPages(15));
    const queued = await upload(acme, file, "dup.pdf");
    const started = await waitFor("job.started", () => of(queued.id, "job.started")[0]);
    expect(started.pageCount).toBe(15);
    const record = (await jobs.get(acme, queued.id))!.record;
    // A copy of every range (also of ranges the window has not released yet) and of `finish`, straight onto the queues.
    const ch = await amqp.createChannel();
    const ns = stack.env.DOCFLOW_AMQP_NAMESPACE!;
    for (const range of record.ranges) {
      ch.sendToQueue(`${ns}.render`, Buffer.from(JSON.stringify({ v: 1, stage: "render", tenant: acme, jobId: queued.id, range })), { persistent: true });
    }
    ch.sendToQueue(`${ns}.finish`, Buffer.from(JSON.stringify({ v: 1, stage: "finish", tenant: acme, jobId: queued.id })), { persistent: true });
    await ch.close();
    const job = await waitForEnd(acme, queued.id);
    expect(job).toMatchObject({ status: "completed", pageCount: 15, pagesDone: 15 });
    // Late copies (and a second finish) change nothing.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await getJob(acme, queued.id)).toMatchObject({ status: "completed", pagesDone: 15 });
    await expectEveryPageOnce(acme, job);
    const result = (await (await api(acme, `/v1/jobs/${job.id}/result`)).json()) as { pages: { n: number; text: string }[] };
    for (const page of result.pages) expect(page.text).toContain(pageWords(page.n));
  });

  it("retries a transient failure with back-off, then fails the job with its reason and sets the message aside in the DLQ", async () => {
    const ns = stack.env.DOCFLOW_AMQP_NAMESPACE!;
    // See what reaches the dead-letter exchange: a queue of ours bound beside the DLQ.
    const ch = await amqp.createChannel();
    const tap = (await ch.assertQueue("", { exclusive: true })).queue;
    await ch.bindQueue(tap, `${ns}.dlx`, `${ns}.inspect.dlq`);
    // A job whose source object is missing: every attempt fails the same transient way.
    const id = uuidv7();
    const now = new Date().toISOString();
    await jobs.create({
      id,
      tenant: acme,
      status: "queued",
      filename: "gone.pdf",
      contentType: "application/pdf",
      size: 10,
      sha256: createHash("sha256").update("x").digest("hex"),
      pageCount: null,
      pagesDone: 0,
      createdAt: now,
      updatedAt: now,
      sourceKey: objectKeys.source(acme, id),
      ranges: [],
      rangesDone: [],
    } satisfies JobRecord);
    const sentAt = Date.now();
    ch.sendToQueue(`${ns}.inspect`, Buffer.from(JSON.stringify({ v: 1, stage: "inspect", tenant: acme, jobId: id })), { persistent: true });
    const job = await waitForEnd(acme, id, 60_000);
    expect(job.status).toBe("failed");
    // The second attempt waited for the back-off (300 ms here) instead of spinning.
    expect(Date.parse(job.completedAt!) - sentAt).toBeGreaterThanOrEqual(300);
    expect(job.error?.code).toBe("processing_failed");
    expect(job.error?.message).toMatch(/inspect stage.*2 times/);
    const dead = await waitFor("the dead letter", async () => (await ch.get(tap, { noAck: true })) || undefined, 10_000);
    expect(JSON.parse(dead.content.toString())).toMatchObject({ stage: "inspect", jobId: id });
    expect(dead.properties.headers).toMatchObject({ "x-docflow-attempts": "2", "x-docflow-error-code": "processing_failed" });
    expect(String(dead.properties.headers?.["x-docflow-error"])).toMatch(/missing/);
    expect(stack.logs()).toMatch(new RegExp(`"jobId":"${id}".*task failed; retrying in 300 ms`));
    await ch.close();
  });

  it("stops a job's work within about a second when it is deleted, and removes its objects", async () => {
    const file = join(dir, "cancel.pdf");
    await makeTextPdf(file, defaultPages(100));
    const queued = await upload(acme, file, "cancel.pdf");
    await waitFor("a few pages", () => (of(queued.id, "page.ready").length >= 3 ? true : undefined));
    const res = await api(acme, `/v1/jobs/${queued.id}`, { method: "DELETE" });
    expect(res.status).toBe(204);
    const deletedAt = Date.now();
    expect((await api(acme, `/v1/jobs/${queued.id}`)).status).toBe(404);
    // In-flight tasks notice within ~1 s (they poll every 50 ms here) and stop.
    await waitFor("the tasks to stop", () => (new RegExp(`"jobId":"${queued.id}".*task stopped: its job ended`).test(stack.logs()) ? true : undefined), 5_000);
    await new Promise((r) => setTimeout(r, 1500));
    const late = of(queued.id, "page.ready").filter((e) => Date.parse(e.at) > deletedAt + 1000);
    expect(late).toEqual([]);
    expect(of(queued.id, "page.ready").length).toBeLessThan(100);
    expect(await objectKeysOf(acme, queued.id)).toEqual([]);
  });

  it("inspects a presentation straight from its OOXML (titles, notes, hidden slides) and converts it on the convert queue", async () => {
    const file = join(dir, "deck.pptx");
    await makePptxDeck(file, [
      { title: "Quarterly results", body: "Revenue alpha", notes: "Mention the new customers" },
      { title: "Appendix", body: "hidden bravo", notes: "not shown", hidden: true },
      { title: "Roadmap", body: "Launch charlie" },
    ]);
    const queued = await upload(acme, file, "deck.pptx");
    await waitForEnd(acme, queued.id);
    const job = await withCounts(acme, queued.id);
    expect(job).toMatchObject({ status: "completed", pageCount: 2, pagesDone: 2 });
    expect(job.document).toMatchObject({ title: "Deck fixture", author: "Deck Author", slideCount: 2, encrypted: false, javascript: false });
    const result = (await (await api(acme, `/v1/jobs/${job.id}/result`)).json()) as { pages: { text: string }[]; document: { slides: unknown[] } };
    expect(result.document).toMatchObject({ ...job.document, slideCount: 2 });
    expect(job.document?.fontCount).toBeGreaterThan(0);
    expect(result.document.slides).toEqual([
      { n: 1, title: "Quarterly results", notes: "Mention the new customers" },
      { n: 2, title: "Roadmap", notes: "" },
    ]);
    expect(result.pages[0]!.text).toContain("Revenue alpha");
    expect(result.pages[1]!.text).toContain("Launch charlie");
    expect(stack.logs()).toMatch(new RegExp(`"jobId":"${job.id}".*presentation converted to PDF`));
    expect(await objectKeysOf(acme, job.id)).toContain("source.pdf");
  });

  it("ends hostile documents as failed jobs with clear codes, runs none of their JavaScript, and keeps its workers free", async () => {
    const report = join(dir, "report.pdf");
    await makeTextPdf(report, defaultPages(4));
    const deck = join(dir, "plain.pptx");
    await makePptx(deck, ["one", "two"]);
    await makeTruncatedPdf(report, join(dir, "truncated.pdf"));
    await makeEncryptedPdf(report, join(dir, "encrypted.pdf"));
    await makeZipBombPptx(deck, join(dir, "bomb.pptx"), { inflatedBytes: 48 * 1024 * 1024 });
    await makeZipBombPptx(deck, join(dir, "liar.pptx"), { inflatedBytes: 48 * 1024 * 1024, declaredBytes: 4096 });
    const deckBytes = await readFile(deck);
    await writeFile(join(dir, "truncated.pptx"), deckBytes.subarray(0, Math.floor(deckBytes.length * 0.7)));
    await makeHugePagePdf(join(dir, "huge.pdf"), { pages: 3, hugePage: 2, size: 14400 });
    await makeTextPdf(join(dir, "long.pdf"), defaultPages(MAX_PAGES + 1));
    await makeJavaScriptPdf(join(dir, "script.pdf"));
    // A picture linked by URL: LibreOffice would fetch it. Nothing may ever ask this server.
    const fetched: string[] = [];
    const bait = createServer((req, res) => {
      fetched.push(`${req.method} ${req.url}`);
      res.writeHead(404).end();
    });
    bait.listen(0, "127.0.0.1");
    await once(bait, "listening");
    await makePptxWithExternalImage(deck, join(dir, "linked.pptx"), `http://127.0.0.1:${(bait.address() as { port: number }).port}/secret.png`);

    const cases: [string, string][] = [
      ["truncated.pdf", "pdf_invalid"],
      ["encrypted.pdf", "pdf_encrypted"],
      ["bomb.pptx", "pptx_too_large"],
      ["liar.pptx", "pptx_too_large"],
      ["truncated.pptx", "pptx_invalid"],
      ["huge.pdf", "page_too_large"],
      ["long.pdf", "document_too_many_pages"],
      ["linked.pptx", "pptx_external_content"],
    ];
    const started = Date.now();
    const uploaded = await Promise.all(cases.map(async ([name]) => upload(acme, join(dir, name), name)));
    for (const [i, [name, code]] of cases.entries()) {
      const job = await waitForEnd(acme, uploaded[i]!.id, 60_000);
      expect({ name, status: job.status, code: job.error?.code }).toEqual({ name, status: "failed", code });
      expect(job.error!.message.length).toBeGreaterThan(15);
      const failed = await waitFor(`job.failed of ${name}`, () => of(job.id, "job.failed")[0], 5_000);
      expect(failed.error?.code).toBe(code);
    }
    // Each failed once: no retry loop announced it again.
    for (const job of uploaded) expect(of(job.id, "job.failed")).toHaveLength(1);
    const huge = await getJob(acme, uploaded[5]!.id);
    expect(huge.error!.message).toMatch(/Page 2 measures 200 x 200 inches/);
    expect(fetched).toEqual([]);
    bait.close();
    // Failing fast: none of them waited for a timeout or a retry.
    expect(Date.now() - started).toBeLessThan(45_000);

    // JavaScript is reported, never run: the document processes normally.
    const script = await waitForEnd(acme, (await upload(acme, join(dir, "script.pdf"), "script.pdf")).id);
    expect(script).toMatchObject({ status: "completed", pageCount: 1, document: { javascript: true, title: "Scripted" } });
    // No hung worker: an ordinary document still goes straight through.
    const after = await waitForEnd(acme, (await upload(acme, report, "after.pdf")).id, 30_000);
    expect(after).toMatchObject({ status: "completed", pagesDone: 4 });
  });

  it("completes a job with every page exactly once after a processor is killed (SIGKILL) mid-range", async () => {
    const file = join(dir, "kill.pdf");
    await makeTextPdf(file, defaultPages(40));
    const queued = await upload(acme, file, "kill.pdf");
    await waitFor("the first pages", () => (of(queued.id, "page.ready").length >= 3 ? true : undefined));
    process.kill(stack.pids.processor, "SIGKILL");
    const job = await waitForEnd(acme, queued.id, 120_000);
    expect(job).toMatchObject({ status: "completed", pageCount: 40, pagesDone: 40 });
    await expectEveryPageOnce(acme, job);
    // The killed processor held messages of this job: RabbitMQ gave them to the other one.
    expect(stack.logs()).toMatch(new RegExp(`"jobId":"${queued.id}".*redelivered task`));
  });
});
