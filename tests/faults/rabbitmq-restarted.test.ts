import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { startRabbitMq, type RabbitMqHandle } from "@docflow/tools/services";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { jobsClient } from "../support/jobs-api.ts";
import { startStack, type Stack } from "../support/stack.ts";
import { random, reportFigures } from "./support.ts";

/**
 * Fault 2 of the fault suite (#18): RabbitMQ stopped and started again, then killed with SIGKILL
 * and started again, on its own data (as a pod restarted on its volume), while 100 documents are
 * uploaded one every 400 ms and processed.
 *
 * What a user and an SRE check: every upload the gateway accepted (2xx) ends completed; every one
 * it refused got a 503 with Retry-After, never a 500 or a hang; the gateway's liveness never
 * failed (nothing would restart it), its readiness failed while the broker was away and came
 * back. The broker here is this test's own (the suite's shared one is not broken), a host
 * process on a fixed port. The processors' sweeper runs every 5 s and re-dispatches a job queued
 * 10 s ago (production: 30 s and 60 s), so that jobs accepted while the broker was away are
 * dispatched within seconds of its return.
 */
const UPLOADS = 100;
const EVERY_MS = 400;

interface Attempt {
  status: number;
  retryAfter: string | null;
  ms: number;
  job?: Job;
  error?: string;
}

