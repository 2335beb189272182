import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  type KubeConfig,
  type KubernetesListObject,
  type V1Deployment,
  type V1EnvVar,
  type V1Pod,
  type V1PodTemplate,
} from "@kubernetes/client-node";
import type { Stage } from "@docflow/contracts";
import type { Logger } from "@docflow/telemetry";
import type { Backlog, BacklogReader } from "./backlog.ts";
import type { OperatorConfig } from "./config.ts";
import { Informer } from "./informers.ts";
import {
  DELETION_COST,
  FIELD_MANAGER,
  GROUP,
  KIND,
  MANAGED_BY,
  PLURAL,
  POOL_LABEL,
  PROCESSOR_CONTAINER,
  VERSION,
  applyPatch,
  errorMessage,
  mergePatch,
  statusOf,
  type Condition,
  type ProcessorPool,
} from "./kube.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { decide, deletionCost, updateThroughput, withUninspected, type Decision, type History, type Observation, type PodState, type PolicySpec } from "./policy.ts";
import { readProcessor, type ProcessorSample } from "./pods.ts";
import { WorkQueue } from "./workqueue.ts";

/** Replica-seconds of one whole message, per stage (convert: the pool's secondsPerConversion). */
const SECONDS_PER_MESSAGE: Record<Exclude<Stage, "render">, number> = { inspect: 1, convert: 20, finish: 0.1 };

/** What the operator remembers about a pool between decisions (the leader's memory; a new leader starts afresh). */
interface PoolState {
  history: History;
  pagesPerSecond: number | null;
  /** Pages done per pod at the last sample, and when. */
  pagesByPod: Map<string, number>;
  sampledAtMs: number;
  busySince: Map<string, number>;
  lastDecision?: { time: string; direction: string; from: number; to: number; reason: string; message: string };
}

/**
 * Reconciles ProcessorPools: each becomes a Deployment (its PodTemplate plus the pool's
 * overrides, applied server-side as `docflow-operator`), scaled by the policy (policy.ts) on the
 * backlog read from RabbitMQ and the job store, with idle pods removed first. Every change to a
 * pool, its Deployment, its pods or its PodTemplate queues the pool; every pool is also queued
 * each interval, because the backlog moves without any Kubernetes event. Only the leader
 * (leader.ts) reconciles; every replica keeps its caches warm, so a new leader acts at once.
 */
export class PoolController {
  readonly #config: OperatorConfig;
  readonly #log: Logger;
  readonly #metrics: OperatorMetrics;
  readonly #backlog: BacklogReader;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  readonly #objects: KubernetesObjectApi;
  readonly #ns: string;
  readonly pools: Informer<ProcessorPool>;
  readonly deployments: Informer<V1Deployment>;
  readonly pods: Informer<V1Pod>;
  readonly templates: Informer<V1PodTemplate>;
  readonly #queue: WorkQueue;
  readonly #state = new Map<string, PoolState>();
  #leading = false;
  #resync: NodeJS.Timeout | undefined;
  #snapshot: { at: number; value: Promise<Backlog> } | undefined;
  /** Page counts of the jobs seen inspected (distinct), for pricing the ones not inspected yet. */
  readonly #jobPages = { seen: new Set<string>(), jobs: 0, pages: 0 };

