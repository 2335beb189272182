import { describe, expect, it } from "vitest";
import { decide, deletionCost, recommend, updateThroughput, withUninspected, type History, type Observation, type PodState, type PolicySpec } from "./policy.ts";

const spec: PolicySpec = {
  minReplicas: 1,
  maxReplicas: 10,
  targetDrainSeconds: 60,
  concurrency: 2,
  rangeWindow: 4,
  taskTimeoutSeconds: 120,
  scaleUp: { maxStep: 10 },
  scaleDown: { stabilizationSeconds: 300, maxStep: 2 },
};

const T0 = 1_000_000_000;
const idle = (name: string): PodState => ({ name, ready: true, inFlight: 0, busySinceMs: null });
const busy = (name: string, sinceMs = T0 - 5_000, tasks = 1): PodState => ({ name, ready: true, inFlight: tasks, busySinceMs: sinceMs });
const pods = (n: number, make: (name: string) => PodState = idle) => Array.from({ length: n }, (_, i) => make(`p${i}`));

function observe(over: Partial<Observation>): Observation {
  return {
    nowMs: T0,
    backlogKnown: true,
    pages: 0,
    messages: [],
    parallelTasks: 0,
    pagesPerSecondPerReplica: 5,
    replicas: 1,
    pods: pods(1),
    ...over,
  };
}

/** `jobs` documents of `pages` each, none started: their parallelism and page backlog. */
function jobs(count: number, pages: number, rangeSize = 8): Pick<Observation, "pages" | "parallelTasks"> {
  const ranges = Math.ceil(pages / rangeSize);
  return { pages: count * pages, parallelTasks: count * Math.min(spec.rangeWindow, ranges) };
}

