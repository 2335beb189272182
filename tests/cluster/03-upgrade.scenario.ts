import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPages, makeTextPdf, paddedPdf } from "../fixtures/generate.ts";
import { api, componentLogs, pods, target, tokens, upgrade } from "./support.ts";

/**
 * Scenario 3, a rolling upgrade under load: `helm upgrade` with a changed value replaces every
 * docflow pod while 8 tus uploads stream (tus-js-client, the web app's own client, paced so that
 * they span the rollout) and a 300-page job renders. Nothing the user sees may fail: no upload
 * needs even one of tus' retries (the old pods' preStop sleep and graceful shutdown let every
 * request finish), every stored object has the uploaded SHA-256, the job completes with every
 * page exactly once, and polling the API through the rollout never gets an error.
 */

const UPLOADS = 8;
const UPLOAD_BYTES = 24 * 1024 * 1024;
/** Per upload; 8 together make ~4 MiB/s through the ingress, for ~25 s each. */
const BYTES_PER_SECOND = 1024 * 1024;
const LONG_PAGES = 300;

/** `bytes` as a stream that yields at most `rate` bytes a second. */
function paced(bytes: Buffer, rate: number): Readable {
  const slice = 64 * 1024;
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= bytes.length) return void this.push(null);
      const next = bytes.subarray(offset, Math.min(offset + slice, bytes.length));
      offset += next.length;
      setTimeout(() => this.push(next), (next.length / rate) * 1000);
    },
  });
}

interface UploadOutcome {
  jobId: string;
  sha256: string;
  retries: number;
  errors: string[];
}

function tusUpload(baseUrl: string, token: string, name: string, bytes: Buffer): Promise<UploadOutcome> {
  const outcome: UploadOutcome = { jobId: "", sha256: createHash("sha256").update(bytes).digest("hex"), retries: 0, errors: [] };
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(paced(bytes, BYTES_PER_SECOND), {
      endpoint: `${baseUrl}/v1/uploads`,
      uploadSize: bytes.length,
      chunkSize: 5 * 1024 * 1024,
      headers: { authorization: `Bearer ${token}` },
      metadata: { filename: name, filetype: "application/pdf" },
      retryDelays: [0, 1000, 3000, 5000, 10000],
      onShouldRetry: (err) => {
        outcome.retries += 1;
        outcome.errors.push(String(err));
        return true;
      },
      onAfterResponse: (_req, res) => {
        const id = res.getHeader("Docflow-Job-Id");
        if (id) outcome.jobId = id;
      },
      onError: (err) => reject(new Error(`${name}: ${String(err)}`, { cause: err })),
      onSuccess: () => resolve(outcome),
    });
    upload.start();
  });
}

describe("scenario 3: a rolling upgrade under load", () => {
  let dir: string;
  let token: string;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-cluster-upgrade-"));
    await makeTextPdf(file("long.pdf"), defaultPages(LONG_PAGES));
    token = (await tokens())["tenant-a"]!;
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("replaces every docflow pod while 8 uploads stream and a 300-page job renders, and nobody notices", async () => {
    const { baseUrl } = target();
    const client = api(token);
    const before = new Map<string, string[]>();
    for (const component of ["gateway", "processor", "web"])
      before.set(
        component,
        (await pods(component)).map((p) => p.metadata.uid!),
      );

    const long = await client.upload(file("long.pdf"), "long.pdf");
    const payloads = await Promise.all(Array.from({ length: UPLOADS }, () => paddedPdf(UPLOAD_BYTES, "rolling upgrade")));
    const uploads = payloads.map((bytes, i) => tusUpload(baseUrl, token, `upgrade-${i}.pdf`, bytes));
    // Someone watching the long job the whole time, through the ingress.
    const pollErrors: string[] = [];
    let polling = true;
    const poller = (async () => {
      let polls = 0;
      while (polling) {
        const res = await client.call(`/v1/jobs/${long.id}`).catch((err: unknown) => ({ status: 0, statusText: String(err) }) as Response);
        polls += 1;
        if (res.status !== 200) pollErrors.push(`${res.status} ${res.statusText}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      return polls;
    })();

    // A changed value in every docflow pod template: all of them are replaced.
    const stamp = `rollout-${Date.now()}`;
    const t0 = Date.now();
    await upgrade([
      "--set",
      `gateway.podAnnotations.docflow\\.io/test-rollout=${stamp}`,
      "--set",
      `processor.podAnnotations.docflow\\.io/test-rollout=${stamp}`,
      "--set",
      `web.podAnnotations.docflow\\.io/test-rollout=${stamp}`,
    ]);
    const rolloutSeconds = (Date.now() - t0) / 1000;

    let outcomes: UploadOutcome[];
    try {
      outcomes = await Promise.all(uploads);
    } catch (err) {
      throw new Error(`${String(err)}\n--- gateway ---\n${await componentLogs("gateway")}`, { cause: err });
    }
    const done = await client.waitForEnd(long.id, 600_000);
    polling = false;
    const polls = await poller;
    const doneAfter = (Date.parse(done.completedAt ?? done.updatedAt) - t0) / 1000;
    process.stderr.write(
      `[cluster] helm upgrade (all pods replaced) took ${rolloutSeconds.toFixed(0)} s; the 300-page job ended ${doneAfter.toFixed(0)} s after it began; ` +
        `${polls} polls; tus retries ${outcomes.map((o) => o.retries).join(",")}\n`,
    );
    // The job was still rendering when the upgrade began: its processor was replaced under it.
    expect(doneAfter).toBeGreaterThan(0);

    // Every docflow pod is new.
    for (const [component, uids] of before) {
      const now = await pods(component);
      expect(now.length, component).toBeGreaterThan(0);
      for (const pod of now) {
        expect(uids, `${pod.metadata.name} survived the upgrade`).not.toContain(pod.metadata.uid);
        expect(pod.metadata.annotations?.["docflow.io/test-rollout"]).toBe(stamp);
      }
    }
    // No request cut by an old pod's shutdown: no tus retry, no failed poll.
    expect(outcomes.flatMap((o) => o.errors)).toEqual([]);
    expect(pollErrors).toEqual([]);
    // Every upload became a job whose stored object has the uploaded bytes.
    for (const outcome of outcomes) {
      expect(outcome.jobId).not.toBe("");
      const job = await client.waitForEnd(outcome.jobId, 300_000);
      expect(job.status).toBe("completed");
      expect(job.sha256).toBe(outcome.sha256);
    }
    // The long job completed with every page exactly once.
    expect(done.status).toBe("completed");
    expect(done.pageCount).toBe(LONG_PAGES);
    expect(done.pagesDone).toBe(LONG_PAGES);
    const result = (await (await client.call(`/v1/jobs/${long.id}/result`)).json()) as { pages: { n: number }[] };
    expect(result.pages.map((p) => p.n)).toEqual(Array.from({ length: LONG_PAGES }, (_, i) => i + 1));
  });
});
