/**
 * The scaling policy of a processor pool, as a pure function: what the operator saw in, the
 * replica count and its reason out. No clock, no I/O: the reconciler and the simulator
 * (bench/autoscale.ts) call the same function.
 *
 * The goal is `targetDrainSeconds`: finish the current backlog within that many seconds. By
 * Little's law the replicas that do it are the work waiting (in replica-seconds: pages over the
 * pages/s one replica delivers, plus whole-message stages such as conversions at their measured
 * cost) over the goal. Two things bound it:
 * - the work that can run at once: a job has at most its range window of render messages in
 *   flight, so one 2,000-page document cannot use more than `rangeWindow / concurrency` replicas
 *   however long its backlog (a queue-length scaler sees 4 messages there; a page-count scaler
 *   without this bound would start 40 replicas that sit idle);
 * - `minReplicas` and `maxReplicas`.
 *
 * It scales out at once (up to `scaleUp.maxStep` pods per decision) and in slowly: the highest
 * recommendation of the last `scaleDown.stabilizationSeconds` wins, at most `scaleDown.maxStep`
 * pods go per decision, and never more pods than are idle: a pod holding tasks is only ever
 * removed when it has been busy longer than the task timeout (stuck; its work is redelivered).
 * The ReplicaSet removes the idle ones first because the operator has set their
 * `controller.kubernetes.io/pod-deletion-cost` below the busy ones' before it lowers replicas.
 *
 * When the broker or the job store cannot be read, the backlog is unknown: hold the current count
 * (within bounds) and say so.
 */

export interface PolicySpec {
  minReplicas: number;
  maxReplicas: number;
  /** Finish the current backlog within this many seconds. */
  targetDrainSeconds: number;
  /** Tasks one replica runs at once (its prefetch). */
  concurrency: number;
  /** Render messages of one job in flight at once. */
  rangeWindow: number;
  /** Longest one task may run: a pod busy longer than this is stuck and may be removed. */
  taskTimeoutSeconds: number;
  scaleUp: { maxStep: number };
  scaleDown: { stabilizationSeconds: number; maxStep: number };
}

export interface PodState {
  name: string;
  /** Ready (consuming): a pod that is not ready holds no work and is removed first. */
  ready: boolean;
  /** Tasks it runs now (from its metrics); null when they could not be read. */
  inFlight: number | null;
  /** Since when it has held at least one task (ms epoch); null when idle. */
  busySinceMs: number | null;
}

export interface Observation {
  nowMs: number;
  /** The backlog could be read (broker and job store). */
  backlogKnown: boolean;
  /** Why not, when it could not. */
  backlogError?: string | undefined;
  /** Pages not yet rendered across the open jobs of the pool's stages. */
  pages: number;
  /** Whole-message work waiting or running in the pool's other stages (inspect, convert, finish), with its cost per message. */
  messages: { count: number; secondsPerMessage: number }[];
  /** Tasks that could run at once: per job, min(range window, its ranges not done), plus the whole messages. */
  parallelTasks: number;
  /** Pages per second one busy replica delivers (measured; the spec's estimate until measured). */
  pagesPerSecondPerReplica: number;
  /** The Deployment's replicas now. */
  replicas: number;
  pods: PodState[];
  /** A replica count asked for from outside (`kubectl scale`, an HPA or KEDA on the /scale subresource), if any. */
  requestedReplicas?: number | null | undefined;
  paused?: boolean | undefined;
}

/** Past recommendations (ms epoch, replicas): the scale-down stabilisation window. */
export type History = readonly { atMs: number; replicas: number }[];

export type Direction = "up" | "down" | "none";
export type Reason = "Paused" | "BacklogUnknown" | "Requested" | "Backlog" | "BacklogDrained" | "Stabilizing" | "BusyPodsProtected" | "AtMaxReplicas" | "AtMinReplicas" | "Steady";