describe("decide", () => {
  it("a burst of documents scales out at once to what drains it within the goal", () => {
    // 40 documents of 30 pages: 1200 pages at 5 p/s per replica = 240 replica-s; goal 60 s -> 4.
    const d = decide(spec, observe({ ...jobs(40, 30), replicas: 1, pods: pods(1, busy) }), []);
    expect(d).toMatchObject({ replicas: 4, direction: "up", reason: "Backlog" });
    expect(d.workSeconds).toBeCloseTo(240);
  });

  it("a burst larger than the pool can take stops at maxReplicas and says so", () => {
    const d = decide(spec, observe({ ...jobs(400, 30), replicas: 2, pods: pods(2, busy) }), []);
    expect(d).toMatchObject({ replicas: 10, direction: "up", reason: "AtMaxReplicas" });
  });

  it("scale-out is limited to scaleUp.maxStep pods per decision", () => {
    const d = decide({ ...spec, scaleUp: { maxStep: 2 } }, observe({ ...jobs(400, 30), replicas: 2, pods: pods(2, busy) }), []);
    expect(d).toMatchObject({ replicas: 4, direction: "up", reason: "Backlog" });
  });

  it("a steady trickle of small documents stays at the minimum", () => {
    // 2 one-page documents waiting: a fraction of a replica-second.
    const d = decide(spec, observe({ ...jobs(2, 1), replicas: 1, pods: pods(1, busy) }), []);
    expect(d).toMatchObject({ replicas: 1, direction: "none", reason: "AtMinReplicas" });
  });

  it("one huge document gets the replicas its range window can use, not one per 300 pages", () => {
    // 2000 pages = 400 replica-s -> 7 by backlog; but 4 ranges in flight at concurrency 2 -> 2 replicas.
    const o = observe({ ...jobs(1, 2000), replicas: 1, pods: pods(1, busy) });
    expect(recommend(spec, o)).toMatchObject({ byBacklog: 7, byParallelism: 2, replicas: 2 });
    expect(decide(spec, o, [])).toMatchObject({ replicas: 2, direction: "up", reason: "Backlog" });
  });

  it("one huge document among small ones adds the small ones' parallelism", () => {
    const big = jobs(1, 2000);
    const small = jobs(20, 4);
    const d = decide(spec, observe({ pages: big.pages + small.pages, parallelTasks: big.parallelTasks + small.parallelTasks, replicas: 2, pods: pods(2, busy) }), []);
    // 2080 pages -> 416 replica-s -> 7 by backlog; 4 + 20 tasks -> 12 replicas by parallelism -> 7.
    expect(d).toMatchObject({ replicas: 7, direction: "up" });
  });

  it("conversions count at their cost per message", () => {
    const d = decide(spec, observe({ messages: [{ count: 12, secondsPerMessage: 20 }], parallelTasks: 12, replicas: 1 }), []);
    // 240 replica-s over 60 s -> 4 replicas.
    expect(d).toMatchObject({ replicas: 4, direction: "up", reason: "Backlog" });
  });

  it("a broker that cannot be reached holds the replicas and says why", () => {
    const d = decide(spec, observe({ backlogKnown: false, backlogError: "connect ECONNREFUSED 10.96.0.20:5672", replicas: 6, pods: pods(6) }), []);
    expect(d).toMatchObject({ replicas: 6, direction: "none", reason: "BacklogUnknown" });
    expect(d.message).toContain("ECONNREFUSED");
  });

  it("a broker that cannot be reached still keeps replicas within bounds", () => {
    expect(decide(spec, observe({ backlogKnown: false, replicas: 0, pods: [] }), [])).toMatchObject({ replicas: 1, direction: "up" });
  });

  it("scale-in waits for the stabilisation window", () => {
    const history: History = [{ atMs: T0 - 100_000, replicas: 6 }];
    const d = decide(spec, observe({ replicas: 6, pods: pods(6) }), history);
    expect(d).toMatchObject({ replicas: 6, direction: "none", reason: "Stabilizing" });
    expect(d.history.map((h) => h.replicas)).toEqual([6, 1]);
  });

  it("a lowered maxReplicas applies at once, without waiting for the window", () => {
    const history: History = [{ atMs: T0 - 10_000, replicas: 3 }];
    const d = decide({ ...spec, maxReplicas: 1, scaleDown: { stabilizationSeconds: 300, maxStep: 5 } }, observe({ replicas: 3, pods: pods(3) }), history);
    expect(d).toMatchObject({ replicas: 1, direction: "down" });
  });

  it("after the window, scale-in removes at most scaleDown.maxStep pods per decision", () => {
    const history: History = [{ atMs: T0 - 400_000, replicas: 6 }];
    const d = decide(spec, observe({ replicas: 6, pods: pods(6) }), history);
    expect(d).toMatchObject({ replicas: 4, direction: "down", reason: "BacklogDrained" });
    expect(d.history).toEqual([{ atMs: T0, replicas: 1 }]);
  });

  it("never removes more pods than are idle", () => {
    const d = decide(spec, observe({ replicas: 6, pods: [...pods(5, (n) => busy(n)), idle("p5")] }), []);
    expect(d).toMatchObject({ replicas: 5, direction: "down", reason: "BusyPodsProtected" });
  });

  it("holds when every pod is busy, even with no backlog left in the queues", () => {
    const d = decide(spec, observe({ replicas: 3, pods: pods(3, (n) => busy(n)) }), []);
    expect(d).toMatchObject({ replicas: 3, direction: "none" });
  });

  it("a pod busy longer than the task timeout is stuck and may be removed", () => {
    const stuck = busy("p0", T0 - 121_000);
    const d = decide({ ...spec, scaleDown: { stabilizationSeconds: 0, maxStep: 5 } }, observe({ replicas: 3, pods: [stuck, busy("p1"), idle("p2")] }), []);
    // 2 pods may go (the stuck one and the idle one): 3 -> 1 keeps the one with live work.
    expect(d).toMatchObject({ replicas: 1, direction: "down" });
  });

  it("pods that are not ready or not created yet go first", () => {
    const d = decide(
      { ...spec, scaleDown: { stabilizationSeconds: 0, maxStep: 10 } },
      observe({ replicas: 5, pods: [busy("p0"), { name: "p1", ready: false, inFlight: null, busySinceMs: null }] }),
      [],
    );
    // One busy pod keeps 1; the unready pod and the 3 not created may all go.
    expect(d).toMatchObject({ replicas: 1, direction: "down" });
  });

  it("a pod whose metrics cannot be read is protected like a busy one", () => {
    const d = decide(
      { ...spec, scaleDown: { stabilizationSeconds: 0, maxStep: 10 } },
      observe({ replicas: 2, pods: [{ name: "p0", ready: true, inFlight: null, busySinceMs: null }, idle("p1")] }),
      [],
    );
    expect(d).toMatchObject({ replicas: 1, direction: "down" });
    const none = decide({ ...spec, scaleDown: { stabilizationSeconds: 0, maxStep: 10 } }, observe({ replicas: 1, pods: [{ name: "p0", ready: true, inFlight: null, busySinceMs: null }] }), []);
    expect(none).toMatchObject({ replicas: 1, direction: "none" });
  });

  it("a requested replica count (kubectl scale, an HPA) is honoured: out at once, in only by idle pods", () => {
    expect(decide(spec, observe({ requestedReplicas: 5, replicas: 2, pods: pods(2) }), [])).toMatchObject({ replicas: 5, direction: "up", reason: "Requested" });
    const wide = { ...spec, scaleDown: { stabilizationSeconds: 300, maxStep: 10 } };
    expect(decide(wide, observe({ requestedReplicas: 1, replicas: 4, pods: [busy("a"), busy("b"), idle("c"), idle("d")] }), [])).toMatchObject({
      replicas: 2,
      direction: "down",
      reason: "BusyPodsProtected",
    });
    expect(decide(wide, observe({ requestedReplicas: 2, replicas: 4, pods: [busy("a"), idle("b"), idle("c"), idle("d")] }), [])).toMatchObject({ replicas: 2, direction: "down", reason: "Requested" });
    expect(decide(spec, observe({ requestedReplicas: 50, replicas: 4, pods: pods(4) }), [])).toMatchObject({ replicas: 10 });
  });

  it("a paused pool is left alone", () => {
    expect(decide(spec, observe({ paused: true, ...jobs(400, 30), replicas: 3, pods: pods(3) }), [])).toMatchObject({ replicas: 3, direction: "none", reason: "Paused" });
  });
});

