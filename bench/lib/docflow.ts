/**
 * Shared by the processing benchmarks (processing.ts, processor-memory.ts): real processors next
 * to the harness's gateway, a file uploaded through the public API, the Job's NATS events
 * (`docflow.events.<tenant>.<job>`) with GET /v1/jobs/{id} as a fallback, the processors'
 * event-loop metrics, and the RSS of a process and of its child processes. Everything is observed
 * from outside (HTTP, NATS, /proc), so it keeps working whatever the pipeline's stages are.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { AllServices } from "@docflow/tools/services";
import { launchService, type ServiceProcess } from "@docflow/tools/launch";
import { freePort } from "@docflow/tools/ports";
import { httpGet, type Cleanups, type Gateway } from "./harness.ts";

// ---------------------------------------------------------------------------------------------
// Processors

export interface Processor {
  index: number;
  pid: number;
  child: ChildProcess;
  metricsUrl: string;
  logs(): string;
  exited(): string | undefined;
  stop(): Promise<void>;
  process: ServiceProcess;
}

export interface ProcessorOptions {
  count: number;
  concurrency: number;
  extraEnv?: Record<string, string>;
  /** Extra `node` flags before the script, e.g. `--trace-gc` (which NODE_OPTIONS does not take). */
  nodeArgs?: string[];
}

/**
 * `count` real processors (`node --import @docflow/telemetry/register services/processor/src/server.ts`,
 * as `npm start` runs them) on the gateway's queues, KV bucket and S3 bucket; each with its own
 * probe/metrics port and work dir. Resolves once every one answers /readyz.
 */
export async function startProcessors(c: Cleanups, services: AllServices, gateway: Gateway, options: ProcessorOptions): Promise<Processor[]> {
  void services;
  const out: Processor[] = [];
  for (let i = 0; i < options.count; i++) {
    const workDir = await mkdtemp(join(tmpdir(), "docflow-bench-processor-"));
    c.push(() => rm(workDir, { recursive: true, force: true }));
    const port = await freePort();
    const env: Record<string, string> = {
      ...gateway.env,
      OTEL_SERVICE_NAME: "processor",
      DOCFLOW_PROCESSOR_HOST: "127.0.0.1",
      DOCFLOW_PROCESSOR_PORT: String(port),
      DOCFLOW_PROCESSOR_CONCURRENCY: String(options.concurrency),
      DOCFLOW_WORK_DIR: workDir,
      ...options.extraEnv,
    };
    // The whole output, for flags that print a lot (--trace-gc): DOCFLOW_BENCH_LOG_DIR/processor-<i>-<n>.log
    const logDir = process.env.DOCFLOW_BENCH_LOG_DIR;
    let died: string | undefined;
    const processor = launchService("processor", {
      env,
      nodeArgs: options.nodeArgs ?? [],
      keepChars: 20_000,
      ...(logDir ? { logFile: join(logDir, `processor-${i}-${Date.now()}.log`) } : {}),
      onUnexpectedExit: (info, p) => {
        died = info;
        console.log(`\n!! processor ${i} exited during the run (${info}); its last output:\n${p.logs().slice(-4000)}`);
      },
    });
    const stop = () => processor.stop({ graceMs: 20_000 });
    c.push(stop);
    out.push({ index: i, pid: processor.pid, child: processor.child, metricsUrl: `http://127.0.0.1:${port}/metrics`, logs: () => processor.logs(), exited: () => died, stop, process: processor });
  }
  await Promise.all(out.map((p) => p.process.waitReady(p.metricsUrl.replace(/\/metrics$/, "/readyz"))));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Upload a file (POST /v1/documents, streamed from disk)

export interface Posted {
  status: number;
  body: string;
  ms: number;
  /** performance.now() when the 202 arrived: "upload done". */
  doneAt: number;
  job?: { id: string; status: string };
}

export async function postFile(baseUrl: string, token: string, path: string, filename: string): Promise<Posted> {
  const size = (await stat(path)).size;
  const started = performance.now();
  return new Promise((resolvePost, reject) => {
    const req = request(`${baseUrl}/v1/documents?filename=${encodeURIComponent(filename)}`, {
      method: "POST",
      agent: false,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/pdf", "content-length": String(size) },
    });
    req.once("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.once("end", () => {
        const doneAt = performance.now();
        let job: Posted["job"];
        try {
          const j = JSON.parse(body) as { id?: string; status?: string };
          if (j.id) job = { id: j.id, status: j.status ?? "?" };
        } catch {
          /* a problem document */
        }
        resolvePost({ status: res.statusCode ?? 0, body, ms: doneAt - started, doneAt, ...(job ? { job } : {}) });
      });
    });
    req.once("error", reject);
    pipeline(createReadStream(path), req).catch(reject);
  });
}