describe("fault: RabbitMQ restarted", () => {
  let dir: string;
  let rabbit: RabbitMqHandle;
  let stack: Stack;
  const files: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-fault-rabbitmq-"));
    rabbit = await startRabbitMq({ dataDir: join(dir, "rabbitmq") });
    for (const pages of [1, 2, 3, 5]) {
      const file = join(dir, `doc-${pages}.pdf`);
      await makeTextPdf(file, defaultPages(pages));
      files.push(file);
    }
    stack = await startStack({
      processors: 1,
      env: { DOCFLOW_AMQP_URL: rabbit.url, DOCFLOW_SWEEP_INTERVAL_MS: "5000", DOCFLOW_REDISPATCH_AFTER_MS: "10000" },
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await rabbit?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("completes every accepted upload, refuses the others with 503 and Retry-After, and keeps the gateway alive", async () => {
    const seed = Number(process.env.DOCFLOW_FAULT_SEED ?? Date.now() % 100_000);
    const rand = random(seed);
    const tenant = Object.keys(stack.tokens)[0]!;
    const client = jobsClient(stack.baseUrl, stack.tokens[tenant]!, { pollMs: 500, context: () => stack.logs().slice(-3000) });
    const t0 = Date.now();
    const at = () => (Date.now() - t0) / 1000;

    // Probes, as the kubelet would send them (every 250 ms, 2 s timeout).
    const probes: { at: number; healthz: number; readyz: number }[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const probe = (path: string) =>
          fetch(`${stack.baseUrl}${path}`, { signal: AbortSignal.timeout(2_000) }).then(
            (r) => r.status,
            () => 0,
          );
        const [healthz, readyz] = await Promise.all([probe("/healthz"), probe("/readyz")]);
        probes.push({ at: at(), healthz, readyz });
        await new Promise((r) => setTimeout(r, 250));
      }
    })();

    // The load: one upload every 400 ms, each bounded at 30 s (longer counts as a hang).
    const attempts: Attempt[] = [];
    const uploading = (async () => {
      const pending: Promise<void>[] = [];
      for (let i = 0; i < UPLOADS; i++) {
        const file = files[i % files.length]!;
        const started = Date.now();
        pending.push(
          (async () => {
            const attempt: Attempt = { status: 0, retryAfter: null, ms: 0 };
            try {
              const res = await client.call(`/v1/documents?filename=${encodeURIComponent(`r-${i}.pdf`)}`, {
                method: "POST",
                body: await readFile(file),
                headers: { "content-type": "application/pdf" },
                signal: AbortSignal.timeout(30_000),
              });
              attempt.status = res.status;
              attempt.retryAfter = res.headers.get("retry-after");
              if (res.status === 202) attempt.job = (await res.json()) as Job;
              else await res.text();
            } catch (err) {
              attempt.error = (err as Error).message;
            }
            attempt.ms = Date.now() - started;
            attempts.push(attempt);
          })(),
        );
        await new Promise((r) => setTimeout(r, EVERY_MS));
      }
      await Promise.all(pending);
    })();

    // The faults: a clean stop and start, then a crash and start, at seeded moments.
    const identity = { nodeName: rabbit.nodeName, password: rabbit.password };
    const restart = async () => {
      rabbit = await startRabbitMq({ dataDir: rabbit.dataDir, port: rabbit.port, identity });
    };
    const outages: { kind: string; from: number; to: number }[] = [];
    await new Promise((r) => setTimeout(r, 4_000 + rand() * 3_000));
    let from = at();
    await rabbit.stop();
    await new Promise((r) => setTimeout(r, 8_000));
    await restart();
    outages.push({ kind: "stop", from, to: at() });
    await new Promise((r) => setTimeout(r, 6_000 + rand() * 3_000));
    from = at();
    await rabbit.kill();
    await new Promise((r) => setTimeout(r, 4_000));
    await restart();
    outages.push({ kind: "kill -9", from, to: at() });

    await uploading;
    const readyAgain = await (async () => {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const last = probes.at(-1);
        if (last && last.readyz === 200 && last.at > outages.at(-1)!.to) return last.at;
        await new Promise((r) => setTimeout(r, 250));
      }
      return undefined;
    })();
    probing = false;
    await prober;

    const accepted = attempts.filter((a) => a.job);
    const refused = attempts.filter((a) => !a.job);
    const ended = await Promise.all(accepted.map((a) => client.waitForEnd(a.job!.id, 180_000).catch(() => client.job(a.job!.id))));
    const stuck = ended.filter((j) => j.status !== "completed");
    if (stuck.length > 0) {
      console.log(`[fault] ${stuck.length} jobs not completed: ${JSON.stringify(stuck.slice(0, 5))}`);
      const file = resolve(import.meta.dirname, "../../test-results/faults-rabbitmq-restarted.log");
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, stack.logs());
      console.log(`[fault] the stack's whole output: ${file}`);
    }
    const completed = ended.filter((j) => j.status === "completed").length;

    const figures = {
      seed,
      attempted: attempts.length,
      accepted: accepted.length,
      refused503: refused.filter((a) => a.status === 503 && a.retryAfter !== null).length,
      otherFailures: refused.filter((a) => !(a.status === 503 && a.retryAfter !== null)).length,
      completed,
      lost: accepted.length - completed,
      nonTerminal: ended.filter((j) => !["completed", "failed", "canceled"].includes(j.status)).length,
      slowestUploadMs: Math.max(...attempts.map((a) => a.ms)),
      livenessFailures: probes.filter((p) => p.healthz !== 200).length,
      readinessFailures: probes.filter((p) => p.readyz !== 200).length,
      outages: outages.map((o) => `${o.kind} ${o.from.toFixed(1)}-${o.to.toFixed(1)} s`).join(", "),
      readyAgainSecondsAfterRestart: readyAgain === undefined ? "never" : Number((readyAgain - outages.at(-1)!.to).toFixed(1)),
      allDoneSeconds: Number(at().toFixed(1)),
    };
    await reportFigures("rabbitmq restarted", figures);

    expect(attempts).toHaveLength(UPLOADS);
    // Refused only as a client can act on: 503 with Retry-After; no 500, no hang.
    expect(
      refused.map((a) => ({ status: a.status, retryAfter: a.retryAfter, error: a.error })),
      JSON.stringify(figures),
    ).toEqual(refused.map(() => ({ status: 503, retryAfter: expect.stringMatching(/^\d+$/), error: undefined })));
    expect(ended.map((j) => j.status)).toEqual(accepted.map(() => "completed"));
    expect(figures.livenessFailures).toBe(0);
    expect(figures.readinessFailures).toBeGreaterThan(0);
    expect(readyAgain).toBeDefined();
  }, 900_000);
});