describe("updateThroughput", () => {
  it("measures pages/s per busy replica and smooths it", () => {
    const first = updateThroughput(null, { pages: 100, seconds: 10, busyReplicas: 2 });
    expect(first).toBe(5);
    expect(updateThroughput(first, { pages: 200, seconds: 10, busyReplicas: 2 }, 0.5)).toBe(7.5);
  });

  it("keeps the estimate while the pool idles (demand, not capacity, sets the rate)", () => {
    expect(updateThroughput(4, { pages: 0, seconds: 10, busyReplicas: 0 })).toBe(4);
    expect(updateThroughput(null, { pages: 0, seconds: 10, busyReplicas: 1 })).toBeNull();
  });

  it("ignores a sample with a sliver of busy time (one range straddling the window)", () => {
    expect(updateThroughput(5, { pages: 8, seconds: 15, busyReplicas: 0.02 })).toBe(5);
  });
});

describe("withUninspected", () => {
  it("prices jobs not inspected yet at the mean job, so a burst of uploads is seen at once", () => {
    const o = observe({ pages: 100, parallelTasks: 4, replicas: 1 });
    const priced = withUninspected(o, 30, 30, { rangeSize: 8, rangeWindow: 4 });
    expect(priced).toMatchObject({ pages: 1000, parallelTasks: 4 + 30 * 4 });
    // 1000 pages at 5 p/s = 200 replica-s; goal 60 s -> 4 (unpriced: 100 pages -> 1).
    expect(decide(spec, priced, [])).toMatchObject({ replicas: 4, direction: "up" });
    expect(decide(spec, o, [])).toMatchObject({ replicas: 1 });
    expect(withUninspected(o, 0, 30, { rangeSize: 8, rangeWindow: 4 })).toBe(o);
  });
});

describe("deletionCost", () => {
  it("orders unready < idle < unknown < busy, busier higher", () => {
    const costs = [
      deletionCost({ name: "a", ready: false, inFlight: 3, busySinceMs: T0 }),
      deletionCost(idle("b")),
      deletionCost({ name: "c", ready: true, inFlight: null, busySinceMs: null }),
      deletionCost(busy("d", T0, 1)),
      deletionCost(busy("e", T0, 2)),
    ];
    expect([...costs].sort((x, y) => x - y)).toEqual(costs);
    expect(new Set(costs).size).toBe(costs.length);
  });
});
