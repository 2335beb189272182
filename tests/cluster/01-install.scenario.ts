import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { eventually, helm, isReady, kubectl, kubectlJson, pods, target, type Container, type List, type KubeObject, type Pod } from "./support.ts";

/**
 * Scenario 1, install: what an SRE checks right after `helm install` on a real node. The release
 * was installed once for the run (scripts/cluster.sh deploy); here every workload is Ready, the
 * chart's own `helm test` passes, and the pods run as the chart says, read back from the live
 * objects and from inside the containers.
 */

const READY_WITHIN_MS = 300_000;
const DOCFLOW = ["gateway", "processor", "web", "operator"];

interface Workload extends KubeObject {
  kind: string;
  spec: { replicas?: number; template: { spec: { containers: Container[] } } };
  status: { readyReplicas?: number; replicas?: number; updatedReplicas?: number };
}

/**
 * The chart's rendered pod templates (`helm get manifest`), by name: its Deployments' and
 * StatefulSets', and its PodTemplates, from which the operator makes each processor pool's
 * Deployment (named like the pool's PodTemplate for the default pool).
 */
async function renderedWorkloads(): Promise<Map<string, Workload>> {
  const manifest = await helm(["get", "manifest", target().release]);
  const byName = new Map<string, Workload>();
  for (const doc of parseAllDocuments(manifest)) {
    const obj = doc.toJS() as (Workload & { template?: Workload["spec"]["template"] }) | null;
    if (obj && (obj.kind === "Deployment" || obj.kind === "StatefulSet")) byName.set(obj.metadata.name, obj);
    if (obj?.kind === "PodTemplate" && obj.template) byName.set(obj.metadata.name, { ...obj, spec: { template: obj.template } });
  }
  return byName;
}

/** `expected`'s fields are all in `actual` with the same values (the API server adds defaults). */
function expectSubset(actual: unknown, expected: unknown, path: string): void {
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    expect(actual, path).toBeTypeOf("object");
    for (const [key, value] of Object.entries(expected)) expectSubset((actual as Record<string, unknown>)[key], value, `${path}.${key}`);
  } else if (Array.isArray(expected)) {
    expect(Array.isArray(actual), path).toBe(true);
    expected.forEach((value, i) => expectSubset((actual as unknown[])[i], value, `${path}[${i}]`));
  } else {
    expect(actual, path).toEqual(expected);
  }
}

