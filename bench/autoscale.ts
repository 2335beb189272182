/**
 * Which autoscaler serves docflow's processors best (issue 16)? A deterministic discrete-event
 * simulation (seeded RNG, no wall clock, a few seconds) replays arrival traces through one model of
 * the pipeline under each scaler and prints, per trace and scaler: jobs, p50 / p95 / max job
 * completion time (upload done -> last page rendered), replica-minutes, busy pods removed at
 * scale-in, tasks redelivered and the most replicas.
 *
 * Scalers (each evaluated every 15 s):
 *   operator   `decide()` of services/operator/src/policy.ts (imported, not copied), fed an
 *              Observation built from the model; its pods carry deletion costs (idle go first)
 *   keda       KEDA's rabbitmq trigger in QueueLength mode, one trigger per queue as the chart
 *              renders it (inspect, convert, render, render.express): ready messages only, the HPA
 *              takes the highest per-trigger proposal; `keda-sum`: ceil(ready messages summed / value)
 *   hpa-cpu    a CPU HorizontalPodAutoscaler (busy task slots / slots as the CPU utilisation)
 * KEDA and the HPA run the HPA's algorithm (10% tolerance, 300 s scale-down stabilisation, 1 pod
 * per 60 s down, max(4 pods, 100%) per 15 s up) and remove a random ready pod at scale-in.
 *
 *   node bench/autoscale.ts [--seed 1] [--json] [--drain] [--traces bursts,trickle,big] [--drain-seconds 20,60] [--timeline trace:scaler]
 *
 * --drain: a pod the HPA or KEDA removes finishes its tasks first (the processor drains on
 * SIGTERM) instead of losing them; it still counts as a busy pod removed.
 */
import { parseArgs } from "node:util";
// eslint-disable-next-line no-restricted-imports
import { decide, deletionCost, updateThroughput, withUninspected, type History, type Observation, type PolicySpec } from "../services/operator/src/policy.ts";
import { seededRandom } from "@docflow/tools/random";

// ---- The model's constants ------------------------------------------------------------------

/**
 * CPU seconds one page costs, one core per task. bench/results/2026-12-07-history.md: CPU per page of docflow (processor,
 * its poppler children and the services) 140-142 ms in `pipeline.ts` scaling runs (issue 5,
 * session 3), 120 ms (session 4), 106 ms (session 5, `pipeline.ts --only overhead`); the chart
 * requests one core per task (`processor.resources.requests.cpu` = concurrency), so a task renders
 * at ~1 / 0.14 = 7 pages/s and a replica at concurrency 2 at ~14. The conservative end is used.
 */
const PAGE_SECONDS = 0.14;
/** Fixed cost per range (message, the cached source, one pdftoppm started). */
const RANGE_OVERHEAD_SECONDS = 0.05;
/** One inspect message (download, pdfinfo, split, dispatch). bench/results/2026-12-07-history.md: a 1-page job takes ~0.2 s end to end on an idle machine; 0.3 s leaves room. */
const INSPECT_SECONDS = 0.3;
/** A PPTX -> PDF conversion (LibreOffice), one task slot. */
const CONVERT_SECONDS = 15;
/** Share of jobs that are PPTX (inspect, convert, inspect again, then render). */
const PPTX_SHARE = 0.1;
/** A new replica takes this long to become ready (image on the node, the node has room). */
const STARTUP_SECONDS = 20;
/** services/processor/src/config.ts defaults and the chart's. */
const CONCURRENCY = 2;
const RANGE_WINDOW = 4;
const RANGE_SIZE = 8;
const FIRST_RANGE_SIZE = 1;
const EXPRESS_MAX_PAGES = 16;
const TASK_TIMEOUT_SECONDS = 120;
/** Every scaler decides this often (KEDA's pollingInterval, the HPA's sync period). */
const TICK_SECONDS = 15;
const MIN_REPLICAS = 1;
const MAX_REPLICAS = 10;
/** The chart's rabbitmq trigger `value` (messagesPerPod). */
const KEDA_MESSAGES_PER_POD = 4;
const HPA_CPU_TARGET = 0.7;
const HPA_TOLERANCE = 0.1;
const HPA_DOWN_WINDOW_SECONDS = 300;
/** The operator's first pages/s-per-replica estimate, before it has measured any. */
const OPERATOR_RATE_ESTIMATE = 5;
/** Trace length, and how long after it replicas are still counted (scale-in is part of the cost). */
const TRACE_SECONDS = 3600;
const TAIL_SECONDS = 1200;

