/**
 * Shared by the upload benchmarks (healthz-under-upload.ts, upload-throughput.ts,
 * upload-memory.ts): the real services and gateway, generated upload bodies, POST and tus
 * clients over node:http, the /healthz prober, /proc readings. Only 127.0.0.1 is contacted.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { request, type Agent, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Worker } from "node:worker_threads";
import { launchService, serviceEnv } from "@docflow/tools/launch";
import { freePort } from "@docflow/tools/ports";
import type { AllServices } from "@docflow/tools/services";
import type { ProbeConfig, Sample } from "./prober.ts";

export type { Sample } from "./prober.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

// ---------------------------------------------------------------------------------------------
// Cleanup on exit, error, Ctrl-C and SIGTERM

export interface Cleanups {
  push(fn: () => Promise<void>): void;
  run(): Promise<void>;
  /** Aborted on SIGINT/SIGTERM (uploads in flight stop). */
  signal: AbortSignal;
}

/** Cleanups run in reverse order, once; SIGINT/SIGTERM run them and exit 130. */
export function cleanups(): Cleanups {
  const fns: Array<() => Promise<void>> = [];
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const run = (): Promise<void> => {
    running ??= (async () => {
      abort.abort();
      for (const fn of fns.reverse()) await fn().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    })();
    return running;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping everything`);
    void run().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return { push: (fn) => fns.push(fn), run, signal: abort.signal };
}

// ---------------------------------------------------------------------------------------------
// Services and the gateway

export async function startServices(c: Cleanups): Promise<AllServices> {
  const { startAll } = await import("@docflow/tools/services");
  const t0 = performance.now();
  const services = await startAll();
  c.push(() => services.stop());
  console.log(
    `services up in ${((performance.now() - t0) / 1000).toFixed(1)} s: RabbitMQ ${services.rabbitmq.url.replace(/\/\/[^@]*@/, "//")}, NATS ${services.nats.url}, S3 ${services.s3.endpoint} (pid ${services.s3.pid})`,
  );
  return services;
}

/** "K=V,K2=V2" (a value may contain spaces, not commas). */
export function parseEnvList(list: string): Record<string, string> {
  return Object.fromEntries(
    list
      .split(",")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

const TOKEN_SEED = Math.random().toString(36).slice(2, 14);
/** Bearer token of bench tenant `t`. */
export const token = (t: number) => `bench-token-${t}-${TOKEN_SEED}`;

export interface GatewayOptions {
  storage: "s3" | "fs";
  tenants: number;
  maxUploadBytes: number;
  /** S3 bucket (created by the gateway); the same for every gateway of a run. */
  bucket: string;
  extraEnv?: Record<string, string>;
}

export interface Gateway {
  url: string;
  pid: number;
  child: ChildProcess;
  env: Record<string, string>;
  dataDir: string;
  logs(): string;
  /** Set when the gateway exited on its own. */
  exited(): string | undefined;
  /** SIGTERM (its graceful shutdown: a --cpu-prof profile is written), SIGKILL after 30 s. */
  stop(): Promise<void>;
}

/** The real gateway (`node services/gateway/src/server.ts`, default timeouts) on `services`. */
export async function startGateway(c: Cleanups, services: AllServices, options: GatewayOptions): Promise<Gateway> {
  const dataDir = await mkdtemp(join(tmpdir(), "docflow-bench-gateway-"));
  c.push(() => rm(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    ...serviceEnv(
      {
        amqpUrl: services.rabbitmq.url,
        natsUrl: services.nats.url,
        s3: { endpoint: services.s3.endpoint, accessKeyId: services.s3.accessKey, secretAccessKey: services.s3.secretKey, region: services.s3.region },
      },
      {
        storage: options.storage,
        dataDir,
        bucket: options.bucket,
        amqpNamespace: "bench",
        jobsBucket: "bench-jobs",
        logLevel: "warn",
        tokens: Object.fromEntries(Array.from({ length: options.tenants }, (_, t) => [token(t), `bench-${t}`])),
      },
    ),
    DOCFLOW_HOST: "127.0.0.1",
    DOCFLOW_PORT: String(port),
    DOCFLOW_MAX_UPLOAD_BYTES: String(options.maxUploadBytes),
    ...options.extraEnv,
  };
  // Without the telemetry preload: the figures are the gateway's own.
  let died: string | undefined;
  const gateway = launchService("gateway", {
    env,
    telemetry: false,
    keepChars: 20_000,
    onUnexpectedExit: (info, p) => {
      died = info;
      console.log(`\n!! the gateway exited during the run (${info}); its last output:\n${p.logs().slice(-4000)}`);
    },
  });
  // SIGTERM (its graceful shutdown: a --cpu-prof profile is written), SIGKILL after 30 s.
  const stop = () => gateway.stop({ graceMs: 30_000 });
  c.push(stop);
  await gateway.waitReady(`${url}/readyz`);
  return { url, pid: gateway.pid, child: gateway.child, env, dataDir, logs: () => gateway.logs(), exited: () => died, stop };
}

/** The tus chunk size the gateway advertises to clients. */
export async function tusChunkBytes(baseUrl: string): Promise<number> {
  const { status, body } = await httpGet(`${baseUrl}/v1/config`);
  const n = (JSON.parse(body) as { tusChunkBytes?: number }).tusChunkBytes;
  if (status !== 200 || !(typeof n === "number" && n > 0)) throw new Error(`GET /v1/config: ${status} ${body.slice(0, 200)}`);
  return n;
}

/** The S3 store the gateway writes to (its bucket on the benchmark's S3 server); destroy its client after use. */
async function gatewayStore(services: AllServices, gateway: Gateway) {
  const { S3ObjectStore } = await import("../../packages/infra/src/object-store/s3.ts");
  return new S3ObjectStore({
    bucket: gateway.env.DOCFLOW_S3_BUCKET!,
    endpoint: services.s3.endpoint,
    region: services.s3.region,
    credentials: { accessKeyId: services.s3.accessKey, secretAccessKey: services.s3.secretKey },
  });
}

/** Removes what the uploads stored (between phases, to keep the disk bounded). */
export async function removeStored(services: AllServices, gateway: Gateway, storage: "s3" | "fs"): Promise<void> {
  if (storage === "fs") {
    await rm(join(gateway.dataDir, "objects", "tenants"), { recursive: true, force: true });
    return;
  }
  const store = await gatewayStore(services, gateway);
  try {
    await store.deletePrefix("tenants/");
  } finally {
    store.client.destroy();
  }
}

/**
 * A resumable upload's final answer carries its Job before the SHA-256 is known (finishing an
 * upload never reads the file back; the processor records the hash), and these benchmarks run no
 * processor. So the SHA-256 of what each such upload stored is filled in here, read back after the
 * timed part: every upload is still checked byte for byte. Call it before `removeStored`.
 */
export async function fillStoredHashes(services: AllServices, gateway: Gateway, storage: "s3" | "fs", results: UploadResult[]): Promise<void> {
  const pending = results.filter((r) => r.ok && r.job && r.job.sha256 === null);
  if (pending.length === 0) return;
  const hashStream = async (body: AsyncIterable<Buffer>): Promise<string> => {
    const hash = createHash("sha256");
    for await (const chunk of body) hash.update(chunk);
    return hash.digest("hex");
  };
  const keyOf = (id: string, keys: string[]) => keys.find((k) => k.endsWith(`/jobs/${id}/source`));
  if (storage === "fs") {
    const root = join(gateway.dataDir, "objects");
    const keys = (await readdir(join(root, "tenants"), { recursive: true })).map((p) => `tenants/${String(p)}`);
    for (const r of pending) {
      const key = keyOf(r.job!.id, keys);
      if (key) r.job!.sha256 = await hashStream(createReadStream(join(root, key)));
    }
    return;
  }
  const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  const store = await gatewayStore(services, gateway);
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: "tenants/", ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    for (const r of pending) {
      const key = keyOf(r.job!.id, keys);
      const object = key ? await store.get(key) : null;
      if (object) r.job!.sha256 = await hashStream(object.body as AsyncIterable<Buffer>);
    }
  } finally {
    store.client.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

export function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
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

const LOOP_METRICS = ["nodejs_eventloop_lag_p50_seconds", "nodejs_eventloop_lag_p99_seconds", "nodejs_eventloop_lag_max_seconds", "nodejs_eventloop_lag_min_seconds", "docflow_upload_bytes_total"];

/**
 * Gauges and counters of the gateway's /metrics (seconds, bytes): by default the event-loop
 * delay ones (scraping resets prom-client's histogram) and the upload byte counter.
 */
export async function scrape(baseUrl: string, names: string[] = LOOP_METRICS): Promise<Record<string, number>> {
  const { body } = await httpGet(`${baseUrl}/metrics`);
  const out: Record<string, number> = {};
  for (const name of names) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, "m").exec(body);
    if (m) out[name] = Number(m[1]);
  }
  return out;
}

/** A `/proc/<pid>/status` field in bytes (VmRSS, VmHWM...). NaN when the process is gone. */
export async function procStatus(pid: number, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Resets the process's VmHWM to its current RSS (`echo 5 > /proc/<pid>/clear_refs`); false if not allowed. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  return writeFile(`/proc/${pid}/clear_refs`, "5").then(
    () => true,
    () => false,
  );
}

/** CPU seconds (user + system) of a process and, with `tree`, of its process group's other live members. */
export async function cpuSeconds(pid: number, tree = false): Promise<number> {
  const read = async (p: number) => {
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  };
  let total = await read(pid);
  if (tree) {
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === pid) continue;
      const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp === pid) total += await read(Number(entry));
    }
  }
  return total;
}

export interface Io {
  /** Bytes read / written through read(2)/write(2) and friends: files and sockets. */
  rchar: number;
  wchar: number;
  /** Bytes this process caused to be written to storage (page cache dirtied), and cancelled again by truncation/deletion. */
  writeBytes: number;
  cancelledWriteBytes: number;
}

/** `/proc/<pid>/io` of a process and, with `tree`, of its process group's other live members. */
export async function procIo(pid: number, tree = false): Promise<Io> {
  const read = async (p: number): Promise<Io> => {
    const text = await readFile(`/proc/${p}/io`, "utf8").catch(() => "");
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, "m").exec(text)?.[1] ?? 0);
    return { rchar: field("rchar"), wchar: field("wchar"), writeBytes: field("write_bytes"), cancelledWriteBytes: field("cancelled_write_bytes") };
  };
  const total = await read(pid);
  if (tree) {
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === pid) continue;
      const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) !== pid) continue;
      const io = await read(Number(entry));
      total.rchar += io.rchar;
      total.wchar += io.wchar;
      total.writeBytes += io.writeBytes;
      total.cancelledWriteBytes += io.cancelledWriteBytes;
    }
  }
  return total;
}

export function ioDelta(after: Io, before: Io): Io {
  return {
    rchar: after.rchar - before.rchar,
    wchar: after.wchar - before.wchar,
    writeBytes: after.writeBytes - before.writeBytes,
    cancelledWriteBytes: after.cancelledWriteBytes - before.cancelledWriteBytes,
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function stats(samples: Sample[]): { n: number; failed: number; p50: number; p99: number; max: number } {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  return { n: samples.length, failed: samples.filter((s) => !s.ok).length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms[ms.length - 1] ?? Number.NaN };
}

export const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-");
export const mib = (bytes: number) => (Number.isFinite(bytes) ? (bytes / MiB).toFixed(0) : "-");

// ---------------------------------------------------------------------------------------------
// Upload bodies: "%PDF-1.7" then pseudo-random bytes, generated from one 1 MiB buffer

const HEADER = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1");

/** 1 MiB of pseudo-random bytes (an LCG; `seed` makes files differ). */
export function makeFiller(seed = 0x9e3779b9): Buffer {
  const filler = Buffer.alloc(MiB);
  let x = seed >>> 0;
  for (let i = 0; i < filler.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    filler[i] = x >>> 24;
  }
  return filler;
}

/**
 * Bytes [start, end) of a file whose byte o is HEADER[o] for the header, else filler[o % 1 MiB]:
 * views of the header and of `filler` (at most 1 MiB each), nothing allocated. Any range of the
 * same file gives the same bytes, so a tus chunk is a range of it.
 */
export function* bodyRange(filler: Buffer, start: number, end: number): Generator<Buffer> {
  let pos = start;
  if (pos < HEADER.length && pos < end) {
    const stop = Math.min(HEADER.length, end);
    yield HEADER.subarray(pos, stop);
    pos = stop;
  }
  while (pos < end) {
    const at = pos % filler.length;
    const n = Math.min(end - pos, filler.length - at);
    yield filler.subarray(at, at + n);
    pos += n;
  }
}

/** SHA-256 (hex) of the whole file of `size` bytes made from `filler`. */
export function sha256Of(filler: Buffer, size: number): string {
  const hash = createHash("sha256");
  for (const chunk of bodyRange(filler, 0, size)) hash.update(chunk);
  return hash.digest("hex");
}

// ---------------------------------------------------------------------------------------------
// Clients: POST /v1/documents and tus (/v1/uploads), over node:http, bodies streamed

interface Sent {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  bytesSent: number;
  ms: number;
  error?: string;
}

/** One request; the body (if any) is streamed from `body`, one generated chunk at a time. */
function send(url: string, options: { method: string; headers: Record<string, string>; body?: Iterable<Buffer>; agent: Agent; timeoutMs: number; signal: AbortSignal }): Promise<Sent> {
  return new Promise((resolveSend) => {
    const started = performance.now();
    let bytesSent = 0;
    let settled = false;
    const req = request(url, { method: options.method, agent: options.agent, signal: options.signal, headers: options.headers });
    const timer = setTimeout(() => req.destroy(new Error(`client timeout after ${options.timeoutMs} ms`)), options.timeoutMs);
    const finish = (r: Omit<Sent, "ms" | "bytesSent">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolveSend({ ms: performance.now() - started, bytesSent, ...r });
    };
    req.once("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.once("end", () => {
        finish({ status: res.statusCode ?? 0, headers: res.headers, body });
        // An early answer (4xx, 408) while the body was still being sent: this socket is done.
        if (!req.writableFinished) req.destroy();
      });
      res.once("error", (err) => finish({ status: res.statusCode ?? 0, headers: res.headers, body, error: err.message }));
    });
    req.once("error", (err) => finish({ status: 0, headers: {}, body: "", error: err.message }));
    if (!options.body) {
      req.end();
      return;
    }
    const body = Readable.from(options.body, { objectMode: false, highWaterMark: 1 });
    body.on("data", (chunk: Buffer) => (bytesSent += chunk.length));
    pipeline(body, req).catch(() => {
      // The response (e.g. an early 4xx/408) or the error event reports what happened.
    });
  });
}

export type Transport = "post" | "tus";

export interface UploadSpec {
  baseUrl: string;
  token: string;
  size: number;
  filler: Buffer;
  filename: string;
  agent: Agent;
  /** Per request (a POST, a PATCH). */
  timeoutMs: number;
  signal: AbortSignal;
}

export interface UploadResult {
  transport: Transport;
  ok: boolean;
  /** Final status: 202 (POST), 200 (tus: the last PATCH), else the failing request's. */
  status: number;
  code?: string;
  error?: string;
  ms: number;
  bytesSent: number;
  /** The Job of the answer; a resumable upload's `sha256` is null there (see `fillStoredHashes`). */
  job?: { id: string; sha256: string | null; size: number };
  /** tus: PATCH requests, retries after a failed one, each PATCH's duration, the last PATCH's. */
  patches?: number;
  retries?: number;
  patchMs?: number[];
  finalPatchMs?: number;
  /** tus: the upload's URL. */
  url?: string;
}

function problemCode(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { code?: string }).code;
  } catch {
    return undefined;
  }
}

function parseJob(body: string): UploadResult["job"] {
  try {
    const j = JSON.parse(body) as { id?: string; sha256?: string | null; size?: number };
    return j.id && j.sha256 !== undefined ? { id: j.id, sha256: j.sha256, size: j.size ?? -1 } : undefined;
  } catch {
    return undefined;
  }
}

/** `POST /v1/documents?filename=` with the raw body. */
export async function postUpload(spec: UploadSpec): Promise<UploadResult> {
  const r = await send(`${spec.baseUrl}/v1/documents?filename=${encodeURIComponent(spec.filename)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${spec.token}`, "content-type": "application/pdf", "content-length": String(spec.size) },
    body: bodyRange(spec.filler, 0, spec.size),
    agent: spec.agent,
    timeoutMs: spec.timeoutMs,
    signal: spec.signal,
  });
  const ok = r.status === 202;
  const code = ok ? undefined : problemCode(r.body);
  const job = ok ? parseJob(r.body) : undefined;
  return { transport: "post", ok, status: r.status, ms: r.ms, bytesSent: r.bytesSent, ...(code ? { code } : {}), ...(r.error ? { error: r.error } : {}), ...(job ? { job } : {}) };
}

/**
 * A tus 1.0.0 upload: POST /v1/uploads (creation), then one PATCH per `chunkBytes` chunk, each
 * body streamed from the generator. A failed PATCH (no answer, 5xx, 409, 423, 429) is retried
 * from the offset a HEAD reports, at most `maxRetries` times per upload, as tus clients do.
 */
export async function tusUpload(spec: UploadSpec & { chunkBytes: number; maxRetries?: number }): Promise<UploadResult> {
  const started = performance.now();
  const auth = { authorization: `Bearer ${spec.token}`, "tus-resumable": "1.0.0" };
  const meta = `filename ${Buffer.from(spec.filename).toString("base64")},filetype ${Buffer.from("application/pdf").toString("base64")}`;
  const base = { agent: spec.agent, timeoutMs: spec.timeoutMs, signal: spec.signal };
  const result = (r: Partial<UploadResult> & { ok: boolean; status: number }): UploadResult => ({
    transport: "tus",
    ms: performance.now() - started,
    bytesSent,
    patches,
    retries,
    patchMs,
    ...r,
  });
  let bytesSent = 0;
  let patches = 0;
  let retries = 0;
  const patchMs: number[] = [];
  const created = await send(`${spec.baseUrl}/v1/uploads`, { method: "POST", headers: { ...auth, "upload-length": String(spec.size), "upload-metadata": meta }, ...base });
  const location = typeof created.headers.location === "string" ? created.headers.location : "";
  if (created.status !== 201 || !location) {
    const code = problemCode(created.body);
    return result({ ok: false, status: created.status, ...(code ? { code } : {}), ...(created.error ? { error: `creation: ${created.error}` } : {}) });
  }
  const uploadUrl = new URL(location, spec.baseUrl).toString();
  const withUrl = (r: Partial<UploadResult> & { ok: boolean; status: number }) => result({ url: uploadUrl, ...r });
  let offset = 0;
  for (;;) {
    const end = Math.min(spec.size, offset + spec.chunkBytes);
    const r = await send(uploadUrl, {
      method: "PATCH",
      headers: { ...auth, "upload-offset": String(offset), "content-type": "application/offset+octet-stream", "content-length": String(end - offset) },
      body: bodyRange(spec.filler, offset, end),
      ...base,
    });
    patches++;
    patchMs.push(r.ms);
    bytesSent += r.bytesSent;
    if (r.status === 200 && end === spec.size) {
      const job = parseJob(r.body);
      return withUrl({ ok: job !== undefined, status: 200, finalPatchMs: r.ms, ...(job ? { job } : { error: "final PATCH without a Job" }) });
    }
    if (r.status === 204) {
      offset = Number(r.headers["upload-offset"]);
      if (!(offset === end)) return withUrl({ ok: false, status: 204, error: `offset ${offset} after a PATCH to ${end}` });
      continue;
    }
    // A failure: retry from the server's offset, as tus clients do.
    const retryable = r.status === 0 || r.status >= 500 || r.status === 409 || r.status === 423 || r.status === 429;
    const code = problemCode(r.body);
    if (!retryable || retries >= (spec.maxRetries ?? 3) || spec.signal.aborted) {
      return withUrl({ ok: false, status: r.status, ...(code ? { code } : {}), error: `PATCH at ${offset}: ${r.error ?? code ?? r.status}` });
    }
    retries++;
    const wait = r.status === 429 ? Number(r.headers["retry-after"] ?? 1) * 1000 : 500;
    await new Promise((w) => setTimeout(w, wait));
    const head = await send(uploadUrl, { method: "HEAD", headers: auth, ...base });
    if (head.status !== 200) return withUrl({ ok: false, status: head.status, error: `HEAD after a failed PATCH: ${head.error ?? head.status}` });
    offset = Number(head.headers["upload-offset"]);
  }
}

export function upload(transport: Transport, spec: UploadSpec & { chunkBytes: number }): Promise<UploadResult> {
  return transport === "post" ? postUpload(spec) : tusUpload(spec);
}

/** "202", "200", or the status and code / error of a failed upload. */
export function outcome(r: UploadResult): string {
  return r.ok ? String(r.status) : `${r.status || "no response"}${r.code ? ` ${r.code}` : ""}${r.error ? ` (${r.error})` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// The /healthz prober (a worker thread) and an RSS sampler

export interface Prober {
  /** The samples since the last cut. */
  cut(): Promise<Sample[]>;
  stop(): Promise<void>;
}

export function startProber(c: Cleanups, url: string, intervalMs: number): Prober {
  const worker = new Worker(new URL("./prober.ts", import.meta.url), { workerData: { url, intervalMs, timeoutMs: 10_000 } satisfies ProbeConfig });
  const stop = async () => {
    await worker.terminate();
  };
  c.push(stop);
  return {
    cut: async () => {
      const got = once(worker, "message") as Promise<[Sample[]]>;
      worker.postMessage("cut");
      return (await got)[0];
    },
    stop,
  };
}

export interface RssSampler {
  /** Highest VmRSS sampled. */
  peak(): number;
  samples(): number;
  stop(): void;
}

/** Samples `/proc/<pid>/status` VmRSS every `intervalMs`. */
export function sampleRss(pid: number, intervalMs: number): RssSampler {
  let peak = 0;
  let n = 0;
  const timer = setInterval(() => {
    void procStatus(pid, "VmRSS").then((v) => {
      n++;
      if (v > peak) peak = v;
    });
  }, intervalMs);
  return { peak: () => peak, samples: () => n, stop: () => clearInterval(timer) };
}

/** Runs a benchmark's main function and exits with its code (1, with the error, when it throws). */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
