/**
 * The operator (services/operator) against a real kube-apiserver (envtest style: no kubelet, no
 * controller-manager, so no pods run and nothing garbage-collects) with the CRD from the chart,
 * and real RabbitMQ and NATS for the backlog. Operator processes run as they do in a pod, with a
 * kubeconfig instead of a ServiceAccount.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "amqplib";
import { v7 as uuidv7 } from "uuid";
import type { NatsConnection } from "@nats-io/transport-node";
import type { JobRecord } from "@docflow/contracts";
import { JobStore, assertTopology, workQueue } from "@docflow/infra";
import { launchService, type ServiceProcess } from "@docflow/tools/launch";
import { kubectl, startApiServer, stopApiServer, tail, type ApiServer } from "../support/apiserver.ts";
import { connectTestNats, testServices, uniqueName } from "../support/env.ts";
import { eventually } from "../support/poll.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CRD = join(ROOT, "charts", "docflow", "crds", "processorpools.docflow.io.yaml");
const NS = "pools";

interface Operator {
  name: string;
  process: ServiceProcess;
  port: number;
  log(): string[];
}

let api: ApiServer | undefined;
let startError: unknown;
let nc: NatsConnection;
let jobs: JobStore;
const bucket = uniqueName("opjobs");
const amqpNamespace = uniqueName("op");
const operators: Operator[] = [];

function cluster(): ApiServer {
  if (!api) throw startError instanceof Error ? startError : new Error(String(startError));
  return api;
}

function k(args: string[], input?: string) {
  return kubectl(cluster(), args, input);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- kubectl's JSON, read field by field in the assertions
function getJson<T = Record<string, any>>(args: string[]): T {
  const r = k([...args, "-o", "json"]);
  if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  return eventually(what, probe, { timeoutMs, context: () => `operators:\n${operators.map((o) => `${o.name}: ${o.log().slice(-8).join("\n")}`).join("\n")}` });
}

async function startOperator(name: string, namespace = NS, env: Record<string, string> = {}): Promise<Operator> {
  const services = testServices();
  const child = launchService("operator", {
    telemetry: false,
    env: {
      PATH: process.env["PATH"] ?? "",
      KUBECONFIG: cluster().kubeconfig,
      DOCFLOW_OPERATOR_NAMESPACE: namespace,
      DOCFLOW_OPERATOR_POD_NAME: name,
      DOCFLOW_OPERATOR_LEASE_NAME: "docflow-operator",
      DOCFLOW_OPERATOR_LEASE_SECONDS: "4",
      DOCFLOW_OPERATOR_INTERVAL_SECONDS: "1",
      DOCFLOW_OPERATOR_PORT: "0",
      DOCFLOW_OPERATOR_HOST: "127.0.0.1",
      DOCFLOW_AMQP_URL: services.amqpUrl,
      DOCFLOW_AMQP_NAMESPACE: amqpNamespace,
      DOCFLOW_NATS_URL: services.natsUrl,
      DOCFLOW_NATS_CREDS: services.nats.credsFile,
      DOCFLOW_JOBS_BUCKET: bucket,
      DOCFLOW_PROCESSOR_CONCURRENCY: "2",
      DOCFLOW_RANGE_WINDOW: "4",
      ...env,
    },
  });
  const operator: Operator = { name, process: child, port: 0, log: () => child.logs().split("\n").filter(Boolean) };
  operators.push(operator);
  const running = await child.waitForLine((l) => l.includes("operator running") && /"port":\d+/.test(l), "that it is running");
  operator.port = Number(/"port":(\d+)/.exec(running)![1]);
  return operator;
}

async function metricOf(op: Operator, metric: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(metric));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : NaN;
}

const podTemplate = (name: string) => ({
  apiVersion: "v1",
  kind: "PodTemplate",
  metadata: { name, namespace: NS },
  template: {
    metadata: { labels: { "app.kubernetes.io/name": "docflow", "app.kubernetes.io/component": "processor" }, annotations: { "checksum/config": "1" } },
    spec: {
      terminationGracePeriodSeconds: 170,
      containers: [{ name: "processor", image: "processor:test", env: [{ name: "DOCFLOW_RANGE_WINDOW", value: "4" }] }],
    },
  },
});

const pool = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: "docflow.io/v1alpha1",
  kind: "ProcessorPool",
  metadata: { name, namespace: NS },
  spec: {
    template: { podTemplateName: "processor" },
    minReplicas: 1,
    maxReplicas: 8,
    targetDrainSeconds: 60,
    pagesPerSecondEstimate: 5,
    scaleUp: { maxStep: 10 },
    scaleDown: { stabilizationSeconds: 0, maxStep: 10 },
    ...spec,
  },
});

const apply = (obj: unknown) => {
  const r = k(["apply", "--server-side", "--field-manager=test", "-f", "-"], JSON.stringify(obj));
  if (r.status !== 0) throw new Error(r.stderr);
  return r;
};

function openJob(pages: number): JobRecord {
  const now = new Date().toISOString();
  const id = uuidv7();
  const ranges = Array.from({ length: Math.ceil(pages / 8) }, (_, i) => ({ first: i * 8 + 1, last: Math.min(pages, i * 8 + 8) }));
  return {
    id,
    tenant: "acme",
    status: "processing",
    filename: "big.pdf",
    contentType: "application/pdf",
    size: 1000,
    sha256: "0".repeat(64),
    pageCount: pages,
    pagesDone: 0,
    createdAt: now,
    updatedAt: now,
    sourceKey: `tenants/acme/jobs/${id}/source`,
    ranges,
    rangesDone: [],
    rangesDispatched: 4,
  };
}

describe("the operator on a real API server, with real RabbitMQ and NATS", () => {
  beforeAll(async () => {
    try {
      api = await startApiServer();
    } catch (err) {
      startError = err;
      return;
    }
    nc = await connectTestNats();
    jobs = await JobStore.open(nc, bucket);
    expect(k(["apply", "-f", CRD]).status).toBe(0);
    expect(k(["wait", "--for=condition=Established", "--timeout=60s", "crd/processorpools.docflow.io"]).status).toBe(0);
    expect(k(["create", "namespace", NS]).status).toBe(0);
    apply(podTemplate("processor"));
  }, 240_000);

  afterAll(async () => {
    await Promise.all(operators.map((o) => o.process.stop({ graceMs: 10_000 })));
    await nc?.drain().catch(() => {});
    if (api) await stopApiServer(api);
  }, 60_000);

  it("refuses invalid pools with the CRD's own messages", () => {
    const bad = k(["apply", "-f", "-"], JSON.stringify(pool("bad", { minReplicas: 5, maxReplicas: 2 })));
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain("minReplicas must not exceed maxReplicas");
    const stage = k(["apply", "-f", "-"], JSON.stringify(pool("bad", { stages: ["ocr"] })));
    expect(stage.stderr).toMatch(/spec\.stages\[0\]: Unsupported value: "ocr"/);
    const env = k(["apply", "-f", "-"], JSON.stringify(pool("bad", { template: { podTemplateName: "processor", env: [{ name: "DOCFLOW_PROCESSOR_STAGES", value: "render" }] } })));
    expect(env.stderr).toContain("set stages and concurrency with spec.stages and spec.template.concurrency, not env");
    expect(k(["get", "processorpool", "bad", "-n", NS]).status).not.toBe(0);
  });

  it("elects exactly one leader of two replicas, and reconciles a pool into a Deployment it owns", async () => {
    const [a, b] = [await startOperator("operator-a"), await startOperator("operator-b")];
    apply(pool("render", { stages: ["render"], template: { podTemplateName: "processor", concurrency: 2, env: [{ name: "DOCFLOW_LOG_EXTRA", value: "1" }] } }));
    const leaders = await until("one leader", async () => {
      const flags = [await metricOf(a, "docflow_operator_leader"), await metricOf(b, "docflow_operator_leader")];
      return flags.filter((f) => f === 1).length === 1 && flags.filter((f) => f === 0).length === 1 ? flags : undefined;
    });
    const leader = leaders[0] === 1 ? a : b;
    const lease = getJson(["get", "lease", "docflow-operator", "-n", NS]);
    expect(lease.spec.holderIdentity).toBe(leader.name);

    const p = getJson(["get", "processorpool", "render", "-n", NS]);
    const d = await until("the Deployment", () => {
      const r = k(["get", "deployment", "render", "-n", NS, "-o", "json"]);
      return r.status === 0 ? JSON.parse(r.stdout) : undefined;
    });
    expect(d.metadata.ownerReferences).toEqual([{ apiVersion: "docflow.io/v1alpha1", kind: "ProcessorPool", name: "render", uid: p.metadata.uid, controller: true, blockOwnerDeletion: true }]);
    expect(d.spec.selector.matchLabels).toEqual({ "docflow.io/pool": "render" });
    expect(d.spec.template.metadata.labels).toMatchObject({ "app.kubernetes.io/component": "processor", "docflow.io/pool": "render" });
    expect(d.spec.template.metadata.annotations).toEqual({ "checksum/config": "1" });
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBe(170);
    const env = Object.fromEntries((d.spec.template.spec.containers[0].env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ DOCFLOW_RANGE_WINDOW: "4", DOCFLOW_PROCESSOR_STAGES: "render", DOCFLOW_PROCESSOR_CONCURRENCY: "2", DOCFLOW_LOG_EXTRA: "1" });
    expect(d.spec.replicas).toBe(1);
    const managers = (getJson(["get", "deployment", "render", "-n", NS, "--show-managed-fields"]).metadata.managedFields as { manager: string; operation: string }[]).map(
      (m) => `${m.manager}/${m.operation}`,
    );
    expect(managers).toContain("docflow-operator/Apply");

    const status = await until("the pool's status", () => {
      const s = getJson(["get", "processorpool", "render", "-n", NS]);
      return s.status?.observedGeneration === s.metadata.generation && s.status?.conditions ? s : undefined;
    });
    expect(status.metadata.finalizers ?? [], "no finalizer: nothing to clean up but the Deployment, which the garbage collector removes").toEqual([]);
    expect(status.status).toMatchObject({ desiredReplicas: 1, selector: "docflow.io/pool=render", backlog: { pages: 0, openJobs: 0 } });
    expect(status.status.conditions.map((c: { type: string }) => c.type).sort()).toEqual(["Degraded", "Ready", "Scaling"]);
    expect(status.status.conditions.find((c: { type: string }) => c.type === "Degraded")).toMatchObject({ status: "False" });
  }, 120_000);

  it("keeps another field manager's change to the Deployment", async () => {
    expect(k(["annotate", "deployment", "render", "-n", NS, "team.example.com/owner=docs"]).status).toBe(0);
    expect(k(["label", "deployment", "render", "-n", NS, "cost-center=42"]).status).toBe(0);
    const before = getJson(["get", "processorpool", "render", "-n", NS]).metadata.generation as number;
    expect(k(["patch", "processorpool", "render", "-n", NS, "--type=merge", "-p", '{"spec":{"template":{"env":[{"name":"DOCFLOW_LOG_EXTRA","value":"2"}]}}}']).status).toBe(0);
    const d = await until("the change applied", () => {
      const dep = getJson(["get", "deployment", "render", "-n", NS]);
      return dep.spec.template.spec.containers[0].env.some((e: { name: string; value: string }) => e.name === "DOCFLOW_LOG_EXTRA" && e.value === "2") ? dep : undefined;
    });
    expect(getJson(["get", "processorpool", "render", "-n", NS]).metadata.generation).toBeGreaterThan(before);
    expect(d.metadata.annotations["team.example.com/owner"]).toBe("docs");
    expect(d.metadata.labels["cost-center"]).toBe("42");
  }, 60_000);

  it("scales on a backlog of real jobs, says why in the status and an Event, and back when it drains", async () => {
    // 6 open jobs of 200 pages: 1200 pages at 5 pages/s per replica = 240 replica-s; goal 60 s -> 4.
    const open = await Promise.all(Array.from({ length: 6 }, () => jobs.create(openJob(200))));
    // The decision's own status write says "Backlog"; the reconcile after it, that the pool waits
    // for the new pods (a second later with DOCFLOW_OPERATOR_INTERVAL_SECONDS=1).
    const status = await until("a scale-out on the backlog, then the roll-out", () => {
      const s = getJson(["get", "processorpool", "render", "-n", NS]).status;
      const scaling = s?.conditions?.find((c: { type: string }) => c.type === "Scaling");
      return s?.desiredReplicas === 4 && scaling?.reason === "RollingOut" ? s : undefined;
    });
    expect(status.backlog).toMatchObject({ pages: 1200, openJobs: 6 });
    expect(status.backlog.workSeconds).toBeCloseTo(240, 0);
    expect(status.lastDecision).toMatchObject({ direction: "up", from: 1, to: 4, reason: "Backlog" });
    // No kubelet here: the new pods never become ready, and the pool says it waits for them.
    expect(status.conditions.find((c: { type: string }) => c.type === "Scaling")).toMatchObject({ status: "True", reason: "RollingOut", message: "waiting for 4 ready processors" });
    expect(status.conditions.find((c: { type: string }) => c.type === "Ready")).toMatchObject({ status: "False", reason: "PodsNotReady" });
    expect(getJson(["get", "deployment", "render", "-n", NS]).spec.replicas).toBe(4);
    const events = getJson(["get", "events", "-n", NS, "--field-selector", "involvedObject.name=render,involvedObject.kind=ProcessorPool"]).items as {
      reason: string;
      message: string;
      type: string;
    }[];
    expect(events.find((e) => e.reason === "ScaledUp")?.message).toMatch(/^1 -> 4 replicas \(Backlog\): 1200 pages/);
    // The printer columns show it.
    expect(k(["get", "processorpools", "-n", NS]).stdout).toMatch(/NAME\s+READY\s+BUSY\s+BACKLOG\s+DESIRED\s+AGE\nrender\s+\S*\s+\S*\s+1200\s+4\s/);

    for (const { record } of open) await jobs.update(record.tenant, record.id, (r) => ({ ...r, status: "completed", pagesDone: r.pageCount ?? 0, rangesDone: r.ranges.map((x) => x.first) }));
    const drained = await until("a scale-in once drained", () => {
      const s = getJson(["get", "processorpool", "render", "-n", NS]).status;
      return s?.desiredReplicas === 1 ? s : undefined;
    });
    expect(drained.lastDecision).toMatchObject({ direction: "down", from: 4, to: 1, reason: "BacklogDrained" });
    expect(getJson(["get", "deployment", "render", "-n", NS]).spec.replicas).toBe(1);
  }, 90_000);

  it("counts whole messages of a conversion pool at their cost, read from RabbitMQ", async () => {
    const conn = await connect(testServices().amqpUrl);
    try {
      const ch = await conn.createChannel();
      await assertTopology(ch, { namespace: amqpNamespace, deliveryLimit: 3 });
      for (let i = 0; i < 9; i++) ch.sendToQueue(workQueue(amqpNamespace, "convert"), Buffer.from("{}"));
      await ch.close();
    } finally {
      await conn.close();
    }
    apply(pool("office", { stages: ["convert"], secondsPerConversion: 20 }));
    // 9 conversions x 20 s = 180 replica-s over 60 s -> 3.
    const status = await until("the office pool's decision", () => {
      const s = getJson(["get", "processorpool", "office", "-n", NS]).status;
      return s?.desiredReplicas === 3 ? s : undefined;
    });
    expect(status.backlog.stages).toEqual([{ stage: "convert", readyMessages: 9 }]);
    expect(status.backlog.pages).toBe(0);
  }, 60_000);

  it("honours kubectl scale through the /scale subresource", async () => {
    expect(k(["scale", "processorpool", "office", "-n", NS, "--replicas=6"]).status).toBe(0);
    await until("the Deployment at 6", () => getJson(["get", "deployment", "office", "-n", NS]).spec.replicas === 6);
    const s = getJson(["get", "processorpool", "office", "-n", NS]).status;
    expect(s.lastDecision).toMatchObject({ reason: "Requested", to: 6 });
    const scale = k(["get", "--raw", `/apis/docflow.io/v1alpha1/namespaces/${NS}/processorpools/office/scale`]);
    expect(JSON.parse(scale.stdout)).toMatchObject({ kind: "Scale", spec: { replicas: 6 }, status: { selector: "docflow.io/pool=office" } });
  }, 60_000);

  it("hands over to the other replica when the leader is killed", async () => {
    const leaderName = getJson(["get", "lease", "docflow-operator", "-n", NS]).spec.holderIdentity as string;
    const leader = operators.find((o) => o.name === leaderName)!;
    const other = operators.find((o) => o.name !== leaderName && o.process.exitInfo() === undefined)!;
    await leader.process.stop({ signal: "SIGKILL" });
    await until("the takeover", async () => (await metricOf(other, "docflow_operator_leader")) === 1, 30_000);
    const lease = getJson(["get", "lease", "docflow-operator", "-n", NS]);
    expect(lease.spec.holderIdentity).toBe(other.name);
    expect(lease.spec.leaseTransitions).toBeGreaterThanOrEqual(1);
    // The new leader acts: a change to a pool is applied.
    expect(k(["scale", "processorpool", "office", "-n", NS, "--replicas=2"]).status).toBe(0);
    await until("the new leader's change", () => getJson(["get", "deployment", "office", "-n", NS]).spec.replicas === 2);
  }, 60_000);

  it("holds the replicas and says so when the broker cannot be reached", async () => {
    expect(k(["create", "namespace", "nobroker"]).status).toBe(0);
    apply({ ...podTemplate("processor"), metadata: { name: "processor", namespace: "nobroker" } });
    await startOperator("operator-nobroker", "nobroker", { DOCFLOW_AMQP_URL: "amqp://guest:guest@127.0.0.1:1" });
    apply({ ...pool("render", { minReplicas: 2 }), metadata: { name: "render", namespace: "nobroker" } });
    const s = await until("the Degraded condition", () => {
      const st = getJson(["get", "processorpool", "render", "-n", "nobroker"]).status;
      return st?.conditions?.some((c: { type: string; status: string }) => c.type === "Degraded" && c.status === "True") ? st : undefined;
    });
    const degraded = s.conditions.find((c: { type: string }) => c.type === "Degraded");
    expect(degraded.reason).toBe("BacklogUnknown");
    expect(degraded.message).toMatch(/RabbitMQ: .*ECONNREFUSED/);
    expect(s.lastDecision.reason).toBe("BacklogUnknown");
    expect(getJson(["get", "deployment", "render", "-n", "nobroker"]).spec.replicas).toBe(2);
  }, 90_000);

  it("deleting a pool holds nothing up: no finalizer, the Deployment owned for the garbage collector, the pool's series gone from /metrics", async () => {
    const leaderName = getJson(["get", "lease", "docflow-operator", "-n", NS]).spec.holderIdentity as string;
    const leader = operators.find((o) => o.name === leaderName && o.process.exitInfo() === undefined)!;
    const series = async () =>
      (await (await fetch(`http://127.0.0.1:${leader.port}/metrics`)).text()).split("\n").filter((l) => l.startsWith("docflow_operator_backlog_pages{") && l.includes('pool="office"'));
    expect(await series(), "the pool's backlog gauge before").toHaveLength(1);
    const pool = getJson(["get", "processorpool", "office", "-n", NS]);
    expect(pool.metadata.finalizers ?? []).toEqual([]);
    // Gone at once: nothing waits on the operator, which `helm uninstall` deletes in the same breath.
    expect(k(["delete", "processorpool", "office", "-n", NS, "--wait=true", "--timeout=10s"]).status).toBe(0);
    expect(k(["get", "processorpool", "office", "-n", NS]).stderr).toMatch(/NotFound/);
    // No controller-manager here: the Deployment stays, owned by the deleted pool, which is what
    // the garbage collector follows on a real cluster (tests/cluster, scenario 7's uninstall).
    const d = getJson(["get", "deployment", "office", "-n", NS]);
    expect(d.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: "ProcessorPool", name: "office", uid: pool.metadata.uid, controller: true, blockOwnerDeletion: true })]);
    await until("the pool's series gone", async () => ((await series()).length === 0 ? true : undefined), 30_000);
  }, 60_000);

  it("releases the Lease on SIGTERM, so that a successor does not wait for it to expire", async () => {
    const leaderName = getJson(["get", "lease", "docflow-operator", "-n", NS]).spec.holderIdentity as string;
    const leader = operators.find((o) => o.name === leaderName && o.process.exitInfo() === undefined)!;
    await leader.process.stop({ graceMs: 0 });
    expect(leader.process.exitInfo()).toBe("exit code 0, signal -");
    const lease = getJson(["get", "lease", "docflow-operator", "-n", NS]);
    expect(lease.spec.holderIdentity ?? "").toBe("");
    expect(leader.log().some((l) => l.includes("released the lease"))).toBe(true);
    void tail;
  }, 30_000);
});
