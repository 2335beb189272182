import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processorPort, startStack, type Stack } from "../support/stack.ts";

/** The Prometheus value of one unlabelled-or-service-labelled gauge. */
async function gauge(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} is not exported at ${metricsUrl}`);
  return Number(line.split(" ").at(-1));
}

/**
 * The event-loop delay metric exists for every service and shows a blocked
 * loop: a test-only module (`tests/support/block-loop.ts`, loaded with
 * `--import`) holds the loop for 1.2 s on SIGUSR2, and the service's own
 * measurement must report it.
 */
describe("event-loop delay is visible for every service", () => {
  let stack: Stack;
  beforeAll(async () => {
    const hook = pathToFileURL(join(import.meta.dirname, "../support/block-loop.ts")).href;
    stack = await startStack({ env: { NODE_OPTIONS: `--import=${hook}` } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it.each(["gateway", "processor"] as const)("the %s reports a stalled event loop in docflow_eventloop_delay_max_seconds", async (service) => {
    const metricsUrl = service === "gateway" ? `${stack.baseUrl}/metrics` : `http://127.0.0.1:${processorPort(stack)}/metrics`;
    // prom-client resets the histogram at each scrape: read once to start clean.
    await gauge(metricsUrl, "docflow_eventloop_delay_max_seconds");
    const calm = await gauge(metricsUrl, "docflow_eventloop_delay_max_seconds");
    expect(calm).toBeLessThan(0.5);

    process.kill(stack.pids[service], "SIGUSR2");
    await new Promise((r) => setTimeout(r, 1500));
    const stalled = await gauge(metricsUrl, "docflow_eventloop_delay_max_seconds");
    expect(stalled).toBeGreaterThan(0.9);
    // The histogram has the sample too (a p99 over any window).
    const text = await (await fetch(metricsUrl)).text();
    const over1s = text.split("\n").find((l) => l.startsWith("docflow_eventloop_delay_seconds_bucket") && l.includes('le="1"'));
    const total = text.split("\n").find((l) => l.startsWith("docflow_eventloop_delay_seconds_count"));
    expect(Number(total?.split(" ").at(-1)) - Number(over1s?.split(" ").at(-1))).toBeGreaterThanOrEqual(1);
  });
});