// ---- Random numbers -------------------------------------------------------------------------

const rng = seededRandom;
const uniformInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const exponential = (r: () => number, mean: number) => -mean * Math.log(1 - r());

// ---- Traces ---------------------------------------------------------------------------------

interface Arrival {
  at: number;
  pages: number;
  pptx: boolean;
}

const TRACES: Record<string, { title: string; make: (r: () => number) => Arrival[] }> = {
  bursts: {
    title: "(a) bursts: every 10 min 30 documents within 30 s, pages 60% 1-5, 30% 10-40, 10% 100-300; 1 h",
    make: (r) => {
      const out: Arrival[] = [];
      for (let burst = 0; burst * 600 < TRACE_SECONDS; burst++) {
        for (let i = 0; i < 30; i++) {
          const u = r();
          const pages = u < 0.6 ? uniformInt(r, 1, 5) : u < 0.9 ? uniformInt(r, 10, 40) : uniformInt(r, 100, 300);
          out.push({ at: burst * 600 + r() * 30, pages, pptx: r() < PPTX_SHARE });
        }
      }
      return out;
    },
  },
  trickle: {
    title: "(b) trickle: a 1-10 page document every ~20 s (exponential gaps); 1 h",
    make: (r) => {
      const out: Arrival[] = [];
      for (let t = exponential(r, 20); t < TRACE_SECONDS; t += exponential(r, 20)) out.push({ at: t, pages: uniformInt(r, 1, 10), pptx: r() < PPTX_SHARE });
      return out;
    },
  },
  big: {
    title: "(c) one 2,000-page PDF at minute 5 among 1-10 page documents every ~30 s; 1 h",
    make: (r) => {
      const out: Arrival[] = [{ at: 300, pages: 2000, pptx: false }];
      for (let t = exponential(r, 30); t < TRACE_SECONDS; t += exponential(r, 30)) out.push({ at: t, pages: uniformInt(r, 1, 10), pptx: r() < PPTX_SHARE });
      return out.sort((a, b) => a.at - b.at);
    },
  },
};

// ---- The pipeline ---------------------------------------------------------------------------

type Kind = "inspect" | "convert" | "express" | "render";
/** The order in which a free task slot takes work: a stand-in for the processor's separate consumers. */
const KINDS: Kind[] = ["inspect", "express", "convert", "render"];

interface Job {
  arrival: number;
  pages: number;
  pptx: boolean;
  converted: boolean;
  /** Range sizes, known after inspect. */
  ranges: number[] | null;
  next: number;
  rangesDone: number;
  pagesLeft: number;
  completedAt: number | null;
  /** Seen inspected by the operator's mean-pages estimate. */
  counted?: boolean;
}
interface Msg {
  kind: Kind;
  job: Job;
  pages: number;
}
interface Task {
  msg: Msg;
  pod: Pod;
  lost: boolean;
}
interface Pod {
  id: number;
  readyAt: number;
  ready: boolean;
  tasks: Set<Task>;
  busySince: number | null;
  /** Removed at scale-in, finishing what it holds (SIGTERM drain): takes no new work. */
  terminating: boolean;
  /** Task-slot seconds since the last tick (the HPA's CPU reading). */
  slotSeconds: number;
}

type EventBody = { at: number } & ({ type: "arrival"; job: Job } | { type: "done"; task: Task } | { type: "ready"; pod: Pod } | { type: "tick" });
type Event = EventBody & { seq: number };

