import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { api, eventually, kubectl, kubectlJson, pods, target, tokens, upgrade, type KubeObject, type List, type Pod } from "./support.ts";

/**
 * Scenario 6, autoscaling acts: the operator (services/operator, the chart's default engine)
 * scales the processor pool out under a burst of documents, on the backlog of pages it reads
 * from the job store, and back in after the pool's stabilisation window, removing idle pods only:
 * the processors' own count of redelivered tasks stays 0. A `kubectl scale` of the pool is
 * honoured, and handing the decision back (removing spec.replicas) returns the pool to the
 * operator.
 */

const MAX = 3;
/** The pool's scale-down window (the chart's default is 60 s): long enough to see it hold. */
const STABILIZATION_SECONDS = 90;
const BURST = 6;
const PAGES = 150;

interface PoolStatus {
  replicas?: number;
  readyReplicas?: number;
  busyReplicas?: number;
  desiredReplicas?: number;
  backlog?: { pages?: number; openJobs?: number };
  lastDecision?: { direction: string; from: number; to: number; reason: string; message: string; time: string };
  conditions?: { type: string; status: string; reason: string; message: string }[];
}
type PoolObject = KubeObject & { spec: { replicas?: number; maxReplicas: number }; status?: PoolStatus };

describe("scenario 6: the operator scales the processor pool on its backlog", () => {
  let dir: string;
  let client: ReturnType<typeof api>;
  const name = () => `${target().release}-processor`;
  const pool = () => kubectlJson<PoolObject>(["get", "processorpool", name()]);
  /** Each processor pod's docflow_tasks_redelivered_total, highest seen (a pod removed keeps its last reading). */
  const redelivered = new Map<string, number>();

  async function readRedeliveries(): Promise<void> {
    for (const pod of await pods("processor")) {
      if (pod.status.phase !== "Running") continue;
      const text = await kubectl([
        "exec",
        pod.metadata.name,
        "-c",
        "processor",
        "--",
        "node",
        "-e",
        "fetch('http://127.0.0.1:8081/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))",
      ]).catch(() => "");
      const total = text
        .split("\n")
        .filter((l) => l.startsWith("docflow_tasks_redelivered_total"))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
      if (text.includes("docflow_tasks_in_flight")) redelivered.set(pod.metadata.name, Math.max(redelivered.get(pod.metadata.name) ?? 0, total));
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-cluster-scale-"));
    await makeTextPdf(join(dir, "burst.pdf"), defaultPages(PAGES));
    client = api((await tokens())["tenant-a"]!);
    await upgrade([
      "--set",
      `processor.autoscaling.maxReplicas=${MAX}`,
      "--set",
      `processor.autoscaling.operator.scaleDownStabilizationSeconds=${STABILIZATION_SECONDS}`,
      // A goal the burst cannot meet with one processor: 900 pages at ~5 pages/s is 180 replica-seconds.
      "--set",
      "processor.autoscaling.operator.targetDrainSeconds=30",
    ]);
  });

  afterAll(async () => {
    // Back to the install's values (one processor) for whatever runs next.
    await upgrade().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("scales out under a burst on the page backlog, and back in after the window without removing a busy processor", async () => {
    // Healthy before the burst: the scenario before this one takes RabbitMQ away, and the pool is
    // Degraded (BacklogUnknown, or MetricsUnavailable while processors reconnect) until the
    // operator's next reconcile reads everything again.
    const before = await eventually(
      "the pool reconciled at 1 and not Degraded",
      async () => {
        const p = await pool();
        if (p.status?.desiredReplicas !== 1 || p.spec.maxReplicas !== MAX) return undefined;
        const degraded = p.status.conditions?.find((c) => c.type === "Degraded");
        if (degraded?.status !== "False") throw new Error(`Degraded=${degraded?.status} ${degraded?.reason}: ${degraded?.message}`);
        return p;
      },
      120_000,
      2_000,
    );
    expect(before.status?.readyReplicas).toBe(1);

    const jobs = await Promise.all(Array.from({ length: BURST }, (_, i) => client.upload(join(dir, "burst.pdf"), `burst-${Date.now()}-${i}.pdf`)));
    const t0 = Date.now();
    const out = await eventually(
      "a scale-out on the backlog",
      async () => {
        const p = await pool();
        return (p.status?.desiredReplicas ?? 1) > 1 ? p.status! : undefined;
      },
      180_000,
      2_000,
    );
    const outAfter = (Date.now() - t0) / 1000;
    expect(out.desiredReplicas).toBeLessThanOrEqual(MAX);
    expect(out.lastDecision).toMatchObject({ direction: "up", reason: expect.stringMatching(/^(Backlog|AtMaxReplicas)$/) });
    expect(out.lastDecision?.message).toMatch(/pages and \d+ messages waiting/);
    const ready = await eventually(
      "more than one processor Ready",
      async () => {
        const p = await pool();
        return (p.status?.readyReplicas ?? 0) > 1 ? p.status!.readyReplicas : undefined;
      },
      300_000,
      2_000,
    );
    const events = await kubectlJson<List<KubeObject & { reason: string; message: string }>>(["get", "events", "--field-selector", `involvedObject.kind=ProcessorPool,involvedObject.name=${name()}`]);
    expect(events.items.map((e) => e.reason)).toContain("ScaledUp");

    for (const job of jobs) {
      expect((await client.waitForEnd(job.id, 900_000)).status).toBe("completed");
      await readRedeliveries();
    }
    const idle = Date.now();
    await eventually(
      "the scale-in to one processor",
      async () => {
        await readRedeliveries();
        const p = await pool();
        return p.status?.desiredReplicas === 1 && p.status.replicas === 1 ? true : undefined;
      },
      (STABILIZATION_SECONDS + 240) * 1000,
      5_000,
    );
    const inAfter = (Date.now() - idle) / 1000;
    const after = await pool();
    process.stderr.write(
      `[cluster] operator: out to ${out.desiredReplicas} (${ready} Ready) ${outAfter.toFixed(0)} s into the burst; back to 1 ${inAfter.toFixed(0)} s after its last job ended as seen here (${after.status?.lastDecision?.reason}); redeliveries ${JSON.stringify(Object.fromEntries(redelivered))}\n`,
    );
    // Not before the stabilisation window: the scale-in decision came at least the window after
    // the scale-out one (the window counts from the last time more replicas were wanted, which is
    // no earlier than that). Both times are the operator's own, from the pool's status; when this
    // test saw the last job end is not what the window counts from.
    expect(after.status?.lastDecision).toMatchObject({ direction: "down" });
    const held = (Date.parse(after.status!.lastDecision!.time) - Date.parse(out.lastDecision!.time)) / 1000;
    expect(held, `scale-in ${held} s after the scale-out`).toBeGreaterThanOrEqual(STABILIZATION_SECONDS);
    // No task was redelivered because of the scale-in (or anything else in this burst).
    expect(redelivered.size).toBeGreaterThan(1);
    expect([...redelivered.values()].reduce((a, b) => a + b, 0)).toBe(0);
  });

  it("honours `kubectl scale` of the pool, and hands the decision back when spec.replicas is removed", async () => {
    await kubectl(["scale", "processorpool", name(), "--replicas=2"]);
    await eventually(
      "two processors Ready",
      async () => {
        const d = await kubectlJson<KubeObject & { spec: { replicas: number }; status: { readyReplicas?: number } }>(["get", "deployment", name()]);
        return d.spec.replicas === 2 && d.status.readyReplicas === 2 ? true : undefined;
      },
      240_000,
      2_000,
    );
    expect((await pool()).status?.lastDecision).toMatchObject({ reason: "Requested", to: 2 });
    await kubectl(["patch", "processorpool", name(), "--type=json", "-p", '[{"op":"remove","path":"/spec/replicas"}]']);
    // Idle, the operator's own decision is the minimum again, after its stabilisation window.
    const back = await eventually(
      "the operator scaling in on its own",
      async () => {
        const p = await pool();
        return p.spec.replicas === undefined && p.status?.lastDecision?.reason === "BacklogDrained" && p.status.replicas === 1 ? p : undefined;
      },
      (STABILIZATION_SECONDS + 120) * 1000,
      2_000,
    );
    expect(back.status?.lastDecision).toMatchObject({ direction: "down", from: 2, to: 1 });
    expect((await pods("processor")).filter((p: Pod) => !p.metadata.deletionTimestamp).length).toBe(1);
  });
});