export async function deleteJob(baseUrl: string, token: string, id: string): Promise<number> {
  return new Promise((res) => {
    const req = request(`${baseUrl}/v1/jobs/${id}`, { method: "DELETE", agent: false, headers: { authorization: `Bearer ${token}` } }, (r) => {
      r.resume();
      r.once("end", () => res(r.statusCode ?? 0));
    });
    req.once("error", () => res(0));
    req.end();
  });
}

export async function getJson<T>(url: string, token: string): Promise<{ status: number; json: T | undefined; body: string }> {
  const { status, body } = await httpGet(url, { authorization: `Bearer ${token}` });
  let json: T | undefined;
  try {
    json = JSON.parse(body) as T;
  } catch {
    json = undefined;
  }
  return { status, json, body };
}

/** GET a binary resource: status, byte count and the first bytes. */
export function getBytes(url: string, token: string): Promise<{ status: number; bytes: number; head: Buffer }> {
  return new Promise((res, rej) => {
    const req = request(url, { agent: false, headers: { authorization: `Bearer ${token}` } }, (r) => {
      let bytes = 0;
      const heads: Buffer[] = [];
      r.on("data", (d: Buffer) => {
        if (bytes < 16) heads.push(d);
        bytes += d.length;
      });
      r.once("end", () => res({ status: r.statusCode ?? 0, bytes, head: Buffer.concat(heads).subarray(0, 16) }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${url}: no answer in 30 s`)));
    req.once("error", rej);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Job events (NATS) with a polling fallback

export interface JobEventSeen {
  type: string;
  at: number;
  page?: number;
  pagesDone?: number;
  pageCount?: number;
  error?: { code: string; message: string };
}

export interface Events {
  /** Resolves with the terminal status (completed / failed / canceled) and when it was seen. */
  waitDone(jobId: string, opts: { baseUrl: string; token: string; timeoutMs: number; pollMs?: number }): Promise<{ status: string; at: number; via: "nats" | "http"; job?: unknown }>;
  events(jobId: string): JobEventSeen[];
  forget(jobId: string): void;
  close(): Promise<void>;
}

/** Subscribes to every event of `tenant` (before any upload, so the first events are not missed). */
export async function watchEvents(c: Cleanups, natsUrl: string, tenant: string): Promise<Events> {
  const { connect } = await import("@nats-io/transport-node");
  const nc = await connect({ servers: natsUrl, name: "bench" });
  const byJob = new Map<string, JobEventSeen[]>();
  const waiters = new Map<string, () => void>();
  const sub = nc.subscribe(`docflow.events.${tenant}.>`);
  void (async () => {
    for await (const m of sub) {
      const at = performance.now();
      try {
        const e = JSON.parse(new TextDecoder().decode(m.data)) as {
          type: string;
          jobId: string;
          page?: number;
          pagesDone?: number;
          pageCount?: number;
          job?: { error?: JobEventSeen["error"] };
          error?: JobEventSeen["error"];
        };
        const list = byJob.get(e.jobId) ?? [];
        const err = e.error ?? e.job?.error;
        list.push({
          type: e.type,
          at,
          ...(e.page !== undefined ? { page: e.page } : {}),
          ...(e.pagesDone !== undefined ? { pagesDone: e.pagesDone } : {}),
          ...(e.pageCount !== undefined ? { pageCount: e.pageCount } : {}),
          ...(err ? { error: err } : {}),
        });
        byJob.set(e.jobId, list);
        waiters.get(e.jobId)?.();
      } catch {
        /* not JSON: ignore */
      }
    }
  })();
  const close = async () => {
    await nc.drain().catch(() => {});
  };
  c.push(close);
  const terminal = (list: JobEventSeen[]) => list.find((e) => e.type === "job.completed" || e.type === "job.failed" || e.type === "job.canceled");
  return {
    events: (id) => byJob.get(id) ?? [],
    forget: (id) => void byJob.delete(id),
    close,
    waitDone: async (jobId, opts) => {
      const deadline = performance.now() + opts.timeoutMs;
      for (;;) {
        const t = terminal(byJob.get(jobId) ?? []);
        if (t) return { status: t.type.slice(4), at: t.at, via: "nats" };
        // The fallback: a lost core-NATS message must not hang the benchmark.
        const r = await getJson<{ status: string; error?: unknown }>(`${opts.baseUrl}/v1/jobs/${jobId}`, opts.token).catch(() => undefined);
        if (r?.json && ["completed", "failed", "canceled"].includes(r.json.status)) {
          // Give the event a moment to arrive (it is published right after the record's update).
          await new Promise((w) => setTimeout(w, 500));
          const t2 = terminal(byJob.get(jobId) ?? []);
          if (t2) return { status: t2.type.slice(4), at: t2.at, via: "nats" };
          return { status: r.json.status, at: performance.now(), via: "http", job: r.json };
        }
        if (performance.now() > deadline) throw new Error(`job ${jobId} not finished after ${opts.timeoutMs} ms (last: ${r?.body.slice(0, 300) ?? "no answer"})`);
        await new Promise<void>((w) => {
          const timer = setTimeout(w, opts.pollMs ?? 5_000);
          waiters.set(jobId, () => {
            if (terminal(byJob.get(jobId) ?? [])) {
              clearTimeout(timer);
              w();
            }
          });
        });
        waiters.delete(jobId);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Event-loop delay of the processors (docflow_eventloop_delay_seconds / _max_seconds)

export interface LoopHistogram {
  /** Cumulative counts by upper bound (seconds), +Inf last. */
  buckets: Array<[number, number]>;
  count: number;
  sum: number;
}

export async function scrapeLoop(metricsUrl: string): Promise<{ hist: LoopHistogram; max: number }> {
  const { body } = await httpGet(metricsUrl);
  const buckets: Array<[number, number]> = [];
  for (const m of body.matchAll(/^docflow_eventloop_delay_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.eE+-]+)$/gm)) {
    buckets.push([m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2])]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const num = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, "m").exec(body)?.[1] ?? Number.NaN);
  return { hist: { buckets, count: num("docflow_eventloop_delay_seconds_count"), sum: num("docflow_eventloop_delay_seconds_sum") }, max: num("docflow_eventloop_delay_max_seconds") };
}

export function histDelta(after: LoopHistogram, before: LoopHistogram): LoopHistogram {
  return {
    buckets: after.buckets.map(([le, n], i) => [le, n - (before.buckets[i]?.[1] ?? 0)]),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  };
}

/** Prometheus' histogram_quantile: linear interpolation inside the bucket (seconds). */
export function histQuantile(h: LoopHistogram, q: number): number {
  if (!(h.count > 0)) return Number.NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevN = 0;
  for (const [le, n] of h.buckets) {
    if (n >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevN)) / Math.max(1, n - prevN);
    }
    prevLe = le;
    prevN = n;
  }
  return prevLe;
}

/** Share of samples above `seconds` (a bucket bound). */
export function histAbove(h: LoopHistogram, seconds: number): number {
  const le = h.buckets.find(([b]) => b >= seconds);
  return le && h.count > 0 ? (h.count - le[1]) / h.count : Number.NaN;
}

export interface LoopWatch {
  /** Histogram over the window and the worst delay (max of the gauge over the window's scrapes). */
  stop(): Promise<{ hist: LoopHistogram; max: number; scrapes: number; failedScrapes: number }>;
}

/** Starts a window: scrapes now (resets the max gauge), then every `intervalMs` for the max. */
export async function watchLoop(metricsUrl: string, intervalMs = 1000): Promise<LoopWatch> {
  const first = await scrapeLoop(metricsUrl);
  let max = 0;
  let scrapes = 0;
  let failed = 0;
  let last = first;
  const tick = async () => {
    try {
      last = await scrapeLoop(metricsUrl);
      scrapes++;
      if (last.max > max) max = last.max;
    } catch {
      failed++;
    }
  };
  let busy: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    busy = busy.then(tick);
  }, intervalMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await busy;
      await tick();
      return { hist: histDelta(last.hist, first.hist), max, scrapes, failedScrapes: failed };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// RSS of a process and of its descendants

async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const t of tasks) {
    const text = await readFile(`/proc/${pid}/task/${t}/children`, "utf8").catch(() => "");
    for (const p of text.split(" ")) if (p.trim()) out.push(Number(p));
  }
  return out;
}

async function rssOf(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const m = /^VmRSS:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** VmRSS of `pid` and the sum over its descendants (and how many there are), in bytes. */
export async function treeRss(pid: number): Promise<{ self: number; children: number; count: number }> {
  const self = await rssOf(pid);
  let children = 0;
  let count = 0;
  const queue = await childrenOf(pid);
  while (queue.length > 0) {
    const p = queue.shift()!;
    const r = await rssOf(p);
    if (Number.isFinite(r)) {
      children += r;
      count++;
    }
    queue.push(...(await childrenOf(p)));
  }
  return { self, children, count };
}

export interface TreeSample {
  t: number;
  self: number;
  children: number;
  count: number;
}

export interface TreeSampler {
  samples(): TreeSample[];
  stop(): Promise<TreeSample[]>;
}

/** Samples `treeRss(pid)` every `intervalMs` (a sample never overlaps the previous one). */
export function sampleTree(pid: number, intervalMs: number, t0 = performance.now()): TreeSampler {
  const samples: TreeSample[] = [];
  let stopped = false;
  let busy: Promise<void> = Promise.resolve();
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    busy = treeRss(pid)
      .then((s) => {
        if (!stopped && Number.isFinite(s.self)) samples.push({ t: performance.now() - t0, ...s });
      })
      .finally(() => (running = false));
  }, intervalMs);
  return {
    samples: () => samples,
    stop: async () => {
      clearInterval(timer);
      await busy;
      stopped = true;
      return samples;
    },
  };
}

/**
 * CPU seconds of a process including its reaped children (utime + stime + cutime + cstime from
 * `/proc/<pid>/stat`): the processor's poppler children count once they have exited. NaN if gone.
 */
export async function cpuWithChildren(pid: number | "self"): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  if (!stat) return Number.NaN;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

/** CPU seconds of a process itself and of its reaped children, separately. */
export async function cpuSplit(pid: number): Promise<{ self: number; children: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  if (!stat) return { self: Number.NaN, children: Number.NaN };
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { self: (Number(f[11]) + Number(f[12])) / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
}

export interface CanaryFigures {
  /** Milliseconds. */
  n: number;
  p50: number;
  p99: number;
  max: number;
  above50: number;
}

export interface Canary {
  cut(): Promise<CanaryFigures>;
  stop(): Promise<void>;
}

/** Starts bench/lib/canary.ts: the event-loop delay of an idle Node process on this machine. */
export async function startCanary(c: Cleanups): Promise<Canary> {
  const { fork } = await import("node:child_process");
  const child = fork(new URL("./canary.ts", import.meta.url), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
  };
  c.push(stop);
  await new Promise((r) => setTimeout(r, 300));
  return {
    cut: async () => {
      const got = once(child, "message") as Promise<[CanaryFigures]>;
      child.send("cut");
      return (await got)[0];
    },
    stop,
  };
}

/** CPU seconds of a process's main thread (the event loop: JS, GC on it, spawn) alone. */
export async function cpuMainThread(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/task/${pid}/stat`, "utf8").catch(() => "");
  if (!stat) return Number.NaN;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * Whole-machine CPU from `/proc/stat` (first line; USER_HZ 100): busy (everything but idle and
 * iowait) and total seconds summed over all cores. The delta of two readings over a phase says how
 * much of the machine was used, by anyone: a phase that had all of it was limited by the machine.
 */
export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - (f[3] ?? 0) - (f[4] ?? 0)) / 100, total: total / 100 };
}

/** Polls every processor's `docflow_tasks_in_flight` until all are 0 (after a cancellation), at most `timeoutMs`. */
export async function waitIdle(procs: Processor[], timeoutMs = 60_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const busy = await Promise.all(
      procs.map(async (p) => {
        const { body } = await httpGet(p.metricsUrl).catch(() => ({ body: "" }));
        return Number(/^docflow_tasks_in_flight(?:\{[^}]*\})? ([0-9.eE+-]+)$/m.exec(body)?.[1] ?? 1);
      }),
    );
    if (busy.every((n) => n === 0)) return true;
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}