class Heap {
  private items: Event[] = [];
  get size() {
    return this.items.length;
  }
  push(e: Event) {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!Heap.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < a.length && Heap.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && Heap.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
  private static less(x: Event, y: Event) {
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }
}

/** What a scaler sees of the simulated pool at a tick, and how it answers. */
interface Scaler {
  name: string;
  /** Replicas wanted now. */
  tick(sim: Sim): number;
  /** Order of removal among ready pods (first = removed first). */
  victims(sim: Sim, ready: Pod[]): Pod[];
  /** Removed busy pods finish their tasks (drain) instead of losing them. */
  drains: boolean;
}

class Sim {
  now = 0;
  private seq = 0;
  private heap = new Heap();
  readonly queues: Record<Kind, Msg[]> = { inspect: [], convert: [], express: [], render: [] };
  pods: Pod[] = [];
  private nextPodId = 0;
  readonly jobs: Job[] = [];
  // Accounting
  podSeconds = 0;
  maxReplicas = 0;
  busyPodsRemoved = 0;
  tasksRedelivered = 0;
  /** Since the last tick: pages rendered, pod-seconds with at least one task, task-slot seconds of render tasks. */
  pagesSinceTick = 0;
  busyPodSecondsSinceTick = 0;
  renderSlotSecondsSinceTick = 0;
  /** Print every decision (--timeline). */
  log: ((line: string) => void) | null = null;
  readonly rand: () => number;
  readonly scaler: Scaler;

  constructor(arrivals: Arrival[], scaler: Scaler, seed: number) {
    this.scaler = scaler;
    this.rand = rng(seed);
    for (const a of arrivals) {
      const job: Job = { arrival: a.at, pages: a.pages, pptx: a.pptx, converted: false, ranges: null, next: 0, rangesDone: 0, pagesLeft: a.pages, completedAt: null };
      this.jobs.push(job);
      this.schedule({ type: "arrival", job, at: a.at });
    }
    for (let i = 0; i < MIN_REPLICAS; i++) this.addPod(true);
    for (let t = TICK_SECONDS; t <= TRACE_SECONDS + TAIL_SECONDS; t += TICK_SECONDS) this.schedule({ type: "tick", at: t });
  }

  private schedule(e: EventBody) {
    this.heap.push({ ...e, seq: this.seq++ });
  }

  /** Replicas the Deployment asks for: pods not terminating. */
  get replicas() {
    return this.pods.filter((p) => !p.terminating).length;
  }

  private advance(to: number) {
    const dt = to - this.now;
    if (dt <= 0) return;
    this.podSeconds += this.pods.length * dt;
    for (const p of this.pods) {
      if (p.tasks.size > 0) this.busyPodSecondsSinceTick += dt;
      p.slotSeconds += p.tasks.size * dt;
      for (const t of p.tasks) if (t.msg.kind === "render" || t.msg.kind === "express") this.renderSlotSecondsSinceTick += dt;
    }
    this.now = to;
  }

  run(): void {
    const end = TRACE_SECONDS + TAIL_SECONDS;
    for (let e = this.heap.pop(); e; e = this.heap.pop()) {
      if (e.at > end && this.jobs.every((j) => j.completedAt !== null)) break;
      this.advance(e.at);
      switch (e.type) {
        case "arrival":
          this.enqueue({ kind: "inspect", job: e.job, pages: 0 });
          break;
        case "done":
          if (!e.task.lost) this.finish(e.task);
          break;
        case "ready":
          if (this.pods.includes(e.pod)) e.pod.ready = true;
          break;
        case "tick":
          this.tick();
          break;
      }
      this.dispatch();
    }
    if (this.now < end) this.advance(end);
  }

  private enqueue(m: Msg, front = false) {
    if (front) this.queues[m.kind].unshift(m);
    else this.queues[m.kind].push(m);
  }

  private releaseRange(job: Job) {
    const ranges = job.ranges!;
    const i = job.next++;
    const size = ranges[i]!;
    this.enqueue({ kind: i === 0 || job.pages <= EXPRESS_MAX_PAGES ? "express" : "render", job, pages: size });
  }

