import { createHash } from "node:crypto";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKeys, type Job, type JobRecord } from "@docflow/contracts";
import { JobStore, S3ObjectStore } from "@docflow/infra";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { connectTestNats, testServices } from "../support/env.ts";
import { processorPort, startStack, type Stack } from "../support/stack.ts";

/**
 * Work whose message was lost (the broker never confirmed the gateway's
 * publish, or lost its data mid-job) is picked up again by the processors'
 * sweeper: nothing already accepted is lost.
 */
describe("recovery of lost work messages", () => {
  let stack: Stack;
  let nats: NatsConnection;
  let jobs: JobStore;
  let store: S3ObjectStore;
  let tenant: string;
  let pdf: Buffer;

  beforeAll(async () => {
    stack = await startStack({
      env: { DOCFLOW_SWEEP_INTERVAL_MS: "300", DOCFLOW_REDISPATCH_AFTER_MS: "1000", DOCFLOW_TASK_TIMEOUT_MS: "20000", DOCFLOW_STALLED_AFTER_MS: "45000" },
    });
    tenant = Object.keys(stack.tokens)[0]!;
    nats = await connectTestNats();
    jobs = await JobStore.open(nats, stack.env.DOCFLOW_JOBS_BUCKET!);
    const { s3 } = testServices();
    store = new S3ObjectStore({ bucket: stack.env.DOCFLOW_S3_BUCKET!, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const dir = await mkdtemp(join(tmpdir(), "docflow-recovery-"));
    await makeTextPdf(join(dir, "r.pdf"), defaultPages(5));
    pdf = await readFile(join(dir, "r.pdf"));
  });
  afterAll(async () => {
    await nats?.drain();
    await stack?.stop();
  });

  /** A job as the gateway stores it, without publishing its message. */
  async function storedJob(overrides: Partial<JobRecord>, updatedAt: string): Promise<string> {
    const id = uuidv7();
    await store.put(objectKeys.source(tenant, id), pdf);
    const now = new Date().toISOString();
    await jobs.create({
      id,
      tenant,
      status: "queued",
      filename: "r.pdf",
      contentType: "application/pdf",
      size: pdf.length,
      sha256: createHash("sha256").update(pdf).digest("hex"),
      pageCount: null,
      pagesDone: 0,
      createdAt: now,
      updatedAt,
      sourceKey: objectKeys.source(tenant, id),
      ranges: [],
      rangesDone: [],
      ...overrides,
    });
    return id;
  }

  async function waitCompleted(id: string, timeoutMs: number): Promise<Job> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = (await (await fetch(`${stack.baseUrl}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${stack.tokens[tenant]}` } })).json()) as Job;
      if (job.status === "completed" || Date.now() > deadline) return job;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it("re-dispatches a job left queued when its inspect message never reached the broker", async () => {
    const id = await storedJob({}, new Date().toISOString());
    const job = await waitCompleted(id, 30_000);
    expect(job).toMatchObject({ status: "completed", pageCount: 5, pagesDone: 5 });
    expect(stack.logs()).toMatch(new RegExp(`"jobId":"${id}","status":"queued".*re-dispatched`));
    // What an alert sees: the processor counts the lost message it made up for.
    const metrics = await (await fetch(`http://127.0.0.1:${processorPort(stack)}/metrics`)).text();
    expect(Number(/^docflow_jobs_redispatched_total\{status="queued",service="processor"\} (\d+)$/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^docflow_jobs_open\{service="processor"\} \d+$/m);
  });

  it("re-dispatches the unfinished ranges of a processing job that stalled", async () => {
    const longAgo = new Date(Date.now() - 60_000).toISOString();
    const real = uuidv7();
    await store.put(objectKeys.source(tenant, real), pdf);
    await jobs.create({
      id: real,
      tenant,
      status: "processing",
      filename: "r.pdf",
      contentType: "application/pdf",
      size: pdf.length,
      sha256: createHash("sha256").update(pdf).digest("hex"),
      pageCount: 5,
      pagesDone: 1,
      createdAt: longAgo,
      updatedAt: longAgo,
      sourceKey: objectKeys.source(tenant, real),
      pdfKey: objectKeys.source(tenant, real),
      ranges: [
        { first: 1, last: 1 },
        { first: 2, last: 5 },
      ],
      rangesDone: [1],
    });
    const job = await waitCompleted(real, 30_000);
    expect(job).toMatchObject({ status: "completed", pageCount: 5, pagesDone: 5 });
    // Only the unfinished range was rendered again: page 1 was never written by this run.
    expect(await store.head(objectKeys.pageJson(tenant, real, 1))).toBeNull();
    expect(await store.head(objectKeys.pageJson(tenant, real, 5))).not.toBeNull();
  });
});