  constructor(kc: KubeConfig, config: OperatorConfig, backlog: BacklogReader, metrics: OperatorMetrics, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.#metrics = metrics;
    this.#backlog = backlog;
    this.#ns = config.DOCFLOW_OPERATOR_NAMESPACE;
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#apps = kc.makeApiClient(AppsV1Api);
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
    const ns = this.#ns;
    this.pools = new Informer<ProcessorPool>(
      kc,
      "processorpools",
      `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`,
      async () => (await this.#custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL })) as KubernetesListObject<ProcessorPool>,
      log,
    );
    const managed = Object.entries(MANAGED_BY)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    this.deployments = new Informer<V1Deployment>(
      kc,
      "deployments",
      `/apis/apps/v1/namespaces/${ns}/deployments`,
      () => this.#apps.listNamespacedDeployment({ namespace: ns, labelSelector: managed }),
      log,
      managed,
    );
    this.pods = new Informer<V1Pod>(kc, "pods", `/api/v1/namespaces/${ns}/pods`, () => this.#core.listNamespacedPod({ namespace: ns, labelSelector: POOL_LABEL }), log, POOL_LABEL);
    this.templates = new Informer<V1PodTemplate>(kc, "podtemplates", `/api/v1/namespaces/${ns}/podtemplates`, () => this.#core.listNamespacedPodTemplate({ namespace: ns }), log);
    this.#queue = new WorkQueue((key) => this.#reconcileKey(key));

    const byLabel = (obj: { metadata?: { labels?: Record<string, string> } }) => {
      const pool = obj.metadata?.labels?.[POOL_LABEL];
      if (pool) this.#enqueue(pool);
    };
    // A pool is queued when its spec, deletion or finalizers change, not when its status does:
    // the operator writes the status at every reconcile, and would otherwise queue itself forever.
    const seen = new Map<string, string>();
    const onPool = (pool: ProcessorPool, deleted = false) => {
      const name = pool.metadata.name;
      const version = `${pool.metadata.generation}|${String(pool.metadata.deletionTimestamp ?? "")}|${(pool.metadata.finalizers ?? []).join(",")}`;
      if (deleted) seen.delete(name);
      else if (seen.get(name) === version) return;
      else seen.set(name, version);
      this.#enqueue(name);
    };
    this.pools.on("add", (pool) => onPool(pool));
    this.pools.on("update", (pool) => onPool(pool));
    this.pools.on("delete", (pool) => onPool(pool, true));
    for (const verb of ["add", "update", "delete"] as const) {
      this.deployments.on(verb, byLabel);
      this.pods.on(verb, byLabel);
      this.templates.on(verb, (tpl) => {
        for (const pool of this.pools.list(ns)) if (pool.spec?.template?.podTemplateName === tpl.metadata?.name) this.#enqueue(pool.metadata.name);
      });
    }
  }

  get synced(): boolean {
    return this.pools.hasSynced && this.deployments.hasSynced && this.pods.hasSynced && this.templates.hasSynced;
  }

  get leading(): boolean {
    return this.#leading;
  }

  async start(): Promise<void> {
    await Promise.all([this.pools.start(), this.deployments.start(), this.pods.start(), this.templates.start()]);
  }

  startLeading(): void {
    this.#leading = true;
    this.#metrics.leader.set(1);
    // A new leader knows nothing of the last one's history: it starts from what it sees.
    this.#state.clear();
    const tick = () => {
      for (const pool of this.pools.list(this.#ns)) this.#enqueue(pool.metadata.name);
    };
    tick();
    this.#resync = setInterval(tick, this.#config.DOCFLOW_OPERATOR_INTERVAL_SECONDS * 1000);
    this.#resync.unref();
  }

  stopLeading(): void {
    this.#leading = false;
    this.#metrics.leader.set(0);
    clearInterval(this.#resync);
  }

  async stop(): Promise<void> {
    this.stopLeading();
    await this.#queue.shutDown();
    await Promise.all([this.pools.stop(), this.deployments.stop(), this.pods.stop(), this.templates.stop()]);
  }

  #enqueue(name: string): void {
    if (this.#leading) this.#queue.add(name);
  }

  async #reconcileKey(name: string): Promise<void> {
    if (!this.#leading) return;
    const end = this.#metrics.reconcileDuration.startTimer({ pool: name });
    try {
      await this.#reconcile(name);
      this.#queue.forget(name);
      end({ outcome: "ok" });
    } catch (err) {
      end({ outcome: "error" });
      this.#metrics.reconcileErrors.inc({ pool: name });
      const retryInMs = this.#queue.addRateLimited(name);
      this.#log.warn({ pool: name, err: errorMessage(err), retryInMs }, "reconcile failed; retrying");
    }
  }

  async #reconcile(name: string): Promise<void> {
    const pool = this.pools.get(name, this.#ns);
    // No finalizer: the Deployment's owner reference lets the garbage collector delete it (its
    // processors then drain within their grace period, as on any scale-in), and nothing else needs
    // cleaning up. A finalizer would leave the pool, and its namespace, stuck in Terminating
    // whenever the operator goes first, as it does on `helm uninstall` or a namespace deletion.
    if (!pool || pool.metadata.deletionTimestamp) {
      this.#forget(name);
      return;
    }
    const state = this.#stateOf(name);
    const template = this.templates.get(pool.spec.template.podTemplateName, this.#ns);
    if (!template?.template) {
      const message = `PodTemplate ${pool.spec.template.podTemplateName} not found in ${this.#ns}`;
      await this.#writeStatus(pool, state, { conditions: [cond("Ready", "False", "TemplateMissing", message), cond("Degraded", "True", "TemplateMissing", message)] });
      await this.#event(pool, "Warning", "TemplateMissing", message);
      return;
    }
    const deployment = this.deployments.get(name, this.#ns);
    const pods = this.pods.list(this.#ns).filter((p) => p.metadata?.labels?.[POOL_LABEL] === name && !p.metadata?.deletionTimestamp);
    const nowMs = Date.now();
    const samples = await this.#sample(pods);
    this.#measure(state, pods, samples, nowMs);

    let backlog: Backlog | undefined;
    let backlogError: string | undefined;
    try {
      backlog = await this.#readBacklog();
    } catch (err) {
      backlogError = (err as Error).message;
    }
    const spec = this.#policySpec(pool);
    const current = deployment?.spec?.replicas ?? Math.max(spec.minReplicas, Math.min(pool.spec.replicas ?? spec.minReplicas, spec.maxReplicas));
    const podStates: PodState[] = pods.map((p) => {
      const sample = samples.get(p.metadata!.name!);
      return { name: p.metadata!.name!, ready: isReady(p), inFlight: sample ? sample.inFlight : null, busySinceMs: state.busySince.get(p.metadata!.name!) ?? null };
    });
    const observation = this.#observe(pool, backlog, backlogError, state, current, podStates, nowMs);
    const decision = decide(spec, observation, state.history);
    state.history = decision.history;

    if (decision.direction === "down") await this.#markDeletionCosts(podStates, pods);
    await this.#applyDeployment(pool, template, decision.replicas);
    if (decision.direction !== "none") {
      this.#metrics.decisions.inc({ pool: name, direction: decision.direction, reason: decision.reason });
      await this.#event(pool, "Normal", decision.direction === "up" ? "ScaledUp" : "ScaledDown", `${current} -> ${decision.replicas} replicas (${decision.reason}): ${decision.message}`);
      this.#log.info({ pool: name, from: current, to: decision.replicas, reason: decision.reason, message: decision.message }, "scaled");
    }
    // The last change (and, until there is one, the first decision): why the pool has the size it
    // has. What the operator thinks now, change or not, is in the Scaling condition.
    if (decision.direction !== "none" || !state.lastDecision) {
      state.lastDecision = {
        time: new Date(nowMs).toISOString(),
        direction: decision.direction,
        from: current,
        to: decision.replicas,
        reason: decision.reason,
        message: decision.message.slice(0, 1000),
      };
    }
    this.#recordBacklogMetrics(name, observation, backlog);
    await this.#writeStatus(pool, state, this.#statusFields(pool, deployment, podStates, observation, decision, backlog, backlogError, samples.size < pods.filter((p) => p.status?.podIP).length));
  }

  #stateOf(name: string): PoolState {
    let state = this.#state.get(name);
    if (!state) {
      state = { history: [], pagesPerSecond: null, pagesByPod: new Map(), sampledAtMs: 0, busySince: new Map() };
      this.#state.set(name, state);
    }
    return state;
  }

  #policySpec(pool: ProcessorPool): PolicySpec {
    const s = pool.spec;
    return {
      minReplicas: s.minReplicas,
      maxReplicas: s.maxReplicas,
      targetDrainSeconds: s.targetDrainSeconds,
      concurrency: s.template.concurrency ?? this.#config.DOCFLOW_PROCESSOR_CONCURRENCY,
      rangeWindow: this.#config.DOCFLOW_RANGE_WINDOW,
      taskTimeoutSeconds: this.#config.DOCFLOW_TASK_TIMEOUT_MS / 1000,
      scaleUp: { maxStep: s.scaleUp?.maxStep ?? 4 },
      scaleDown: { stabilizationSeconds: s.scaleDown?.stabilizationSeconds ?? 60, maxStep: s.scaleDown?.maxStep ?? 1 },
    };
  }

  /** The processors' own figures, read in parallel; a pod that does not answer is left out. */
  async #sample(pods: V1Pod[]): Promise<Map<string, ProcessorSample>> {
    const out = new Map<string, ProcessorSample>();
    await Promise.all(
      pods.map(async (pod) => {
        const ip = pod.status?.podIP;
        if (!ip || pod.status?.phase !== "Running") return;
        try {
          out.set(pod.metadata!.name!, await readProcessor(ip, this.#config.DOCFLOW_PROCESSOR_METRICS_PORT));
        } catch (err) {
          this.#log.debug({ pod: pod.metadata?.name, err: (err as Error).message }, "processor metrics unreadable");
        }
      }),
    );
    return out;
  }

  /** Pages/s per busy replica since the last sample, and since when each pod has been busy. */
  #measure(state: PoolState, pods: V1Pod[], samples: Map<string, ProcessorSample>, nowMs: number): void {
    let pages = 0;
    let busy = 0;
    for (const [pod, sample] of samples) {
      const before = state.pagesByPod.get(pod);
      // A pod new since the last sample, or restarted (its counter went back), adds nothing.
      if (before !== undefined && sample.pagesTotal >= before) pages += sample.pagesTotal - before;
      if (sample.inFlight > 0) {
        busy++;
        if (!state.busySince.has(pod)) state.busySince.set(pod, nowMs);
      } else {
        state.busySince.delete(pod);
      }
    }
    // Throughput is measured over about one interval: a reconcile queued by an event in between
    // (a pod became ready) keeps the baseline, so that no pages are lost to a short window.
    const seconds = (nowMs - state.sampledAtMs) / 1000;
    if (state.sampledAtMs === 0 || seconds >= this.#config.DOCFLOW_OPERATOR_INTERVAL_SECONDS * 0.8) {
      if (state.sampledAtMs > 0) state.pagesPerSecond = updateThroughput(state.pagesPerSecond, { pages, seconds, busyReplicas: busy });
      state.pagesByPod = new Map([...samples].map(([pod, s]) => [pod, s.pagesTotal]));
      state.sampledAtMs = nowMs;
    }
    const alive = new Set(pods.map((p) => p.metadata!.name!));
    for (const pod of state.busySince.keys()) if (!alive.has(pod)) state.busySince.delete(pod);
  }

  /** The mean page count of the jobs seen inspected so far (a new operator starts from a guess of 10). */
  #meanPages(backlog: Backlog): number {
    const seen = this.#jobPages;
    for (const job of backlog.jobs) {
      if (job.pages === null || seen.seen.has(job.key)) continue;
      if (seen.seen.size >= 100_000) seen.seen.clear(); // bounded memory; a job counted twice matters little
      seen.seen.add(job.key);
      seen.jobs++;
      seen.pages += job.pages;
    }
    return seen.jobs > 0 ? seen.pages / seen.jobs : 10;
  }

  /** One backlog read serves every pool queued in the same moment. */
  #readBacklog(): Promise<Backlog> {
    const maxAgeMs = Math.min(5000, (this.#config.DOCFLOW_OPERATOR_INTERVAL_SECONDS * 1000) / 2);
    if (!this.#snapshot || Date.now() - this.#snapshot.at > maxAgeMs) {
      const value = this.#backlog.read();
      this.#snapshot = { at: Date.now(), value };
      value.catch(() => {
        if (this.#snapshot?.value === value) this.#snapshot = undefined;
      });
    }
    return this.#snapshot.value;
  }

  #observe(pool: ProcessorPool, backlog: Backlog | undefined, backlogError: string | undefined, state: PoolState, current: number, pods: PodState[], nowMs: number): Observation {
    const stages = new Set(pool.spec.stages);
    const window = this.#config.DOCFLOW_RANGE_WINDOW;
    let pages = 0;
    let rangeTasks = 0;
    if (backlog && stages.has("render")) {
      for (const job of backlog.jobs) {
        pages += job.pagesLeft ?? 0;
        rangeTasks += Math.min(window, job.rangesLeft);
      }
    }
    const messages: Observation["messages"] = [];
    let wholeTasks = 0;
    for (const stage of ["inspect", "convert", "finish"] as const) {
      if (!stages.has(stage) || !backlog) continue;
      const count = backlog.ready[stage];
      wholeTasks += count;
      messages.push({ count, secondsPerMessage: stage === "convert" ? pool.spec.secondsPerConversion : SECONDS_PER_MESSAGE[stage] });
    }
    const observation: Observation = {
      nowMs,
      backlogKnown: backlog !== undefined,
      backlogError,
      pages,
      messages,
      parallelTasks: rangeTasks + wholeTasks,
      pagesPerSecondPerReplica: state.pagesPerSecond ?? pool.spec.pagesPerSecondEstimate,
      replicas: current,
      pods,
      requestedReplicas: pool.spec.replicas ?? null,
      paused: pool.spec.paused,
    };
    if (!backlog || !stages.has("render")) return observation;
    const uninspected = backlog.jobs.filter((j) => j.pages === null).length;
    return withUninspected(observation, uninspected, this.#meanPages(backlog), { rangeSize: this.#config.DOCFLOW_RANGE_SIZE, rangeWindow: window });
  }

  /** Idle pods cheapest to delete, so that the ReplicaSet removes them first when replicas drop. */
  async #markDeletionCosts(states: PodState[], pods: V1Pod[]): Promise<void> {
    await Promise.all(
      states.map(async (s) => {
        const pod = pods.find((p) => p.metadata?.name === s.name);
        const cost = String(deletionCost(s));
        if (!pod || pod.metadata?.annotations?.[DELETION_COST] === cost) return;
        try {
          await this.#core.patchNamespacedPod({ name: s.name, namespace: this.#ns, body: { metadata: { annotations: { [DELETION_COST]: cost } } }, fieldManager: FIELD_MANAGER }, mergePatch);
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      }),
    );
  }

  async #applyDeployment(pool: ProcessorPool, template: V1PodTemplate, replicas: number): Promise<void> {
    const name = pool.metadata.name;
    const tpl = structuredClone(template.template!);
    const labels = { ...(tpl.metadata?.labels ?? {}), [POOL_LABEL]: name };
    const spec = tpl.spec!;
    const container = spec.containers.find((c) => c.name === PROCESSOR_CONTAINER) ?? spec.containers[0];
    if (!container) throw new Error(`PodTemplate ${template.metadata?.name} has no containers`);
    const env: V1EnvVar[] = [...(container.env ?? [])];
    const setEnv = (key: string, value: string) => {
      const i = env.findIndex((e) => e.name === key);
      if (i >= 0) env[i] = { name: key, value };
      else env.push({ name: key, value });
    };
    for (const e of pool.spec.template.env ?? []) setEnv(e.name, e.value ?? "");
    setEnv("DOCFLOW_PROCESSOR_STAGES", pool.spec.stages.join(","));
    if (pool.spec.template.concurrency) setEnv("DOCFLOW_PROCESSOR_CONCURRENCY", String(pool.spec.template.concurrency));
    container.env = env;
    if (pool.spec.template.resources) container.resources = { ...container.resources, ...pool.spec.template.resources } as typeof container.resources;
    const deployment: V1Deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: {
        name,
        namespace: this.#ns,
        labels: { ...labels, ...MANAGED_BY },
        ownerReferences: [{ apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name, uid: pool.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        replicas,
        selector: { matchLabels: { [POOL_LABEL]: name } },
        // A new pod is Ready before an old one drains: capacity never drops during a rollout.
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: 0 } },
        revisionHistoryLimit: 5,
        template: { metadata: { ...tpl.metadata, labels }, spec },
      },
    };
    await this.#objects.patch(deployment, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  #statusFields(
    pool: ProcessorPool,
    deployment: V1Deployment | undefined,
    pods: PodState[],
    o: Observation,
    d: Decision,
    backlog: Backlog | undefined,
    backlogError: string | undefined,
    someUnreadable: boolean,
  ): Record<string, unknown> & { conditions: Condition[] } {
    const ready = deployment?.status?.readyReplicas ?? 0;
    const busy = pods.filter((p) => (p.inFlight ?? 0) > 0).length;
    const oldest = backlog?.jobs.reduce((min, j) => Math.min(min, j.createdAtMs), Infinity) ?? Infinity;
    const inFlight = pods.reduce((sum, p) => sum + (p.inFlight ?? 0), 0);
    const conditions: Condition[] = [];
    const wanted = d.replicas;
    conditions.push(
      ready >= Math.min(wanted, 1) && (deployment?.status?.updatedReplicas ?? 0) >= (deployment?.spec?.replicas ?? 0)
        ? cond("Ready", "True", "Available", `${ready} of ${wanted} processors ready`)
        : cond("Ready", "False", "PodsNotReady", `${ready} of ${wanted} processors ready`),
    );
    conditions.push(
      d.direction !== "none" || (deployment?.spec?.replicas ?? wanted) !== ready
        ? cond("Scaling", "True", d.direction === "none" ? "RollingOut" : d.reason, d.direction === "none" ? `waiting for ${wanted} ready processors` : `${o.replicas} -> ${d.replicas}: ${d.message}`)
        : cond("Scaling", "False", d.reason, d.message),
    );
    conditions.push(
      !backlog
        ? cond("Degraded", "True", "BacklogUnknown", `holding replicas: ${backlogError ?? "the backlog cannot be read"}`)
        : someUnreadable
          ? cond("Degraded", "True", "MetricsUnavailable", "some processors' /metrics could not be read: they are protected at scale-in as if busy")
          : cond("Degraded", "False", "AsExpected", "the backlog and every processor's metrics were read"),
    );
    return {
      replicas: deployment?.status?.replicas ?? 0,
      readyReplicas: ready,
      busyReplicas: busy,
      desiredReplicas: d.replicas,
      selector: `${POOL_LABEL}=${pool.metadata.name}`,
      deployment: pool.metadata.name,
      ...(backlog
        ? {
            backlog: {
              pages: o.pages,
              openJobs: backlog.jobs.length,
              oldestJobAgeSeconds: Number.isFinite(oldest) ? Math.max(0, Math.round((backlog.atMs - oldest) / 1000)) : 0,
              workSeconds: Math.round(d.workSeconds * 10) / 10,
              inFlightTasks: inFlight,
              stages: pool.spec.stages.map((stage) => ({ stage, readyMessages: backlog.ready[stage] })),
            },
          }
        : {}),
      pagesPerSecondPerReplica: Math.round(o.pagesPerSecondPerReplica * 100) / 100,
      throughputMeasured: this.#state.get(pool.metadata.name)?.pagesPerSecond != null,
      conditions,
    };
  }

  async #writeStatus(pool: ProcessorPool, state: PoolState, fields: Record<string, unknown> & { conditions: Condition[] }): Promise<void> {
    const previous = new Map((pool.status?.conditions ?? []).map((c) => [c.type, c]));
    const now = new Date().toISOString();
    const conditions = fields.conditions.map((c) => {
      const before = previous.get(c.type);
      return { ...c, observedGeneration: pool.metadata.generation ?? 0, lastTransitionTime: before && before.status === c.status ? (before.lastTransitionTime ?? now) : now };
    });
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: KIND,
      metadata: { name: pool.metadata.name, namespace: this.#ns },
      status: { ...fields, conditions, observedGeneration: pool.metadata.generation ?? 0, ...(state.lastDecision ? { lastDecision: state.lastDecision } : {}) },
    };
    await this.#custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace: this.#ns, plural: PLURAL, name: pool.metadata.name, body, fieldManager: FIELD_MANAGER, force: true },
      applyPatch,
    );
  }

  #recordBacklogMetrics(pool: string, o: Observation, backlog: Backlog | undefined): void {
    if (!backlog) return;
    this.#metrics.backlogPages.set({ pool }, o.pages);
    this.#metrics.backlogMessages.set(
      { pool },
      o.messages.reduce((s, m) => s + m.count, 0),
    );
    this.#metrics.pagesPerSecond.set({ pool }, o.pagesPerSecondPerReplica);
  }

  /** A pool that is gone: its state and its series in /metrics. */
  #forget(name: string): void {
    this.#state.delete(name);
    for (const gauge of [this.#metrics.backlogPages, this.#metrics.backlogMessages, this.#metrics.pagesPerSecond]) gauge.remove({ pool: name });
  }

  async #event(pool: ProcessorPool, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    const now = new Date();
    try {
      await this.#core.createNamespacedEvent({
        namespace: this.#ns,
        body: {
          metadata: { generateName: `${pool.metadata.name}.`, namespace: this.#ns },
          involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name: pool.metadata.name, namespace: this.#ns, uid: pool.metadata.uid, resourceVersion: pool.metadata.resourceVersion },
          reason,
          message: message.slice(0, 1024),
          type,
          source: { component: FIELD_MANAGER },
          reportingComponent: `${GROUP}/operator`,
          reportingInstance: this.#config.DOCFLOW_OPERATOR_POD_NAME,
          action: reason,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      // An Event is a record for people, not state: losing one never fails a reconcile.
      this.#log.warn({ pool: pool.metadata.name, reason, err: errorMessage(err) }, "could not write an Event");
    }
  }
}

function cond(type: Condition["type"], status: Condition["status"], reason: string, message: string): Condition {
  return { type, status, reason, message: message.slice(0, 1000) };
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}
