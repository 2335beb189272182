import { readFileSync } from "node:fs";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/**
 * Event-loop delay as Prometheus metrics, measured by timer drift: a timer
 * asks to run every `intervalMs`; how much later than asked it runs is the
 * time the loop was busy with something else.
 *
 * Why not Node's `monitorEventLoopDelay` (what prom-client's
 * `nodejs_eventloop_lag_*` report): on Node 20 and 24 here it records ~10 ms
 * after the loop was held for 1.2 s by synchronous work, i.e. it does not see
 * the very stall these metrics exist to show (tests/e2e/event-loop.test.ts).
 *
 * - `docflow_eventloop_delay_seconds` (histogram): every sample; p99 over any
 *   window with `histogram_quantile`.
 * - `docflow_eventloop_delay_max_seconds` (gauge): the worst delay since the
 *   previous scrape.
 * - `docflow_eventloop_cpu_seconds_total` and
 *   `docflow_eventloop_cpu_wait_seconds_total` (counters, Linux): how long the
 *   event loop's thread ran on a CPU, and how long it was ready to run but
 *   waited for one (`/proc/<pid>/task/<pid>/schedstat`). A late loop is the
 *   app's doing when the first grows, the machine's (CPU limits, throttling,
 *   busy neighbours) when the second does.
 */
export function registerEventLoopMetrics(registry: Registry, intervalMs = 20): () => void {
  let max = 0;
  const histogram = new Histogram({
    name: "docflow_eventloop_delay_seconds",
    help: "How late the event loop ran a timer (timer drift), in seconds.",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Gauge({
    name: "docflow_eventloop_delay_max_seconds",
    help: "The longest event-loop delay since the previous scrape, in seconds.",
    registers: [registry],
    collect() {
      this.set(max);
      max = 0;
    },
  });
  let expected = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    const delay = Math.max(0, now - expected) / 1000;
    expected = now + intervalMs;
    histogram.observe(delay);
    if (delay > max) max = delay;
  }, intervalMs);
  timer.unref();
  registerLoopThreadCpu(registry);
  return () => clearInterval(timer);
}

/**
 * Scheduler times of one thread in seconds (`/proc/<pid>/task/<tid>/schedstat`;
 * by default this process's main thread, its event loop): how long it ran on a
 * CPU, and how long it was ready to run but waited for one. Undefined where the
 * kernel does not expose them (not Linux, no schedstats, the thread is gone).
 */
export function threadSchedule(pid = process.pid, tid = pid): { run: number; wait: number } | undefined {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").trim().split(" ").map(Number);
    return Number.isFinite(run) && Number.isFinite(wait) ? { run: run! / 1e9, wait: wait! / 1e9 } : undefined;
  } catch {
    return undefined;
  }
}

function registerLoopThreadCpu(registry: Registry): void {
  const start = threadSchedule();
  if (!start) return;
  const counter = (name: string, help: string, pick: (s: { run: number; wait: number }) => number) => {
    let last = pick(start);
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = threadSchedule();
        if (now && pick(now) > last) {
          this.inc(pick(now) - last);
          last = pick(now);
        }
      },
    });
  };
  counter("docflow_eventloop_cpu_seconds_total", "Seconds the event loop's thread ran on a CPU (the process's own work).", (s) => s.run);
  counter(
    "docflow_eventloop_cpu_wait_seconds_total",
    "Seconds the event loop's thread was ready to run but waited for a CPU (CPU limits, throttling, other processes): the machine's share of a late loop.",
    (s) => s.wait,
  );
}