export interface Decision {
  replicas: number;
  direction: Direction;
  reason: Reason;
  message: string;
  /** What the backlog alone asks for (before stabilisation and protection), for the status and the history. */
  recommended: number;
  /** Replica-seconds of work waiting. */
  workSeconds: number;
  /** The history to keep for the next decision. */
  history: History;
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/** What the backlog asks for, bounded by the parallelism there is and by min/max. */
export function recommend(spec: PolicySpec, o: Observation): { replicas: number; workSeconds: number; byBacklog: number; byParallelism: number } {
  const rate = Math.max(o.pagesPerSecondPerReplica, 1e-6);
  const workSeconds = o.pages / rate + o.messages.reduce((sum, m) => sum + m.count * m.secondsPerMessage, 0);
  const byBacklog = Math.ceil(workSeconds / Math.max(spec.targetDrainSeconds, 1));
  const byParallelism = Math.ceil(o.parallelTasks / Math.max(spec.concurrency, 1));
  // Pods holding work are kept at scale-in by decide (removablePods), not by the estimate.
  const replicas = clamp(Math.min(byBacklog, byParallelism), spec.minReplicas, spec.maxReplicas);
  return { replicas, workSeconds, byBacklog, byParallelism };
}

/** Pods that may go at scale-in: not ready, idle, or busy longer than the task timeout. */
export function removablePods(spec: PolicySpec, o: Observation): number {
  return (
    o.pods.filter((p) => !p.ready || p.inFlight === 0 || (p.busySinceMs !== null && o.nowMs - p.busySinceMs > spec.taskTimeoutSeconds * 1000)).length +
    // Pods the Deployment wants but that do not exist yet (pending creation) cost nothing to drop.
    Math.max(0, o.replicas - o.pods.length)
  );
}

export function decide(spec: PolicySpec, o: Observation, past: History): Decision {
  const current = o.replicas;
  const windowStart = o.nowMs - spec.scaleDown.stabilizationSeconds * 1000;
  const kept = past.filter((h) => h.atMs > windowStart);
  const base = { workSeconds: 0, recommended: current };
  const hold = (reason: Reason, message: string, replicas = current): Decision => ({
    ...base,
    replicas,
    direction: replicas > current ? "up" : replicas < current ? "down" : "none",
    reason,
    message,
    history: kept,
  });

  if (o.paused) return hold("Paused", "the pool is paused: replicas are left as they are");
  if (o.requestedReplicas !== null && o.requestedReplicas !== undefined) {
    return scaleTo(spec, o, kept, clamp(o.requestedReplicas, 0, spec.maxReplicas), o.requestedReplicas, 0, "Requested", `spec.replicas asks for ${o.requestedReplicas}`);
  }
  if (!o.backlogKnown) {
    const replicas = clamp(current, spec.minReplicas, spec.maxReplicas);
    return hold("BacklogUnknown", `the backlog cannot be read (${o.backlogError ?? "unknown error"}); holding ${replicas} replicas`, replicas);
  }

  const r = recommend(spec, o);
  const history = [...kept, { atMs: o.nowMs, replicas: r.replicas }];
  const what = `${o.pages} pages and ${o.messages.reduce((s, m) => s + m.count, 0)} messages waiting, ${r.workSeconds.toFixed(0)} replica-seconds of work at ${o.pagesPerSecondPerReplica.toFixed(2)} pages/s per replica; ${o.parallelTasks} tasks can run at once`;
  if (r.replicas >= current) {
    const target = Math.min(r.replicas, current + Math.max(spec.scaleUp.maxStep, 1));
    const capped = target === spec.maxReplicas && r.byBacklog > spec.maxReplicas;
    const reason: Reason = capped ? "AtMaxReplicas" : target > current ? "Backlog" : current === spec.minReplicas ? "AtMinReplicas" : "Steady";
    return { replicas: target, direction: target > current ? "up" : "none", reason, message: what, recommended: r.replicas, workSeconds: r.workSeconds, history };
  }
  // Scale-in: the highest recommendation in the window.
  // (Never above maxReplicas: a lowered maximum applies at once, still removing idle pods only.)
  const stabilized = Math.min(spec.maxReplicas, Math.max(r.replicas, ...history.map((h) => h.replicas)));
  if (stabilized >= current) {
    return {
      replicas: current,
      direction: "none",
      reason: "Stabilizing",
      message: `${what}; the backlog asks for ${r.replicas}, but the last ${spec.scaleDown.stabilizationSeconds} s asked for up to ${stabilized}`,
      recommended: r.replicas,
      workSeconds: r.workSeconds,
      history,
    };
  }
  return scaleTo(spec, o, history, stabilized, r.replicas, r.workSeconds, "BacklogDrained", what);
}

/** Moves towards `target` (out at once, in step-limited and only by pods that may go). */
function scaleTo(spec: PolicySpec, o: Observation, history: History, target: number, recommended: number, workSeconds: number, reason: Reason, message: string): Decision {
  const current = o.replicas;
  if (target >= current) {
    const replicas = Math.min(target, current + Math.max(spec.scaleUp.maxStep, 1));
    return { replicas, direction: replicas > current ? "up" : "none", reason: replicas === current && reason !== "Requested" ? "Steady" : reason, message, recommended, workSeconds, history };
  }
  const stepped = Math.max(target, current - Math.max(spec.scaleDown.maxStep, 1));
  const floor = current - removablePods(spec, o);
  const replicas = Math.max(stepped, floor);
  if (replicas >= current) {
    return { replicas: current, direction: "none", reason: "BusyPodsProtected", message: `${message}; would scale in to ${stepped}, but every pod holds work`, recommended, workSeconds, history };
  }
  const protectedNote = replicas > stepped ? `; ${replicas - stepped} more kept because they hold work` : "";
  return { replicas, direction: "down", reason: replicas > stepped ? "BusyPodsProtected" : reason, message: `${message}${protectedNote}`, recommended, workSeconds, history };
}

/**
 * The pages/s one replica delivers, smoothed (EWMA). A sample counts only when the pool was
 * busy enough to say something about capacity: pages done and at least `minBusyReplicaSeconds`
 * of busy replicas. When the pool idles, demand, not capacity, limits the rate, and the estimate
 * is kept.
 */
export function updateThroughput(previous: number | null, sample: { pages: number; seconds: number; busyReplicas: number }, alpha = 0.3, minBusyReplicaSeconds = 5): number | null {
  // A sliver of work (one range straddling the window's start) says nothing about capacity.
  if (sample.seconds <= 0 || sample.pages <= 0 || sample.busyReplicas * sample.seconds < minBusyReplicaSeconds) return previous;
  const perReplica = sample.pages / sample.seconds / sample.busyReplicas;
  return previous === null ? perReplica : previous + alpha * (perReplica - previous);
}

/**
 * Jobs not inspected yet are one inspect message each, but they bring their pages: counted at one
 * message, a burst of uploads would be seen one decision late, when inspection has split them.
 * Each is priced at `meanPages` (the mean page count of the jobs seen so far), with the ranges it
 * will be able to run at once.
 */
export function withUninspected(o: Observation, uninspected: number, meanPages: number, split: { rangeSize: number; rangeWindow: number }): Observation {
  if (uninspected <= 0 || meanPages <= 0) return o;
  return {
    ...o,
    pages: o.pages + uninspected * meanPages,
    parallelTasks: o.parallelTasks + uninspected * Math.min(split.rangeWindow, Math.ceil(meanPages / split.rangeSize)),
  };
}

/** The deletion cost the operator gives a pod: idle and unready pods lowest, busy ones by their tasks. */
export function deletionCost(pod: PodState): number {
  if (!pod.ready) return -1000;
  if (pod.inFlight === null) return 100; // unknown: assume it may be busy, but below a known-busy pod
  return pod.inFlight === 0 ? 0 : 1000 * pod.inFlight;
}
