/**
 * The /healthz prober, run as a worker thread (its own event loop, so the benchmark's upload
 * I/O cannot delay a probe): GET `url` every `intervalMs` on one keep-alive connection.
 * Messages in: "cut" (send the samples so far and start a new batch), "stop".
 * Messages out: Sample[] per "cut", and the last batch on "stop".
 */
import { Agent, request } from "node:http";
import { parentPort, workerData } from "node:worker_threads";

export interface ProbeConfig {
  url: string;
  intervalMs: number;
  timeoutMs: number;
}

export interface Sample {
  /** ms since the prober started */
  at: number;
  ms: number;
  ok: boolean;
}

function probeOnce(agent: Agent, url: string, timeoutMs: number): Promise<{ ms: number; ok: boolean }> {
  return new Promise((resolveProbe) => {
    const started = performance.now();
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      resolveProbe({ ms: performance.now() - started, ok });
    };
    const req = request(url, { agent, headers: { connection: "keep-alive" } }, (res) => {
      res.resume();
      res.once("end", () => done(res.statusCode === 200));
      res.once("error", () => done(false));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error("timeout"));
      done(false);
    });
    req.once("error", () => done(false));
    req.end();
  });
}

async function proberMain(config: ProbeConfig): Promise<void> {
  // One socket, kept alive: a probe never waits behind an upload's connection.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let samples: Sample[] = [];
  let stopped = false;
  const t0 = performance.now();
  parentPort!.on("message", (msg: string) => {
    if (msg === "cut") {
      parentPort!.postMessage(samples);
      samples = [];
    } else if (msg === "stop") {
      stopped = true;
    }
  });
  let next = performance.now();
  while (!stopped) {
    const at = performance.now() - t0;
    const r = await probeOnce(agent, config.url, config.timeoutMs);
    samples.push({ at, ms: r.ms, ok: r.ok });
    next += config.intervalMs;
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r2) => setTimeout(r2, wait));
    else next = performance.now(); // a slow probe: go on at once, do not burst to catch up
  }
  parentPort!.postMessage(samples);
  agent.destroy();
}

if (parentPort) void proberMain(workerData as ProbeConfig);
