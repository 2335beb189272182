import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKeys, type Job, type JobEvent } from "@docflow/contracts";
import { S3ObjectStore } from "@docflow/infra";
import { launchService, type ServiceProcess } from "@docflow/tools/launch";
import { defaultPages, makePptx, makeTextPdf, pageWords } from "../fixtures/generate.ts";
import { connectTestNats, testServices } from "../support/env.ts";
import { jobsClient } from "../support/jobs-api.ts";
import { startStack, type Stack } from "../support/stack.ts";
import { listKeys, random, reportFigures } from "./support.ts";

/**
 * Fault 1 of the fault suite (#18): a processor SIGKILLed 20 times at random moments while a batch
 * of 30 documents (PDFs of 1 to 300 pages, and PPTX decks) is processed by a pool of two, each
 * killed processor replaced at once, as a Deployment replaces a crashed pod.
 *
 * What a user checks: every job completed, with every page's text, thumbnail and preview there
 * exactly once and the right text on it; pagesDone == pageCount; and no page announced twice
 * (`page.ready`), which the web app would count twice.
 *
 * The delivery limit is raised to 20 here: with the production default (3), a PPTX conversion
 * (~5 s with a cold LibreOffice profile) that happens to be in flight at three kills in a row is
 * dead-lettered as poison, which is the right answer to a document that kills its processors
 * (tests/e2e/processing-poison.test.ts) and not what this test is about.
 */
const KILLS = 20;
const POOL = 2;
// 2,445 pages: the batch outlasts the 20 kills (1.5-3.5 s apart) on a 2-core machine.
const PDF_PAGES = [1, 1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 300, 300, 300, 300];
const PPTX_SLIDES = [2, 3, 4, 5, 6, 8];

interface Doc {
  file: string;
  filename: string;
  pages: number;
  kind: "pdf" | "pptx";
}