describe("scenario 1: install on a real node", () => {
  it("has every Deployment and StatefulSet of the release Ready", async () => {
    const t0 = Date.now();
    const workloads = await eventually(
      "every workload Ready",
      async () => {
        const list = await kubectlJson<List<Workload>>(["get", "deployments,statefulsets", "-l", `app.kubernetes.io/instance=${target().release}`]);
        const notReady = list.items.filter((w) => (w.status.readyReplicas ?? 0) < (w.spec.replicas ?? 1));
        return notReady.length === 0 && list.items.length > 0 ? list.items : undefined;
      },
      READY_WITHIN_MS,
      2_000,
    );
    const names = workloads.map((w) => w.metadata.name).sort();
    expect(names).toEqual(expect.arrayContaining(["docflow-gateway", "docflow-processor", "docflow-web", "docflow-rabbitmq", "docflow-nats", "docflow-s3"]));
    process.stderr.write(`[cluster] ${names.length} workloads Ready ${Math.round((Date.now() - t0) / 1000)} s into the test\n`);
    // Nothing restarted since the release was last deployed: probes and start-up agree with each
    // other. (A container may have restarted before it, when the node itself was restarted: the
    // cluster outlives a run.)
    const status = JSON.parse(await helm(["status", target().release, "-o", "json"])) as { info: { last_deployed: string } };
    const deployed = Date.parse(status.info.last_deployed);
    for (const component of [...DOCFLOW, "rabbitmq", "nats", "s3"]) {
      for (const pod of await pods(component)) {
        for (const c of pod.status.containerStatuses ?? []) {
          const ended = (c as { lastState?: { terminated?: { finishedAt?: string; reason?: string } } }).lastState?.terminated;
          if (c.restartCount > 0 && ended?.finishedAt) {
            expect(Date.parse(ended.finishedAt), `${pod.metadata.name}/${c.name} restarted after the deploy (${ended.reason})`).toBeLessThan(deployed);
          }
        }
      }
    }
  });

  it("passes `helm test`", async () => {
    // The test pod is deleted once it succeeded (hook-delete-policy), so its logs are not asked for.
    const out = await helm(["test", target().release, "--timeout", "3m"]);
    expect(out).toMatch(/TEST SUITE:\s+docflow-test-gateway[\s\S]*Phase:\s+Succeeded/);
  });

  it("runs docflow's pods as uid 10001 on a read-only root with the rendered probes and grace periods", async () => {
    const rendered = await renderedWorkloads();
    for (const component of DOCFLOW) {
      const name = `docflow-${component}`;
      const want = rendered.get(name);
      expect(want, `${name} in the release manifest`).toBeDefined();
      const live = await pods(component);
      expect(live.length).toBeGreaterThan(0);
      for (const pod of live) {
        expect(isReady(pod), `${pod.metadata.name} Ready`).toBe(true);
        const container = pod.spec.containers.find((c) => c.name === component)!;
        const wanted = want!.spec.template.spec.containers.find((c) => c.name === component)!;
        // Probes and the preStop hook as rendered, on the live pod.
        for (const field of ["livenessProbe", "readinessProbe", "startupProbe", "lifecycle"] as const) {
          if (wanted[field] !== undefined) expectSubset(container[field], wanted[field], `${pod.metadata.name}.${field}`);
        }
        expectSubset(pod.spec.securityContext, { runAsNonRoot: true, runAsUser: 10001 }, `${pod.metadata.name}.securityContext`);
        expectSubset(container.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }, `${pod.metadata.name}.container.securityContext`);
        expect(pod.spec.terminationGracePeriodSeconds).toBe((want!.spec.template.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds);

        // And as the kernel sees it, from inside the container.
        const status = await kubectl(["exec", pod.metadata.name, "-c", component, "--", "cat", "/proc/1/status"]);
        expect(status).toMatch(/^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
        const write = await kubectl(["exec", pod.metadata.name, "-c", component, "--", "sh", "-c", "touch /probe-root 2>&1; echo exit=$?"]).catch((err: Error) => err.message);
        expect(write).toMatch(/Read-only file system/);
        expect(write).toMatch(/exit=1/);
      }
    }
  });

  it("serves the web app and the API through the ingress controller", async () => {
    const { baseUrl } = target();
    const index = await fetch(`${baseUrl}/`);
    expect(index.status).toBe(200);
    expect(await index.text()).toContain('<div id="app"');
    const health = await fetch(`${baseUrl}/v1/openapi.json`);
    expect(health.status).toBe(200);
    expect(health.headers.get("content-type")).toMatch(/application\/json/);
    // Unauthenticated API calls are refused by the gateway itself, behind the ingress.
    const jobs = await fetch(`${baseUrl}/v1/jobs`);
    expect(jobs.status).toBe(401);
  });

  it("generated the NATS auth material in the cluster, once: the hook Job's Secret", async () => {
    const secret = await kubectlJson<KubeObject & { data: Record<string, string> }>(["get", "secret", `${target().release}-nats-auth`]);
    expect(Object.keys(secret.data).sort()).toEqual(["account", "nats-server-auth.conf", "nats.creds", "signing-seed"]);
    expect(Buffer.from(secret.data["signing-seed"]!, "base64").toString()).toMatch(/^SA[A-Z2-7]{56}$/);
    // The Job and its RBAC are hook objects: gone once it succeeded.
    const jobs = await kubectlJson<List<KubeObject>>(["get", "jobs", "-l", "app.kubernetes.io/component=nats-auth"]);
    expect(jobs.items).toEqual([]);
    const gateway = (await pods("gateway"))[0] as Pod;
    const env = await kubectl(["exec", gateway.metadata.name, "-c", "gateway", "--", "sh", "-c", "echo $DOCFLOW_REALTIME_ACCOUNT"]);
    expect(env.trim()).toBe(Buffer.from(secret.data.account!, "base64").toString());
  });
});
