import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { availableParallelism } from "node:os";
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

  it("tells the machine's share of a late loop from the app's: CPU wait against CPU run of the loop's thread", async () => {
    const metricsUrl = `${stack.baseUrl}/metrics`;
    const read = async () => ({ run: await gauge(metricsUrl, "docflow_eventloop_cpu_seconds_total"), wait: await gauge(metricsUrl, "docflow_eventloop_cpu_wait_seconds_total") });
    const pid = stack.pids.gateway;
    const block = async () => {
      const before = await read();
      process.kill(pid, "SIGUSR2");
      await new Promise((r) => setTimeout(r, 1700));
      const after = await read();
      return { run: after.run - before.run, wait: after.wait - before.wait };
    };

    // The app holds its loop for 1.2 s: the thread is runnable throughout, and
    // runs for most of it (unless the test machine is busy with other work).
    const alone = await block();
    expect(alone.run + alone.wait).toBeGreaterThan(1.0);
    expect(alone.run).toBeGreaterThan(0.5);

    // The same stall while another process shares the gateway's only core: half of it is waiting.
    const pin = (cpus: string) => expect(spawnSync("taskset", ["-a", "-p", "-c", cpus, String(pid)]).status).toBe(0);
    pin("0");
    const hog = spawn("taskset", ["-c", "0", process.execPath, "-e", "const t = Date.now() + 4000; while (Date.now() < t);"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const shared = await block();
      expect(shared.wait).toBeGreaterThan(0.4);
      expect(shared.wait).toBeGreaterThan(alone.wait);
      expect(shared.run).toBeLessThan(alone.run);
    } finally {
      hog.kill("SIGKILL");
      await once(hog, "exit");
      pin(`0-${availableParallelism() - 1}`);
    }
  });
});
