import { Gauge, Histogram, type Registry } from "prom-client";

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
  return () => clearInterval(timer);
}
