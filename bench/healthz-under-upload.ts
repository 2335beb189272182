/**
 * The seed incident as a regression benchmark: an API whose event loop was
 * blocked answered /healthz in 7.6 s and its uploads died at the CDN's 60 s
 * timeout. Does docflow's gateway stay free while it streams big uploads?
 *
 *   node bench/healthz-under-upload.ts [--uploads 16] [--mib 256] [--storage s3|fs] [--strict]
 *
 * Starts real RabbitMQ, NATS and the S3 server (scripts/lib/services.ts) and the
 * real gateway (`node services/gateway/src/server.ts`, default timeouts), then:
 *   1. idle: GET /healthz every 50 ms for --idle-seconds (5);
 *   2. load: --uploads concurrent POST /v1/documents of --mib MiB each (a valid
 *      "%PDF-1.7" header, then bytes from a generator: nothing big is allocated),
 *      while /healthz is probed every 50 ms on its own keep-alive connection, from
 *      a worker thread of this process (so the uploads' I/O here cannot delay it).
 * Prints /healthz p50/p99/max idle and under load (and their ratio), every
 * upload's time and throughput, the gateway's own event-loop delay from
 * /metrics (prom-client resets its histogram at every scrape, so each scrape
 * covers one phase), the gateway's peak RSS (VmHWM) and CPU seconds per process.
 *
 * Flags:
 *   --uploads N           concurrent uploads (16)
 *   --tenants N           tenants the uploads are spread over (default: one per upload; the
 *                         gateway refuses more than DOCFLOW_MAX_UPLOADS_PER_TENANT, 8, per tenant with 429)
 *   --mib N               size of each upload in MiB (256)
 *   --storage s3|fs       the gateway's object store (s3: the versitygw server; fs: a temp dir)
 *   --idle-seconds N      length of the idle phase (5)
 *   --interval-ms N       /healthz probe interval (50)
 *   --p99-target-ms N     PASS/FAIL target for p99 under load (50)
 *   --max-target-ms N     PASS/FAIL target for max under load (250)
 *   --strict              exit 1 when a target is missed or an upload fails
 *   --upload-timeout-s N  client-side cap per upload (300); the gateway's own 55 s deadline applies first
 *   --gateway-env K=V,... extra environment for the gateway (e.g. DOCFLOW_REQUEST_TIMEOUT_MS=120000)
 * Everything it starts is stopped on exit, error, Ctrl-C or SIGTERM. Only 127.0.0.1 is contacted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, statfs } from "node:fs/promises";
import { Agent, request, type IncomingMessage } from "node:http";
import { createServer } from "node:net";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";

const ROOT = resolve(import.meta.dirname, "..");
const MiB = 1024 * 1024;
const TOKEN_SEED = Math.random().toString(36).slice(2, 14);
/** Bearer token of bench tenant `t` (one tenant per upload by default: like many users uploading at once). */
const token = (t: number) => `bench-token-${t}-${TOKEN_SEED}`;

// ---------------------------------------------------------------------------------------------
// The /healthz prober (runs in a worker thread: its own event loop)

interface ProbeConfig {
  url: string;
  intervalMs: number;
  timeoutMs: number;
}

interface Sample {
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

// ---------------------------------------------------------------------------------------------
// Helpers

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function stats(samples: Sample[]): { n: number; failed: number; p50: number; p99: number; max: number } {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  return { n: samples.length, failed: samples.filter((s) => !s.ok).length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms[ms.length - 1] ?? Number.NaN };
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.once("end", () => resolveGet({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.once("error", reject);
    req.end();
  });
}

/** Gauges of the gateway's /metrics we report (seconds). */
async function scrape(baseUrl: string): Promise<Record<string, number>> {
  const { body } = await get(`${baseUrl}/metrics`);
  const out: Record<string, number> = {};
  for (const name of ["nodejs_eventloop_lag_p50_seconds", "nodejs_eventloop_lag_p99_seconds", "nodejs_eventloop_lag_max_seconds", "nodejs_eventloop_lag_min_seconds", "docflow_upload_bytes_total"]) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, "m").exec(body);
    if (m) out[name] = Number(m[1]);
  }
  return out;
}

