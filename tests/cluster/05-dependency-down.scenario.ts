import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { api, eventually, isReady, kubectl, kubectlJson, pods, restarts, target, tokens, type List, type Pod } from "./support.ts";

/**
 * Scenario 5, a dependency down: RabbitMQ scaled to 0. The gateway turns NotReady and leaves its
 * Service's endpoints while its liveness holds (no restart: a broker outage must never restart
 * the API); uploads through the ingress get a clear 503 with Retry-After, quickly; when RabbitMQ
 * returns everything recovers, and what was accepted before completes.
 */

interface EndpointSlice {
  endpoints?: { conditions?: { ready?: boolean } }[];
}

async function readyEndpoints(service: string): Promise<number> {
  const slices = await kubectlJson<List<EndpointSlice>>(["get", "endpointslices", "-l", `kubernetes.io/service-name=${service}`]);
  return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready === true).length;
}

describe("scenario 5: RabbitMQ down", () => {
  let dir: string;
  let client: ReturnType<typeof api>;
  const rabbitmq = () => `statefulset/${target().release}-rabbitmq`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-cluster-dep-"));
    await makeTextPdf(join(dir, "doc.pdf"), defaultPages(3));
    client = api((await tokens())["tenant-a"]!);
  });

  afterAll(async () => {
    // Whatever happened, the broker comes back for the scenarios after this one.
    await kubectl(["scale", rabbitmq(), "--replicas=1"]).catch(() => undefined);
    await kubectl(["rollout", "status", rabbitmq(), "--timeout=180s"], { timeoutMs: 200_000 }).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("takes the gateway out of service without restarting it, answers 503 with Retry-After, and recovers", async () => {
    const gatewayService = `${target().release}-gateway`;
    const accepted = await client.upload(join(dir, "doc.pdf"), "before.pdf");
    await client.waitForEnd(accepted.id, 120_000);
    const [gateway] = (await pods("gateway")) as [Pod];
    const restartsBefore = restarts(gateway);
    expect(await readyEndpoints(gatewayService)).toBeGreaterThan(0);

    await kubectl(["scale", rabbitmq(), "--replicas=0"]);
    const down = Date.now();
    await eventually("the gateway NotReady", async () => (!isReady((await pods("gateway"))[0]!) ? true : undefined), 90_000);
    await eventually("no ready gateway endpoint", async () => ((await readyEndpoints(gatewayService)) === 0 ? true : undefined), 30_000);
    process.stderr.write(`[cluster] gateway NotReady ${((Date.now() - down) / 1000).toFixed(0)} s after RabbitMQ went away\n`);

    // Uploads meanwhile: a quick, clear 503 that says when to come back.
    const t0 = performance.now();
    const refused = await client.call("/v1/documents?filename=during.pdf", { method: "POST", body: "%PDF-1.7", headers: { "content-type": "application/pdf" }, signal: AbortSignal.timeout(30_000) });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(10_000);

    // Longer than the liveness probe's failure window: the gateway keeps running.
    await new Promise((r) => setTimeout(r, 45_000));
    const still = (await pods("gateway")).find((p) => p.metadata.uid === gateway.metadata.uid);
    expect(still, "the gateway pod was replaced").toBeDefined();
    expect(restarts(still!)).toBe(restartsBefore);

    await kubectl(["scale", rabbitmq(), "--replicas=1"]);
    await eventually("the gateway Ready again", async () => ((await pods("gateway")).some(isReady) ? true : undefined), 240_000, 2_000);
    expect(await readyEndpoints(gatewayService)).toBeGreaterThan(0);
    expect(restarts((await pods("gateway")).find((p) => p.metadata.uid === gateway.metadata.uid)!)).toBe(restartsBefore);

    // Back to normal: a new upload goes through, and the earlier job is still there, completed.
    const after = await client.upload(join(dir, "doc.pdf"), "after.pdf");
    expect((await client.waitForEnd(after.id, 180_000)).status).toBe("completed");
    expect((await client.job(accepted.id)).status).toBe("completed");
  });
});
