import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { startStack, type Stack } from "../support/stack.ts";
import { TusClient } from "../support/tus.ts";

/**
 * The CI smoke variant of bench/healthz-under-upload.ts: a few concurrent uploads through the
 * real gateway on S3, POST and tus, while /healthz is probed. It catches a blocked event loop
 * (the seed incident: /healthz in 7.6 s) and broken bytes, not small regressions: the bound is
 * loose because CI machines are shared. The benchmarks in bench/ measure properly.
 */

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
const POSTS = 3;
const TUSES = 3;
const PROBE_INTERVAL_MS = 50;
const HEALTHZ_MAX_MS = 1000;

/** Bytes of upload `seed`: "%PDF-1.7" then 1 MiB of pseudo-random bytes repeated, generated as sent. */
function filler(seed: number): Buffer {
  const b = Buffer.alloc(MiB);
  let x = (0x9e3779b9 + seed * 7919) >>> 0;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  Buffer.from("%PDF-1.7\n").copy(b);
  return b;
}

/** Bytes [start, end) of the file: views of the 1 MiB filler, nothing else allocated. */
function* range(fill: Buffer, start: number, end: number): Generator<Buffer> {
  for (let pos = start; pos < end;) {
    const at = pos % fill.length;
    const n = Math.min(end - pos, fill.length - at);
    yield fill.subarray(at, at + n);
    pos += n;
  }
}

function stream(fill: Buffer, start: number, end: number): ReadableStream<Uint8Array> {
  const chunks = range(fill, start, end);
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.next();
      if (next.done) controller.close();
      else controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length));
    },
  });
}

function sha256(fill: Buffer): string {
  const hash = createHash("sha256");
  for (const chunk of range(fill, 0, SIZE)) hash.update(chunk);
  return hash.digest("hex");
}

/** Probes GET url every intervalMs on one keep-alive socket, from a worker thread (the uploads' I/O here cannot delay it). */
const PROBER = `
const { parentPort, workerData } = require("node:worker_threads");
const { Agent, request } = require("node:http");
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const samples = [];
let stopped = false;
parentPort.on("message", () => { stopped = true; });
const probe = () => new Promise((resolve) => {
  const t = performance.now();
  const req = request(workerData.url, { agent }, (res) => {
    res.resume();
    res.once("end", () => resolve({ ms: performance.now() - t, ok: res.statusCode === 200 }));
  });
  req.setTimeout(10000, () => req.destroy(new Error("timeout")));
  req.once("error", () => resolve({ ms: performance.now() - t, ok: false }));
  req.end();
});
(async () => {
  while (!stopped) {
    const t = performance.now();
    samples.push(await probe());
    await new Promise((r) => setTimeout(r, Math.max(0, workerData.intervalMs - (performance.now() - t))));
  }
  parentPort.postMessage(samples);
  agent.destroy();
})();
`;

interface Outcome {
  transport: "post" | "tus";
  status: number;
  job?: Job;
  seconds: number;
  requests: number;
  detail?: string;
}