async function procStatus(pid: number, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** CPU seconds (user + system) of a process and, with `tree`, its live children's. */
async function cpuSeconds(pid: number, tree = false): Promise<number> {
  const read = async (p: number) => {
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  };
  let total = await read(pid);
  if (tree) {
    const { readdir } = await import("node:fs/promises");
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === pid) continue;
      const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp === pid) total += await read(Number(entry));
    }
  }
  return total;
}

/** The upload body: "%PDF-1.7\n" then pseudo-random bytes, `size` in all, in 1 MiB chunks of one reused buffer. */
function* pdfLikeBody(size: number, filler: Buffer): Generator<Buffer> {
  const header = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1");
  let left = size;
  const first = Buffer.concat([header, filler.subarray(0, Math.min(filler.length, size) - header.length)]);
  yield first;
  left -= first.length;
  while (left > 0) {
    const n = Math.min(left, filler.length);
    yield n === filler.length ? filler : filler.subarray(0, n);
    left -= n;
  }
}

interface UploadResult {
  i: number;
  status: number;
  ms: number;
  bytesSent: number;
  error?: string;
  code?: string;
}

function upload(baseUrl: string, i: number, tenant: number, size: number, filler: Buffer, agent: Agent, timeoutMs: number, signal: AbortSignal): Promise<UploadResult> {
  return new Promise((resolveUpload) => {
    const started = performance.now();
    let bytesSent = 0;
    let settled = false;
    const finish = (r: Omit<UploadResult, "i" | "ms" | "bytesSent">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolveUpload({ i, ms: performance.now() - started, bytesSent, ...r });
    };
    const req = request(`${baseUrl}/v1/documents?filename=bench-${i}.pdf`, {
      method: "POST",
      agent,
      signal,
      headers: { authorization: `Bearer ${token(tenant)}`, "content-type": "application/pdf", "content-length": String(size) },
    });
    const timer = setTimeout(() => req.destroy(new Error(`client timeout after ${timeoutMs} ms`)), timeoutMs);
    req.once("response", (res: IncomingMessage) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.once("end", () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { code?: string; status?: string }).code;
        } catch {
          // not JSON
        }
        finish({ status: res.statusCode ?? 0, ...(code ? { code } : {}) });
      });
      res.once("error", (err) => finish({ status: res.statusCode ?? 0, error: err.message }));
    });
    req.once("error", (err) => finish({ status: 0, error: err.message }));
    const body = Readable.from(pdfLikeBody(size, filler), { objectMode: false, highWaterMark: 1 });
    body.on("data", (chunk: Buffer) => (bytesSent += chunk.length));
    pipeline(body, req).catch(() => {
      // The response (e.g. an early 4xx/408) or the error event reports what happened.
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      uploads: { type: "string", default: "16" },
      tenants: { type: "string" },
      mib: { type: "string", default: "256" },
      storage: { type: "string", default: "s3" },
      "idle-seconds": { type: "string", default: "5" },
      "interval-ms": { type: "string", default: "50" },
      "p99-target-ms": { type: "string", default: "50" },
      "max-target-ms": { type: "string", default: "250" },
      "upload-timeout-s": { type: "string", default: "300" },
      "gateway-env": { type: "string", default: "" },
      strict: { type: "boolean", default: false },
    },
  });
  const uploads = Number(values.uploads);
  const mib = Number(values.mib);
  const storage = values.storage;
  if (!(uploads >= 1 && uploads <= 256 && mib >= 1 && mib <= 4096)) throw new Error("--uploads must be 1..256 and --mib 1..4096");
  if (storage !== "s3" && storage !== "fs") throw new Error("--storage must be s3 or fs");
  const size = mib * MiB;
  const tenants = Number(values.tenants ?? uploads);
  if (!(tenants >= 1 && tenants <= uploads)) throw new Error("--tenants must be 1..--uploads");
  const intervalMs = Number(values["interval-ms"]);
  const p99Target = Number(values["p99-target-ms"]);
  const maxTarget = Number(values["max-target-ms"]);

  // Disk: every upload is stored in full (by the S3 server, or the fs store), under the temp dir.
  const fsStat = await statfs(tmpdir());
  const free = fsStat.bavail * fsStat.bsize;
  const needed = uploads * size * 1.1 + 512 * MiB;
  console.log(`# docflow gateway: /healthz under ${uploads} concurrent uploads of ${mib} MiB (${storage} storage)`);
  console.log(`node ${process.version}, ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores; ${(free / 2 ** 30).toFixed(1)} GiB free in ${tmpdir()}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  if (free < needed) {
    console.log(`not enough disk: ${(needed / 2 ** 30).toFixed(1)} GiB needed; use fewer or smaller uploads (--uploads, --mib)`);
    return 2;
  }

  const cleanups: Array<() => Promise<void>> = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    })();
    return cleaning;
  };
  const abortAll = new AbortController();
  let gateway: ChildProcess | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping everything`);
    abortAll.abort();
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // Last resort if this process dies some other way: no gateway left behind (services.ts does the same for its groups).
  process.once("exit", () => {
    if (gateway?.exitCode === null && gateway.signalCode === null) gateway.kill("SIGKILL");
  });

  try {
    const { startAll } = await import("../scripts/lib/services.ts");
    const t0 = performance.now();
    const services = await startAll();
    cleanups.push(() => services.stop());
    console.log(`services up in ${((performance.now() - t0) / 1000).toFixed(1)} s: RabbitMQ ${services.rabbitmq.url.replace(/\/\/[^@]*@/, "//")}, NATS ${services.nats.url}, S3 ${services.s3.endpoint}`);

    const dataDir = await mkdtemp(join(tmpdir(), "docflow-bench-gateway-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const extraEnv = Object.fromEntries(values["gateway-env"].split(",").filter((kv) => kv.includes("=")).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/root",
      LOG_LEVEL: "warn",
      DOCFLOW_AMQP_URL: services.rabbitmq.url,
      DOCFLOW_AMQP_NAMESPACE: "bench",
      DOCFLOW_NATS_URL: services.nats.url,
      DOCFLOW_JOBS_BUCKET: "bench-jobs",
      DOCFLOW_DATA_DIR: dataDir,
      DOCFLOW_STORAGE: storage,
      DOCFLOW_S3_ENDPOINT: services.s3.endpoint,
      DOCFLOW_S3_BUCKET: "bench",
      DOCFLOW_S3_CREATE_BUCKET: "true",
      AWS_ACCESS_KEY_ID: services.s3.accessKey,
      AWS_SECRET_ACCESS_KEY: services.s3.secretKey,
      AWS_REGION: services.s3.region,
      DOCFLOW_DEV_TOKENS: Array.from({ length: tenants }, (_, t) => `${token(t)}=bench-${t}`).join(","),
      DOCFLOW_HOST: "127.0.0.1",
      DOCFLOW_PORT: String(port),
      DOCFLOW_MAX_UPLOAD_BYTES: String(size + MiB),
      ...extraEnv,
    };
    let logs = "";
    const child = spawn(process.execPath, [join(ROOT, "services/gateway/src/server.ts")], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    gateway = child;
    child.stdout!.on("data", (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000)));
    child.stderr!.on("data", (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000)));
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await once(child, "exit");
      clearTimeout(timer);
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the gateway exited during start-up:\n${logs}`);
      const ready = await get(`${baseUrl}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`the gateway was not ready in 60 s:\n${logs}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const gatewayPid = child.pid!;
    let gatewayExit: string | undefined;
    let stopping = false;
    cleanups.push(async () => {
      stopping = true; // runs before the gateway is stopped (cleanups run in reverse)
    });
    child.once("exit", (code, signal) => {
      if (stopping) return;
      gatewayExit = `exit code ${code ?? "-"}, signal ${signal ?? "-"}`;
      console.log(`\n!! the gateway exited during the run (${gatewayExit}); its last output:\n${logs.slice(-4000)}`);
    });
    console.log(`gateway pid ${gatewayPid} ready at ${baseUrl}; request deadline ${env.DOCFLOW_REQUEST_TIMEOUT_MS ?? "55000 (default)"} ms`);

    // The prober.
    const worker = new Worker(new URL(import.meta.url), { workerData: { url: `${baseUrl}/healthz`, intervalMs, timeoutMs: 10_000 } satisfies ProbeConfig });
    cleanups.push(async () => {
      await worker.terminate();
    });
    const cut = async (): Promise<Sample[]> => {
      const got = once(worker, "message") as Promise<[Sample[]]>;
      worker.postMessage("cut");
      return (await got)[0];
    };

    // Phase 1: idle.
    await scrape(baseUrl); // resets the gateway's event-loop histogram
    const idleSeconds = Number(values["idle-seconds"]);
    await cut(); // drop the samples from before the scrape
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idle = await cut();
    const idleLoop = await scrape(baseUrl);

    // Phase 2: load.
    const filler = Buffer.alloc(MiB);
    let x = 0x9e3779b9;
    for (let i = 0; i < filler.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      filler[i] = x >>> 24;
    }
    const rssBefore = await procStatus(gatewayPid, "VmRSS");
    const uploadAgent = new Agent({ keepAlive: false, maxSockets: Infinity });
    const ownLoop = monitorEventLoopDelay({ resolution: 10 });
    ownLoop.enable();
    let peakRss = 0;
    const rssTimer = setInterval(() => {
      void procStatus(gatewayPid, "VmRSS").then((v) => {
        if (v > peakRss) peakRss = v;
      });
    }, 250);
    const cpuBefore = { gateway: await cpuSeconds(gatewayPid), s3: await cpuSeconds(services.s3.pid, true), bench: process.cpuUsage() };
    const loadStart = performance.now();
    const results = await Promise.all(
      Array.from({ length: uploads }, (_, i) => upload(baseUrl, i, i % tenants, size, filler, uploadAgent, Number(values["upload-timeout-s"]) * 1000, abortAll.signal)),
    );
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const load = await cut();
    clearInterval(rssTimer);
    ownLoop.disable();
    const benchCpu = process.cpuUsage(cpuBefore.bench);
    const cpu = {
      gateway: (await cpuSeconds(gatewayPid)) - cpuBefore.gateway,
      s3: (await cpuSeconds(services.s3.pid, true)) - cpuBefore.s3,
      bench: (benchCpu.user + benchCpu.system) / 1e6,
    };
    const loadLoop = await scrape(baseUrl).catch(() => ({}) as Record<string, number>);
    const hwm = await procStatus(gatewayPid, "VmHWM");
    worker.postMessage("stop");
    uploadAgent.destroy();

    // Report.
    const i0 = stats(idle);
    const l0 = stats(load);
    const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-");
    const ms = (s: number | undefined) => (s === undefined ? "-" : (s * 1000).toFixed(1));
    console.log(`\n## /healthz latency (ms), probed every ${intervalMs} ms on its own keep-alive connection`);
    console.log("| phase | probes | failed | p50 | p99 | max |");
    console.log("|---|---|---|---|---|---|");
    console.log(`| idle (${idleSeconds} s) | ${i0.n} | ${i0.failed} | ${f(i0.p50)} | ${f(i0.p99)} | ${f(i0.max)} |`);
    console.log(`| under load (${loadSeconds.toFixed(1)} s) | ${l0.n} | ${l0.failed} | ${f(l0.p50)} | ${f(l0.p99)} | ${f(l0.max)} |`);
    console.log(`| ratio load/idle | | | ${(l0.p50 / i0.p50).toFixed(2)}x | ${(l0.p99 / i0.p99).toFixed(2)}x | ${(l0.max / i0.max).toFixed(2)}x |`);

    console.log("\n## gateway event-loop delay from its /metrics (ms; prom-client, 10 ms resolution, reset at each scrape)");
    console.log("| phase | p50 | p99 | max |");
    console.log("|---|---|---|---|");
    console.log(`| idle | ${ms(idleLoop.nodejs_eventloop_lag_p50_seconds)} | ${ms(idleLoop.nodejs_eventloop_lag_p99_seconds)} | ${ms(idleLoop.nodejs_eventloop_lag_max_seconds)} |`);
    console.log(`| under load | ${ms(loadLoop.nodejs_eventloop_lag_p50_seconds)} | ${ms(loadLoop.nodejs_eventloop_lag_p99_seconds)} | ${ms(loadLoop.nodejs_eventloop_lag_max_seconds)} |`);

    const ok = results.filter((r) => r.status === 202);
    const totalBytes = results.reduce((a, r) => a + r.bytesSent, 0);
    const storedBytes = (loadLoop.docflow_upload_bytes_total ?? 0) - (idleLoop.docflow_upload_bytes_total ?? 0);
    const durations = ok.map((r) => r.ms / 1000).sort((a, b) => a - b);
    console.log(`\n## uploads: ${ok.length}/${uploads} accepted (202) in ${loadSeconds.toFixed(1)} s (${tenants} tenant${tenants === 1 ? "" : "s"})`);
    console.log(`aggregate throughput ${(totalBytes / MiB / loadSeconds).toFixed(1)} MiB/s sent (${(totalBytes / MiB).toFixed(0)} MiB), ${(storedBytes / MiB / loadSeconds).toFixed(1)} MiB/s received by the gateway (docflow_upload_bytes_total)`);
    if (durations.length > 0) console.log(`accepted uploads: duration min ${durations[0]?.toFixed(1)} s, median ${percentile(durations, 50).toFixed(1)} s, max ${durations[durations.length - 1]?.toFixed(1)} s; throughput median ${(size / MiB / percentile(durations, 50)).toFixed(1)} MiB/s`);
    const byOutcome = new Map<string, number>();
    for (const r of results) {
      const key = r.status === 202 ? "202" : `${r.status || "no response"}${r.code ? ` ${r.code}` : ""}${r.error ? ` (${r.error})` : ""}`;
      byOutcome.set(key, (byOutcome.get(key) ?? 0) + 1);
    }
    console.log(`outcomes: ${[...byOutcome].map(([k, v]) => `${v} x ${k}`).join(", ")}`);
    console.log("| # | status | seconds | MiB sent | MiB/s |");
    console.log("|---|---|---|---|---|");
    for (const r of results) {
      console.log(`| ${r.i} | ${r.status || "-"}${r.code ? ` ${r.code}` : ""}${r.error ? ` ${r.error}` : ""} | ${(r.ms / 1000).toFixed(1)} | ${(r.bytesSent / MiB).toFixed(0)} | ${(r.bytesSent / MiB / (r.ms / 1000)).toFixed(1)} |`);
    }

    console.log(`\n## resources during the load phase`);
    console.log(`gateway RSS: ${(rssBefore / MiB).toFixed(0)} MiB before the uploads, highest sampled under load ${(peakRss / MiB).toFixed(0)} MiB, peak VmHWM ${(hwm / MiB).toFixed(0)} MiB; total uploaded ${(totalBytes / MiB).toFixed(0)} MiB (${uploads} x ${mib} MiB)`);
    console.log(`CPU seconds under load (${loadSeconds.toFixed(1)} s wall, ${availableParallelism()} cores): gateway ${cpu.gateway.toFixed(1)}, S3 server ${cpu.s3.toFixed(1)}, this benchmark ${cpu.bench.toFixed(1)}`);
    console.log(`machine load average after the load phase: ${loadavg().map((l) => l.toFixed(2)).join(" ")} (other processes on the machine share its ${availableParallelism()} cores)`);
    console.log(`this benchmark's own event-loop delay under load: p99 ${(ownLoop.percentile(99) / 1e6).toFixed(1)} ms, max ${(ownLoop.max / 1e6).toFixed(1)} ms (the prober has its own thread)`);

    if (gatewayExit !== undefined) console.log(`\nGATEWAY DIED during the run: ${gatewayExit}`);
    const pass = gatewayExit === undefined && l0.p99 <= p99Target && l0.max <= maxTarget && l0.failed === 0;
    console.log(`\nTARGET under load: /healthz p99 <= ${p99Target} ms and max <= ${maxTarget} ms: ${pass ? "PASS" : "FAIL"} (p99 ${f(l0.p99)} ms, max ${f(l0.max)} ms, ${l0.failed} failed probes)`);
    const allUploaded = ok.length === uploads;
    console.log(`UPLOADS: ${allUploaded ? "PASS" : "FAIL"}: ${ok.length}/${uploads} accepted`);
    if (values.strict && !(pass && allUploaded)) return 1;
    return 0;
  } finally {
    abortAll.abort();
    await cleanup();
  }
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  void proberMain(workerData as ProbeConfig);
}