  /** Free task slots take messages in KINDS order, the least loaded ready pod first (round robin among equals). */
  private dispatch() {
    for (const kind of KINDS) {
      const q = this.queues[kind];
      while (q.length > 0) {
        let pod: Pod | undefined;
        for (const p of this.pods) if (p.ready && !p.terminating && p.tasks.size < CONCURRENCY && (!pod || p.tasks.size < pod.tasks.size)) pod = p;
        if (!pod) return;
        const msg = q.shift()!;
        const task: Task = { msg, pod, lost: false };
        if (pod.tasks.size === 0) pod.busySince = this.now;
        pod.tasks.add(task);
        // Move the pod to the end: equals take turns.
        this.pods.splice(this.pods.indexOf(pod), 1);
        this.pods.push(pod);
        const seconds = msg.kind === "inspect" ? INSPECT_SECONDS : msg.kind === "convert" ? CONVERT_SECONDS : msg.pages * PAGE_SECONDS + RANGE_OVERHEAD_SECONDS;
        this.schedule({ type: "done", task, at: this.now + seconds });
      }
    }
  }

  private finish(task: Task) {
    const { pod, msg } = task;
    pod.tasks.delete(task);
    if (pod.tasks.size === 0) {
      pod.busySince = null;
      if (pod.terminating) this.pods.splice(this.pods.indexOf(pod), 1);
    }
    const job = msg.job;
    if (msg.kind === "inspect") {
      if (job.pptx && !job.converted) return this.enqueue({ kind: "convert", job, pages: 0 });
      const ranges: number[] = [];
      for (let left = job.pages; left > 0;) {
        const size = Math.min(left, ranges.length === 0 ? FIRST_RANGE_SIZE : RANGE_SIZE);
        ranges.push(size);
        left -= size;
      }
      job.ranges = ranges;
      while (job.next < ranges.length && job.next < RANGE_WINDOW) this.releaseRange(job);
    } else if (msg.kind === "convert") {
      job.converted = true;
      this.enqueue({ kind: "inspect", job, pages: 0 });
    } else {
      job.rangesDone++;
      job.pagesLeft -= msg.pages;
      this.pagesSinceTick += msg.pages;
      if (job.next < job.ranges!.length) this.releaseRange(job);
      else if (job.rangesDone === job.ranges!.length) job.completedAt = this.now;
    }
  }

  private addPod(ready = false) {
    const pod: Pod = { id: this.nextPodId++, readyAt: this.now + (ready ? 0 : STARTUP_SECONDS), ready, tasks: new Set(), busySince: null, terminating: false, slotSeconds: 0 };
    this.pods.push(pod);
    if (!ready) this.schedule({ type: "ready", pod, at: pod.readyAt });
  }

  private tick() {
    const want = Math.min(MAX_REPLICAS, Math.max(MIN_REPLICAS, this.scaler.tick(this)));
    const current = this.replicas;
    for (let i = current; i < want; i++) this.addPod();
    if (want < current) {
      const live = this.pods.filter((p) => !p.terminating);
      // The ReplicaSet removes pods that are not ready first (newest first), then in the scaler's order.
      const order = [
        ...live.filter((p) => !p.ready).reverse(),
        ...this.scaler.victims(
          this,
          live.filter((p) => p.ready),
        ),
      ];
      for (const pod of order.slice(0, current - want)) this.remove(pod);
    }
    this.maxReplicas = Math.max(this.maxReplicas, this.replicas);
    this.pagesSinceTick = 0;
    this.busyPodSecondsSinceTick = 0;
    this.renderSlotSecondsSinceTick = 0;
    for (const p of this.pods) p.slotSeconds = 0;
  }

  private remove(pod: Pod) {
    if (pod.tasks.size > 0) {
      this.busyPodsRemoved++;
      if (this.scaler.drains) {
        pod.terminating = true;
        return;
      }
      // Its tasks are lost: the broker requeues them (at the head, as RabbitMQ does) and they start again elsewhere.
      for (const t of pod.tasks) {
        t.lost = true;
        this.tasksRedelivered++;
        this.enqueue(t.msg, true);
      }
      pod.tasks.clear();
    }
    this.pods.splice(this.pods.indexOf(pod), 1);
  }