describe("fault: processors killed repeatedly", () => {
  let stack: Stack;
  let dir: string;
  let nats: NatsConnection;
  const docs: Doc[] = [];
  const events: JobEvent[] = [];
  const pool: ServiceProcess[] = [];
  const killed: ServiceProcess[] = [];

  /** One more processor in the pool; resolves when it consumes, or when the killer took it first. */
  const startProcessor = async () => {
    const processor = launchService("processor", { env: stack.env, keepChars: 200_000 });
    pool.push(processor);
    try {
      await processor.waitForLine((l) => l.includes('"msg":"processor consuming"'), "that it is consuming");
    } catch (err) {
      if (!killed.includes(processor)) throw err;
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-fault-kills-"));
    for (const [i, pages] of PDF_PAGES.entries()) {
      const file = join(dir, `doc-${i}.pdf`);
      await makeTextPdf(file, defaultPages(pages));
      docs.push({ file, filename: `doc-${i}-${pages}p.pdf`, pages, kind: "pdf" });
    }
    for (const [i, slides] of PPTX_SLIDES.entries()) {
      const file = join(dir, `deck-${i}.pptx`);
      await makePptx(
        file,
        Array.from({ length: slides }, (_, s) => `Deck ${i} slide ${s + 1}`),
      );
      docs.push({ file, filename: `deck-${i}-${slides}s.pptx`, pages: slides, kind: "pptx" });
    }
    stack = await startStack({
      processors: 0,
      // Delivery limit 20 (see above); the stalled-job sweeper must then wait out 20 task timeouts.
      env: { DOCFLOW_DELIVERY_LIMIT: "20", DOCFLOW_STALLED_AFTER_MS: "3600000", DOCFLOW_PROCESSOR_CONCURRENCY: "2", LOG_LEVEL: "info" },
    });
    nats = await connectTestNats();
    for (const tenant of Object.keys(stack.tokens)) {
      const sub = nats.subscribe(`docflow.events.${tenant}.>`);
      void (async () => {
        for await (const m of sub) events.push(m.json<JobEvent>());
      })();
    }
    for (let i = 0; i < POOL; i++) await startProcessor();
  }, 180_000);

  afterAll(async () => {
    await Promise.all([...pool, ...killed].map((p) => p.stop({ graceMs: 5_000 })));
    await nats?.drain().catch(() => {});
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("completes every job with every page exactly once, however often its processors die", async () => {
    const seed = Number(process.env.DOCFLOW_FAULT_SEED ?? Date.now() % 100_000);
    const rand = random(seed);
    const tenants = Object.keys(stack.tokens);
    const started = Date.now();

    // Uploads, four at a time (a tenant may have 8 in progress), alternating tenants.
    const jobs: { doc: Doc; tenant: string; job: Job }[] = [];
    const queue = docs.map((doc, i) => ({ doc, tenant: tenants[i % tenants.length]! }));
    const uploading = Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const job = await jobsClient(stack.baseUrl, stack.tokens[next.tenant]!).upload(next.doc.file, next.doc.filename);
          jobs.push({ ...next, job });
        }
      }),
    );

    // The killer: SIGKILL a random processor of the pool every 1.5-3.5 s, and start its
    // replacement at once (it joins while the next kill is awaited, as a new pod would).
    const open = async () => {
      let count = 0;
      for (const { tenant, job } of jobs) {
        const current = await jobsClient(stack.baseUrl, stack.tokens[tenant]!).job(job.id);
        if (!["completed", "failed", "canceled"].includes(current.status)) count++;
      }
      return count + queue.length;
    };
    const kills: { at: number; pid: number; openJobs: number }[] = [];
    const replacements: Promise<void>[] = [];
    for (let i = 0; i < KILLS; i++) {
      await new Promise((r) => setTimeout(r, 1_500 + rand() * 2_000));
      const victim = pool.splice(Math.floor(rand() * pool.length), 1)[0]!;
      killed.push(victim);
      await victim.stop({ signal: "SIGKILL" });
      replacements.push(startProcessor());
      kills.push({ at: (Date.now() - started) / 1000, pid: victim.pid, openJobs: await open() });
    }
    await Promise.all([uploading, ...replacements]);

    const ended = await Promise.all(
      jobs.map(({ tenant, job }) => jobsClient(stack.baseUrl, stack.tokens[tenant]!, { pollMs: 500, context: () => stack.logs().slice(-3000) }).waitForEnd(job.id, 600_000)),
    );
    const recoveredAt = (Date.now() - started) / 1000;

    // Every kill landed while work was open: the faults hit the batch, not an idle pool.
    expect(
      kills.every((k) => k.openJobs > 0),
      JSON.stringify(kills),
    ).toBe(true);

    const { s3 } = testServices();
    const store = new S3ObjectStore({
      bucket: stack.env.DOCFLOW_S3_BUCKET!,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    let lost = 0;
    let duplicated = 0;
    try {
      for (const [i, { doc, tenant, job }] of jobs.entries()) {
        const end = ended[i]!;
        expect(end.status, `${doc.filename}: ${JSON.stringify(end.error ?? null)}`).toBe("completed");
        expect(end.pageCount).toBe(doc.pages);
        expect(end.pagesDone).toBe(end.pageCount);

        // The result lists each page once, in order, with the right text.
        const res = await jobsClient(stack.baseUrl, stack.tokens[tenant]!).call(`/v1/jobs/${job.id}/result`);
        expect(res.status).toBe(200);
        const result = (await res.json()) as { pages: { n: number; text: string; thumbnailUrl: string; previewUrl: string }[] };
        expect(result.pages.map((p) => p.n)).toEqual(Array.from({ length: doc.pages }, (_, k) => k + 1));
        for (const page of result.pages) {
          expect(page.text).toContain(doc.kind === "pdf" ? pageWords(page.n) : `slide ${page.n}`);
        }

        // In the store: exactly the three objects of each page, nothing missing, nothing extra.
        const prefix = `${objectKeys.jobPrefix(tenant, job.id)}pages/`;
        const keys = await listKeys(store, prefix);
        const expected = result.pages.flatMap((p) => [objectKeys.pageJson(tenant, job.id, p.n), objectKeys.pageThumbnail(tenant, job.id, p.n), objectKeys.pagePreview(tenant, job.id, p.n)]);
        lost += expected.filter((k) => !keys.includes(k)).length;
        expect(keys.sort()).toEqual(expected.sort());

        // Announced at most once per page (a lost announcement is repaired by the web app's probe).
        const announced = events.filter((e) => e.jobId === job.id && e.type === "page.ready").map((e) => e.page);
        duplicated += announced.length - new Set(announced).size;
      }
    } finally {
      store.client.destroy();
    }
    expect(duplicated).toBe(0);

    const redeliveries = [...pool, ...killed].reduce((sum, p) => sum + p.logs().split("redelivered task").length - 1, 0);
    await reportFigures("processors killed repeatedly", {
      seed,
      kills: kills.length,
      attempted: jobs.length,
      accepted: jobs.length,
      completed: ended.filter((j) => j.status === "completed").length,
      pages: ended.reduce((sum, j) => sum + (j.pageCount ?? 0), 0),
      lost,
      duplicated,
      nonTerminal: ended.filter((j) => !["completed", "failed", "canceled"].includes(j.status)).length,
      redeliveredTasks: redeliveries,
      lastKillSeconds: kills.at(-1)!.at,
      allDoneSeconds: recoveredAt,
    });
  }, 900_000);
});
