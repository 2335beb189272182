import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { api, eventually, isReady, kubectl, pods, restarts, tokens, type Pod } from "./support.ts";

/**
 * Scenario 4, a busy processor taken away: `kubectl delete pod` on the processor that holds the
 * job's page ranges, then a SIGKILL of a processor's process from the node (what the kernel's
 * OOM killer does). The deleted pod finishes or hands back its work within its grace period
 * (its own exit, before the kubelet's SIGKILL), the killed container restarts, and either way the
 * job completes with every page exactly once.
 */

const run = promisify(execFile);
const PAGES = 300;

describe("scenario 4: a busy processor deleted, then killed", () => {
  let dir: string;
  let client: ReturnType<typeof api>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-cluster-busy-"));
    await makeTextPdf(join(dir, "long.pdf"), defaultPages(PAGES));
    client = api((await tokens())["tenant-a"]!);
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Uploads the long document and resolves once some of its pages, and not all, are done. */
  async function renderingJob(name: string): Promise<Job> {
    const queued = await client.upload(join(dir, "long.pdf"), name);
    return eventually(
      `${name} rendering`,
      async () => {
        const job = await client.job(queued.id);
        if (job.status === "completed") throw new Error(`${name} completed before the processor could be taken away`);
        return job.pagesDone >= 4 ? job : undefined;
      },
      180_000,
      200,
    );
  }

  async function expectEveryPageOnce(id: string): Promise<void> {
    const job = await client.waitForEnd(id, 600_000);
    expect(job.status).toBe("completed");
    expect(job.pagesDone).toBe(PAGES);
    const result = (await (await client.call(`/v1/jobs/${id}/result`)).json()) as { pages: { n: number }[] };
    expect(result.pages.map((p) => p.n)).toEqual(Array.from({ length: PAGES }, (_, i) => i + 1));
  }

  it("`kubectl delete pod` on the busy processor: it leaves within its grace period by itself and the job completes", async () => {
    const job = await renderingJob("deleted.pdf");
    const [busy] = (await pods("processor")) as [Pod];
    const grace = busy.spec.terminationGracePeriodSeconds!;
    const t0 = Date.now();
    await kubectl(["delete", "pod", busy.metadata.name, "--wait=true", `--timeout=${grace + 60}s`], { timeoutMs: (grace + 90) * 1000 });
    const gone = (Date.now() - t0) / 1000;
    process.stderr.write(`[cluster] busy processor ${busy.metadata.name} gone after ${gone.toFixed(1)} s (grace ${grace} s), job at ${job.pagesDone}/${PAGES}\n`);
    // Gone before the grace period ran out: it stopped by itself, not by the kubelet's SIGKILL.
    expect(gone).toBeLessThan(grace);
    // Its replacement takes over; the job ends with every page, each once.
    await eventually("a Ready processor", async () => ((await pods("processor")).some(isReady) ? true : undefined), 180_000);
    await expectEveryPageOnce(job.id);
  });

  it("SIGKILL of a processor's process: the container restarts and its work is redelivered", async () => {
    const socket = process.env.DOCFLOW_TEST_CLUSTER_CONTAINERD;
    if (!socket) throw new Error("killing a container's process needs the node's containerd (DOCFLOW_TEST_CLUSTER_CONTAINERD; the local cluster of scripts/cluster.sh sets it)");
    const job = await renderingJob("killed.pdf");
    const [busy] = (await pods("processor")) as [Pod];
    const before = restarts(busy);
    const containerId = busy.status.containerStatuses!.find((c) => c.name === "processor")!.containerID!.replace(/^containerd:\/\//, "");
    const { stdout } = await run("ctr", ["--address", socket, "-n", "k8s.io", "tasks", "ls"]);
    const pid = Number(
      stdout
        .split("\n")
        .find((line) => line.startsWith(containerId))
        ?.split(/\s+/)[1],
    );
    expect(pid).toBeGreaterThan(1);
    process.kill(pid, "SIGKILL");
    // The kubelet restarts the container in place (same pod), and it becomes Ready again.
    const restarted = await eventually(
      "the killed container restarted and Ready",
      async () => {
        const pod = (await pods("processor")).find((p) => p.metadata.uid === busy.metadata.uid);
        return pod && restarts(pod) === before + 1 && isReady(pod) ? pod : undefined;
      },
      180_000,
    );
    const last = restarted.status.containerStatuses!.find((c) => c.name === "processor")!;
    expect(JSON.stringify(last)).toMatch(/"exitCode":137|"reason":"Error"/);
    await expectEveryPageOnce(job.id);
  });
});