  /** What the operator observes: the job store's open jobs, the queues (ready + unacked), each pod's tasks. */
  observation(rate: number): Observation {
    let pages = 0,
      parallelTasks = 0;
    const held = { inspect: 0, convert: 0 };
    for (const p of this.pods) for (const t of p.tasks) if (t.msg.kind === "inspect" || t.msg.kind === "convert") held[t.msg.kind]++;
    const inspect = this.queues.inspect.length + held.inspect;
    const convert = this.queues.convert.length + held.convert;
    for (const j of this.jobs) {
      if (j.completedAt !== null || j.ranges === null || j.arrival > this.now) continue;
      pages += j.pagesLeft;
      parallelTasks += Math.min(RANGE_WINDOW, j.ranges.length - j.rangesDone);
    }
    return {
      nowMs: this.now * 1000,
      backlogKnown: true,
      pages,
      messages: [
        { count: inspect, secondsPerMessage: INSPECT_SECONDS },
        { count: convert, secondsPerMessage: CONVERT_SECONDS },
      ],
      parallelTasks: parallelTasks + inspect + convert,
      pagesPerSecondPerReplica: rate,
      replicas: this.replicas,
      pods: this.pods
        .filter((p) => !p.terminating)
        .map((p) => ({ name: `p${p.id}`, ready: p.ready, inFlight: p.ready ? p.tasks.size : null, busySinceMs: p.busySince === null ? null : p.busySince * 1000 })),
    };
  }