describe("uploads under load: the gateway keeps answering /healthz (smoke)", () => {
  let stack: Stack;
  let token: string;

  beforeAll(async () => {
    // No processor: the random "PDFs" would only fail processing and take CPU from the gateway.
    stack = await startStack({ storage: "s3", processors: 0, env: { LOG_LEVEL: "warn" } });
    token = Object.values(stack.tokens)[0]!;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it(`streams ${POSTS} POST and ${TUSES} tus uploads of ${SIZE / MiB} MiB at once, intact, while /healthz stays under ${HEALTHZ_MAX_MS} ms`, async () => {
    const { tusChunkBytes } = (await (await fetch(`${stack.baseUrl}/v1/config`)).json()) as { tusChunkBytes: number };
    expect(tusChunkBytes).toBeGreaterThan(0);
    const fills = Array.from({ length: POSTS + TUSES }, (_, i) => filler(i));
    const expected = fills.map(sha256);
    const tus = new TusClient(token);

    const postUpload = async (fill: Buffer, i: number): Promise<Outcome> => {
      const t = performance.now();
      const res = await fetch(`${stack.baseUrl}/v1/documents?filename=smoke-${i}.pdf`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/pdf" },
        body: stream(fill, 0, SIZE),
        duplex: "half",
      } as RequestInit);
      const body = await res.text();
      return {
        transport: "post",
        status: res.status,
        seconds: (performance.now() - t) / 1000,
        requests: 1,
        ...(res.status === 202 ? { job: JSON.parse(body) as Job } : { detail: body.slice(0, 300) }),
      };
    };
    const tusUpload = async (fill: Buffer, i: number): Promise<Outcome> => {
      const t = performance.now();
      const { res, location } = await tus.create(stack.baseUrl, SIZE, { filename: `smoke-${i}.pdf`, filetype: "application/pdf" });
      if (res.status !== 201) return { transport: "tus", status: res.status, seconds: 0, requests: 1, detail: await res.text() };
      let requests = 1;
      for (let offset = 0; offset < SIZE; offset += tusChunkBytes) {
        const end = Math.min(SIZE, offset + tusChunkBytes);
        const patch = await tus.patch(stack.baseUrl, location, offset, stream(fill, offset, end));
        requests++;
        const body = await patch.text();
        const seconds = (performance.now() - t) / 1000;
        if (end === SIZE) return { transport: "tus", status: patch.status, seconds, requests, ...(patch.status === 200 ? { job: JSON.parse(body) as Job } : { detail: body.slice(0, 300) }) };
        if (patch.status !== 204) return { transport: "tus", status: patch.status, seconds, requests, detail: `PATCH at ${offset}: ${body.slice(0, 300)}` };
      }
      throw new Error("unreachable");
    };

    const prober = new Worker(PROBER, { eval: true, workerData: { url: `${stack.baseUrl}/healthz`, intervalMs: PROBE_INTERVAL_MS } });
    const t0 = performance.now();
    let outcomes: Outcome[];
    try {
      outcomes = await Promise.all(fills.map((fill, i) => (i < POSTS ? postUpload(fill, i) : tusUpload(fill, i))));
    } finally {
      prober.postMessage("stop");
    }
    const wall = (performance.now() - t0) / 1000;
    const [samples] = await new Promise<[Array<{ ms: number; ok: boolean }>]>((resolve) => prober.once("message", (m: Array<{ ms: number; ok: boolean }>) => resolve([m])));
    await prober.terminate();

    const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
    const pct = (p: number) => ms[Math.min(ms.length - 1, Math.max(0, Math.ceil((p / 100) * ms.length) - 1))] ?? Number.NaN;
    const max = ms[ms.length - 1] ?? Number.NaN;
    const failed = samples.filter((s) => !s.ok).length;
    const lines = [
      `upload smoke: ${POSTS} POST + ${TUSES} tus (chunks of ${tusChunkBytes} bytes) x ${SIZE / MiB} MiB in ${wall.toFixed(1)} s, ${((SIZE * fills.length) / MiB / wall).toFixed(1)} MiB/s aggregate`,
      ...outcomes.map(
        (o, i) =>
          `  #${i} ${o.transport.padEnd(4)} ${o.status} in ${o.seconds.toFixed(1)} s (${o.requests} request${o.requests === 1 ? "" : "s"})${o.job ? `, job ${o.job.id}` : ` ${o.detail ?? ""}`}`,
      ),
      `  /healthz under load: ${samples.length} probes every ${PROBE_INTERVAL_MS} ms, ${failed} failed, p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, max ${max.toFixed(1)} ms (limit ${HEALTHZ_MAX_MS} ms)`,
    ];
    console.log(lines.join("\n"));

    for (const [i, o] of outcomes.entries()) {
      expect(o.status, `${o.transport} upload #${i}: ${o.detail ?? ""}\n${stack.logs().slice(-3000)}`).toBe(o.transport === "post" ? 202 : 200);
      // POST hashes as it streams; a resumable upload's hash comes with processing (none runs here).
      expect(o.job).toMatchObject({ status: "queued", size: SIZE, sha256: o.transport === "post" ? expected[i] : null });
      // The stored bytes are the uploaded ones.
      const source = await fetch(`${stack.baseUrl}/v1/jobs/${o.job!.id}/source`, { headers: { authorization: `Bearer ${token}` } });
      expect(
        createHash("sha256")
          .update(Buffer.from(await source.arrayBuffer()))
          .digest("hex"),
      ).toBe(expected[i]);
    }
    expect(samples.length, "the prober ran during the uploads").toBeGreaterThan(5);
    expect(failed, "failed /healthz probes").toBe(0);
    expect(max, lines[lines.length - 1]).toBeLessThan(HEALTHZ_MAX_MS);
  });
});
