import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { api, eventually, kubectlJson, target, tokens, upgrade, type KubeObject } from "./support.ts";

/**
 * Scenario 6, autoscaling acts: the chart's CPU HPA on metrics-server (processor.autoscaling,
 * engine hpa) scales the processors out under a burst of documents and back in after its
 * scale-down stabilisation window. The operator (issue 16) will replace this scaler; its own
 * cluster tests will run here the same way.
 */

const MAX = 3;
/** The chart refuses less than processor.taskTimeoutSeconds (120 s in the evaluation install). */
const STABILIZATION_SECONDS = 120;
const BURST = 6;
const PAGES = 150;

interface Hpa extends KubeObject {
  status: { currentReplicas?: number; desiredReplicas?: number; currentMetrics?: unknown[] };
}

describe("scenario 6: the processors autoscale", () => {
  let dir: string;
  let client: ReturnType<typeof api>;
  const hpa = () => kubectlJson<Hpa>(["get", "hpa", `${target().release}-processor`]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-cluster-scale-"));
    await makeTextPdf(join(dir, "burst.pdf"), defaultPages(PAGES));
    client = api((await tokens())["tenant-a"]!);
    await upgrade([
      "--set", "processor.autoscaling.enabled=true",
      "--set", "processor.autoscaling.engine=hpa",
      "--set", "processor.autoscaling.minReplicas=1",
      "--set", `processor.autoscaling.maxReplicas=${MAX}`,
      "--set", "processor.autoscaling.targetCPUUtilizationPercentage=50",
      "--set", `processor.autoscaling.scaleDownStabilizationSeconds=${STABILIZATION_SECONDS}`,
    ]);
  });

  afterAll(async () => {
    // Back to the install's values (one processor, no HPA) for whatever runs next.
    await upgrade().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("scales the processors out under a burst and back in after the stabilisation window", async () => {
    // metrics-server answers for the processor pods before the burst: the HPA can read CPU.
    await eventually("the HPA reading CPU from metrics-server", async () => ((await hpa()).status.currentMetrics?.length ? true : undefined), 180_000, 2_000);
    expect((await hpa()).status.currentReplicas).toBe(1);

    const jobs = await Promise.all(Array.from({ length: BURST }, (_, i) => client.upload(join(dir, "burst.pdf"), `burst-${i}.pdf`)));
    const t0 = Date.now();
    const out = await eventually("a scale-out", async () => {
      const h = await hpa();
      return (h.status.desiredReplicas ?? 1) > 1 ? h.status.desiredReplicas : undefined;
    }, 300_000, 2_000);
    const outAfter = (Date.now() - t0) / 1000;
    const deployment = await eventually("more than one processor Ready", async () => {
      const d = await kubectlJson<KubeObject & { status: { readyReplicas?: number } }>(["get", "deployment", `${target().release}-processor`]);
      return (d.status.readyReplicas ?? 0) > 1 ? d.status.readyReplicas : undefined;
    }, 300_000, 2_000);
    expect(out).toBeLessThanOrEqual(MAX);
    for (const job of jobs) expect((await client.waitForEnd(job.id, 900_000)).status).toBe("completed");
    const idle = Date.now();
    await eventually("the scale-in to one processor", async () => ((await hpa()).status.desiredReplicas === 1 ? true : undefined), (STABILIZATION_SECONDS + 240) * 1000, 2_000);
    const inAfter = (Date.now() - idle) / 1000;
    process.stderr.write(`[cluster] HPA: out to ${out} (${deployment} Ready) ${outAfter.toFixed(0)} s into the burst; back to 1 ${inAfter.toFixed(0)} s after it ended\n`);
    // Not before the stabilisation window: the HPA held the replicas while they idled.
    expect(inAfter).toBeGreaterThanOrEqual(STABILIZATION_SECONDS - 10);
  });
});