  shuffle<T>(items: T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}

// ---- Scalers --------------------------------------------------------------------------------

/** The HPA's behaviour after the metric: scale-down stabilisation and rate limits (as the chart sets them). */
function hpaBehavior() {
  const recs: { at: number; replicas: number }[] = [];
  const removals: { at: number; pods: number }[] = [];
  return (now: number, current: number, raw: number): number => {
    const proposal = Math.min(MAX_REPLICAS, Math.max(MIN_REPLICAS, raw));
    recs.push({ at: now, replicas: proposal });
    while (recs.length > 0 && recs[0]!.at <= now - HPA_DOWN_WINDOW_SECONDS) recs.shift();
    if (proposal > current) return Math.min(proposal, Math.max(current + 4, current * 2)); // default scaleUp: max(4 pods, 100%) per 15 s
    if (proposal === current) return current;
    const stabilized = Math.max(...recs.map((r) => r.replicas));
    if (stabilized >= current) return current;
    const removedLastMinute = removals.filter((r) => r.at > now - 60).reduce((s, r) => s + r.pods, 0);
    const desired = Math.max(stabilized, current - Math.max(0, 1 - removedLastMinute)); // policies: 1 pod per 60 s
    if (desired < current) removals.push({ at: now, pods: current - desired });
    return desired;
  };
}

const randomVictims = (sim: Sim, ready: Pod[]) => sim.shuffle(ready);

/** KEDA's rabbitmq trigger, QueueLength mode: only ready messages; one trigger per queue (`sum`: one over all). */
function keda(sum: boolean, drains: boolean): Scaler {
  const behavior = hpaBehavior();
  return {
    name: sum ? "keda-sum" : "keda",
    drains,
    victims: randomVictims,
    tick(sim) {
      const current = sim.replicas;
      const lengths = KINDS.map((k) => sim.queues[k].length);
      const proposals = (sum ? [lengths.reduce((a, b) => a + b, 0)] : lengths).map((ready) => {
        // External metric, AverageValue target: usage ratio = ready / (value x current); 10% tolerance.
        const ratio = ready / (KEDA_MESSAGES_PER_POD * current);
        return Math.abs(ratio - 1) <= HPA_TOLERANCE ? current : Math.ceil(ready / KEDA_MESSAGES_PER_POD);
      });
      const want = behavior(sim.now, current, Math.max(...proposals));
      sim.log?.(`t=${sim.now.toFixed(0)} replicas ${current} -> ${want}: ready messages ${KINDS.map((k, i) => `${k} ${lengths[i]}`).join(", ")}`);
      return want;
    },
  };
}

/** A CPU HPA: each ready pod's busy task slots over the last 15 s / its slots stand in for its CPU utilisation against its request. */
function hpaCpu(drains: boolean): Scaler {
  const behavior = hpaBehavior();
  return {
    name: "hpa-cpu",
    drains,
    victims: randomVictims,
    tick(sim) {
      const current = sim.replicas;
      const live = sim.pods.filter((p) => !p.terminating);
      const ready = live.filter((p) => p.ready);
      if (ready.length === 0) return behavior(sim.now, current, current);
      const util = ready.map((p) => p.slotSeconds / (CONCURRENCY * Math.min(TICK_SECONDS, sim.now - p.readyAt)));
      const total = util.reduce((a, b) => a + b, 0);
      const ratio = total / ready.length / HPA_CPU_TARGET;
      let raw = Math.abs(ratio - 1) <= HPA_TOLERANCE ? current : Math.ceil(ratio * ready.length);
      const unready = live.length - ready.length;
      if (raw > current && unready > 0) {
        // Scaling up: pods not yet ready count as 0% (the HPA's rule); skip if that reverses the direction or lands within tolerance.
        const ratio2 = total / live.length / HPA_CPU_TARGET;
        raw = ratio2 <= 1 + HPA_TOLERANCE ? current : Math.ceil(ratio2 * live.length);
      }
      const want = behavior(sim.now, current, raw);
      sim.log?.(`t=${sim.now.toFixed(0)} replicas ${current} -> ${want}: utilisation ${((total / ready.length) * 100).toFixed(0)}% of ${ready.length} ready (${unready} starting)`);
      return want;
    },
  };
}

/** The operator: decide() of the policy, pods' deletion costs so idle ones go first. */
function operator(targetDrainSeconds: number, stabilizationSeconds: number): Scaler & { rate: () => number } {
  const spec: PolicySpec = {
    minReplicas: MIN_REPLICAS,
    maxReplicas: MAX_REPLICAS,
    targetDrainSeconds,
    concurrency: CONCURRENCY,
    rangeWindow: RANGE_WINDOW,
    taskTimeoutSeconds: TASK_TIMEOUT_SECONDS,
    scaleUp: { maxStep: 4 },
    scaleDown: { stabilizationSeconds, maxStep: 1 },
  };
  let history: History = [];
  let rate = OPERATOR_RATE_ESTIMATE;
  // The rate sample is taken over at least one replica busy for a tick (accumulated over ticks if
  // need be): a window with a sliver of work (one range straddling its start) says nothing of capacity.
  let pages = 0,
    busySeconds = 0;
  let jobsSeen = 0,
    pagesSeen = 0;
  return {
    name: `operator-${targetDrainSeconds}`,
    drains: true, // the pods it removes are idle; a stuck one (busy > task timeout) would drain
    rate: () => rate,
    victims: (sim, ready) => {
      const cost = new Map(sim.observation(rate).pods.map((p) => [p.name, deletionCost(p)]));
      // Lowest deletion cost first; equal costs in random order (the ReplicaSet's later tie-breaks).
      return sim.shuffle(ready).sort((a, b) => (cost.get(`p${a.id}`) ?? 0) - (cost.get(`p${b.id}`) ?? 0));
    },
    tick(sim) {
      // Pages/s per busy replica, measured: pages rendered over the replica-equivalents that rendered
      // (render task-slot seconds / concurrency; a processor can export its busy task-seconds as a counter).
      pages += sim.pagesSinceTick;
      busySeconds += sim.renderSlotSecondsSinceTick / CONCURRENCY;
      if (busySeconds >= TICK_SECONDS) {
        rate = updateThroughput(rate, { pages, seconds: TICK_SECONDS, busyReplicas: busySeconds / TICK_SECONDS }) ?? rate;
        pages = busySeconds = 0;
      }
      const o = sim.observation(rate);
      // As the operator's controller does (withUninspected): a job not inspected yet is priced at
      // the mean job seen inspected so far (10 pages before any), not at one inspect message.
      for (const j of sim.jobs)
        if (j.ranges !== null && j.arrival <= sim.now && !j.counted) {
          j.counted = true;
          jobsSeen++;
          pagesSeen += j.pages;
        }
      const observed = withUninspected(o, o.messages[0]!.count, jobsSeen > 0 ? pagesSeen / jobsSeen : 10, { rangeSize: RANGE_SIZE, rangeWindow: RANGE_WINDOW });
      const d = decide(spec, observed, history);
      history = d.history;
      sim.log?.(`t=${sim.now.toFixed(0)} replicas ${o.replicas} -> ${d.replicas} ${d.reason}: ${d.message}`);
      return d.replicas;
    },
  };
}

// ---- Run ------------------------------------------------------------------------------------

interface Row {
  trace: string;
  scaler: string;
  jobs: number;
  p50: number;
  p95: number;
  max: number;
  replicaMinutes: number;
  busyPodsRemoved: number;
  tasksRedelivered: number;
  maxReplicas: number;
  rate?: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function simulate(trace: string, arrivals: Arrival[], scaler: Scaler, seed: number, timeline: string | undefined): Row {
  const sim = new Sim(arrivals, scaler, seed);
  if (timeline === `${trace}:${scaler.name}`) sim.log = (line) => console.log(`  [${trace} ${scaler.name}] ${line}`);
  sim.run();
  const times = sim.jobs.map((j) => (j.completedAt ?? NaN) - j.arrival).sort((a, b) => a - b);
  const row: Row = {
    trace,
    scaler: scaler.name,
    jobs: times.length,
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    max: times[times.length - 1] ?? NaN,
    replicaMinutes: sim.podSeconds / 60,
    busyPodsRemoved: sim.busyPodsRemoved,
    tasksRedelivered: sim.tasksRedelivered,
    maxReplicas: sim.maxReplicas,
  };
  if ("rate" in scaler && typeof scaler.rate === "function") row.rate = (scaler.rate as () => number)();
  return row;
}

function main(): number {
  const { values } = parseArgs({
    options: {
      seed: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
      drain: { type: "boolean", default: false },
      traces: { type: "string", default: Object.keys(TRACES).join(",") },
      "drain-seconds": { type: "string", default: "20,60" },
      timeline: { type: "string" },
      "operator-stabilization": { type: "string", default: "60" },
    },
  });
  const seed = Number(values.seed);
  const drain = values.drain;
  const goals = values["drain-seconds"].split(",").map(Number);
  const scalers = () => [...goals.map((g) => operator(g, Number(values["operator-stabilization"]))), keda(false, drain), keda(true, drain), hpaCpu(drain)];
  const rows: Row[] = [];
  const verdicts: { trace: string; pass: boolean; text: string }[] = [];
  for (const name of values.traces.split(",")) {
    const trace = TRACES[name];
    if (!trace) throw new Error(`unknown trace ${name} (${Object.keys(TRACES).join(", ")})`);
    const arrivals = trace.make(rng(seed * 1000 + Object.keys(TRACES).indexOf(name)));
    // Each scaler's own random stream (which pod goes at scale-in), the same whatever other rows are printed.
    const traceRows = scalers().map((s) =>
      simulate(name, arrivals, s, seed * 1000 + 100 * Object.keys(TRACES).indexOf(name) + [...s.name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 97, 0), values.timeline),
    );
    rows.push(...traceRows);
    const op = traceRows[0]!;
    const k = traceRows.find((r) => r.scaler === "keda")!;
    const pass = op.p95 <= k.p95 && op.replicaMinutes <= k.replicaMinutes && op.busyPodsRemoved === 0;
    verdicts.push({
      trace: name,
      pass,
      text: `${name}: ${pass ? "PASS" : "FAIL"}: ${op.scaler} p95 ${op.p95.toFixed(1)} s ${op.p95 <= k.p95 ? "<=" : ">"} KEDA ${k.p95.toFixed(1)} s; replica-min ${op.replicaMinutes.toFixed(1)} ${op.replicaMinutes <= k.replicaMinutes ? "<=" : ">"} ${k.replicaMinutes.toFixed(1)}; busy pods removed ${op.busyPodsRemoved} (KEDA ${k.busyPodsRemoved}, HPA ${traceRows.find((r) => r.scaler === "hpa-cpu")!.busyPodsRemoved})`,
    });
  }
  const assumptions = {
    seed,
    pageSeconds: PAGE_SECONDS,
    rangeOverheadSeconds: RANGE_OVERHEAD_SECONDS,
    inspectSeconds: INSPECT_SECONDS,
    convertSeconds: CONVERT_SECONDS,
    pptxShare: PPTX_SHARE,
    startupSeconds: STARTUP_SECONDS,
    concurrency: CONCURRENCY,
    rangeWindow: RANGE_WINDOW,
    rangeSize: RANGE_SIZE,
    firstRangeSize: FIRST_RANGE_SIZE,
    expressMaxPages: EXPRESS_MAX_PAGES,
    tickSeconds: TICK_SECONDS,
    replicas: [MIN_REPLICAS, MAX_REPLICAS],
    countedSeconds: TRACE_SECONDS + TAIL_SECONDS,
    hpaKedaRemovedBusyPods: drain ? "drain (finish their tasks)" : "lose their tasks (redelivered)",
  };
  if (values.json) {
    console.log(JSON.stringify({ assumptions, rows, verdicts }, null, 2));
    return verdicts.every((v) => v.pass) ? 0 : 1;
  }
  console.log(`autoscale simulation, seed ${seed}`);
  console.log(
    `assumptions: ${PAGE_SECONDS * 1000} ms of one core per page + ${RANGE_OVERHEAD_SECONDS * 1000} ms per range (one core per task: ~${(CONCURRENCY / (PAGE_SECONDS + RANGE_OVERHEAD_SECONDS / RANGE_SIZE)).toFixed(1)} pages/s per replica at concurrency ${CONCURRENCY}); inspect ${INSPECT_SECONDS} s;`,
  );
  console.log(
    `  ${PPTX_SHARE * 100}% of jobs PPTX (convert ${CONVERT_SECONDS} s, then inspect again); ranges ${FIRST_RANGE_SIZE} then ${RANGE_SIZE} pages, window ${RANGE_WINDOW}; express lane (first ranges, jobs <= ${EXPRESS_MAX_PAGES} pages) served before render;`,
  );
  console.log(
    `  a new replica ready after ${STARTUP_SECONDS} s; every scaler every ${TICK_SECONDS} s; replicas ${MIN_REPLICAS}-${MAX_REPLICAS}; replica-minutes counted over ${(TRACE_SECONDS + TAIL_SECONDS) / 60} min (pods starting or draining included);`,
  );
  console.log(
    `  HPA/KEDA: 10% tolerance, ${HPA_DOWN_WINDOW_SECONDS} s down stabilisation, 1 pod/60 s down, max(4, 100%)/15 s up, a random ready pod removed, its tasks ${drain ? "drained" : "lost and redelivered"};`,
  );
  console.log(
    `  operator: targetDrainSeconds ${goals.join(" or ")} (operator-N), scaleUp.maxStep 4, scaleDown ${values["operator-stabilization"]} s / 1 pod; jobs not inspected yet priced at the mean job seen, pages/s per replica measured from ${OPERATOR_RATE_ESTIMATE}.`,
  );
  for (const name of new Set(rows.map((r) => r.trace))) {
    console.log(`\n${TRACES[name]!.title}\n`);
    console.log("| scaler | jobs | p50 s | p95 s | max s | replica-min | busy pods removed | tasks redelivered | max replicas |");
    console.log("|---|---|---|---|---|---|---|---|---|");
    for (const r of rows.filter((x) => x.trace === name)) {
      console.log(
        `| ${r.scaler}${r.rate !== undefined ? ` (${r.rate.toFixed(1)} p/s/replica)` : ""} | ${r.jobs} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.max.toFixed(1)} | ${r.replicaMinutes.toFixed(1)} | ${r.busyPodsRemoved} | ${r.tasksRedelivered} | ${r.maxReplicas} |`,
      );
    }
  }
  console.log(`\nverdict (operator-${goals[0]} against keda: p95 <= KEDA's, replica-minutes <= KEDA's, 0 busy pods removed):`);
  for (const v of verdicts) console.log(`  ${v.text}`);
  return verdicts.every((v) => v.pass) ? 0 : 1;
}

process.exitCode = main();
