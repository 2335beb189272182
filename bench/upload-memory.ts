/**
 * Is the gateway's memory bounded per upload whatever the file size? One large upload (2 GiB
 * by default) through the real gateway, as `POST /v1/documents` and as tus (`/v1/uploads`, one
 * PATCH per `tusChunkBytes` chunk), each on a freshly started gateway, while its RSS is sampled
 * from `/proc/<pid>/status` (VmRSS every 100 ms; VmHWM, the kernel's own peak, reset through
 * `/proc/<pid>/clear_refs` when the upload starts, so nothing sampled between two reads is missed).
 *
 *   node bench/upload-memory.ts [--mib 2048] [--transport post|tus|both]
 *
 * Prints, per transport: RSS before the upload, the peak (the higher of the sampled VmRSS and
 * VmHWM), the growth (peak - before) against the target (<= 128 MiB): PASS/FAIL; RSS after;
 * V8 heap and external memory from the gateway's /metrics (scraped every second); an RSS
 * timeline; the upload's outcome, time and whether the Job's SHA-256 is that of the bytes sent.
 * The body is generated as it is sent (nothing big is allocated here either).
 *
 * Flags:
 *   --mib N               size of the upload in MiB (2048)
 *   --transport post|tus|both  (both: POST on one gateway, then tus on a new one)
 *   --storage s3|fs       the gateway's object store (s3)
 *   --interval-ms N       RSS sampling interval (100)
 *   --target-mib N        PASS/FAIL threshold for the growth (128)
 *   --settle-seconds N    wait after the gateway is ready before "before" is read (3)
 *   --upload-timeout-s N  client-side cap per request (300); the gateway's 55 s deadline applies first
 *   --gateway-env K=V,... extra gateway environment, e.g. "NODE_OPTIONS=--cpu-prof --cpu-prof-dir=/tmp/prof"
 *   --strict              exit 1 on FAIL
 * Only 127.0.0.1 is contacted; everything is stopped on exit, error, Ctrl-C or SIGTERM.
 */
import { statfs } from "node:fs/promises";
import { Agent } from "node:http";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { parseArgs } from "node:util";
import {
  MiB,
  cleanups,
  cpuSeconds,
  makeFiller,
  mib,
  outcome,
  parseEnvList,
  procStatus,
  fillStoredHashes,
  removeStored,
  resetPeakRss,
  scrape,
  sha256Of,
  startGateway,
  startServices,
  token,
  tusChunkBytes,
  upload,
  type Transport,
  type UploadResult,
  runMain,
} from "./lib/harness.ts";

const MEMORY_METRICS = ["nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes", "nodejs_external_memory_bytes"];

interface Run {
  transport: Transport;
  chunkBytes: number;
  before: number;
  sampledPeak: number;
  hwm: number;
  hwmReset: boolean;
  after: number;
  samples: Array<{ s: number; rss: number }>;
  heapUsedMax: number;
  heapTotalMax: number;
  externalMax: number;
  heap: Array<{ s: number; used: number; total: number; external: number }>;
  result: UploadResult;
  cpuGateway: number;
  loadBefore: number[];
  loadAfter: number[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mib: { type: "string", default: "2048" },
      transport: { type: "string", default: "both" },
      storage: { type: "string", default: "s3" },
      "interval-ms": { type: "string", default: "100" },
      "target-mib": { type: "string", default: "128" },
      "settle-seconds": { type: "string", default: "3" },
      "upload-timeout-s": { type: "string", default: "300" },
      "gateway-env": { type: "string", default: "" },
      strict: { type: "boolean", default: false },
    },
  });
  const sizeMiB = Number(values.mib);
  if (!(sizeMiB >= 1 && sizeMiB <= 16_384)) throw new Error("--mib must be 1..16384");
  const storage = values.storage;
  if (storage !== "s3" && storage !== "fs") throw new Error("--storage must be s3 or fs");
  const transports: Transport[] = values.transport === "both" ? ["post", "tus"] : values.transport === "post" || values.transport === "tus" ? [values.transport] : [];
  if (transports.length === 0) throw new Error("--transport must be post, tus or both");
  const size = sizeMiB * MiB;
  const intervalMs = Number(values["interval-ms"]);
  const targetBytes = Number(values["target-mib"]) * MiB;
  const timeoutMs = Number(values["upload-timeout-s"]) * 1000;

  const fsStat = await statfs(tmpdir());
  const free = fsStat.bavail * fsStat.bsize;
  const needed = size * 2.2 + 512 * MiB; // the object, plus tus's temporary part files
  console.log(`# docflow gateway memory: one ${sizeMiB} MiB upload (${transports.join(", then ")}; ${storage} storage), RSS sampled every ${intervalMs} ms`);
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores; ${(free / 2 ** 30).toFixed(1)} GiB free in ${tmpdir()}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  if (free < needed) {
    console.log(`not enough disk: ${(needed / 2 ** 30).toFixed(1)} GiB needed; use a smaller upload (--mib)`);
    return 2;
  }

  const c = cleanups();
  try {
    const services = await startServices(c);
    const filler = makeFiller();
    const expectedSha = sha256Of(filler, size);
    const runs: Run[] = [];
    for (const transport of transports) {
      // A fresh gateway per transport: "before" is a gateway that has served nothing yet.
      const gateway = await startGateway(c, services, { storage, tenants: 1, maxUploadBytes: size + MiB, bucket: "bench", extraEnv: parseEnvList(values["gateway-env"]) });
      const chunkBytes = await tusChunkBytes(gateway.url);
      console.log(
        `\n${transport}: gateway pid ${gateway.pid} at ${gateway.url}; request deadline ${gateway.env.DOCFLOW_REQUEST_TIMEOUT_MS ?? "55000 (default)"} ms${transport === "tus" ? `; tusChunkBytes ${chunkBytes} (${Math.ceil(size / chunkBytes)} PATCHes)` : ""}`,
      );
      await new Promise((r) => setTimeout(r, Number(values["settle-seconds"]) * 1000));
      const before = await procStatus(gateway.pid, "VmRSS");
      const hwmReset = await resetPeakRss(gateway.pid);
      const loadBefore = loadavg();
      const cpu0 = await cpuSeconds(gateway.pid);
      const t0 = performance.now();
      const samples: Array<{ s: number; rss: number }> = [];
      const sampler = setInterval(() => {
        const s = (performance.now() - t0) / 1000;
        void procStatus(gateway.pid, "VmRSS").then((rss) => {
          if (Number.isFinite(rss)) samples.push({ s, rss });
        });
      }, intervalMs);
      let heapUsedMax = 0;
      let heapTotalMax = 0;
      let externalMax = 0;
      const heap: Run["heap"] = [];
      const scraper = setInterval(() => {
        const s = (performance.now() - t0) / 1000;
        void scrape(gateway.url, MEMORY_METRICS).then(
          (m) => {
            heapUsedMax = Math.max(heapUsedMax, m.nodejs_heap_size_used_bytes ?? 0);
            heapTotalMax = Math.max(heapTotalMax, m.nodejs_heap_size_total_bytes ?? 0);
            externalMax = Math.max(externalMax, m.nodejs_external_memory_bytes ?? 0);
            heap.push({ s, used: m.nodejs_heap_size_used_bytes ?? Number.NaN, total: m.nodejs_heap_size_total_bytes ?? Number.NaN, external: m.nodejs_external_memory_bytes ?? Number.NaN });
          },
          () => {},
        );
      }, 1000);
      const agent = new Agent({ keepAlive: transport === "tus", maxSockets: Infinity });
      const result = await upload(transport, { baseUrl: gateway.url, token: token(0), size, filler, filename: `memory-${transport}.pdf`, agent, timeoutMs, signal: c.signal, chunkBytes });
      clearInterval(sampler);
      clearInterval(scraper);
      agent.destroy();
      const hwm = await procStatus(gateway.pid, "VmHWM");
      const cpuGateway = (await cpuSeconds(gateway.pid)) - cpu0;
      await new Promise((r) => setTimeout(r, 1000));
      const after = await procStatus(gateway.pid, "VmRSS");
      const sampledPeak = Math.max(0, ...samples.map((s) => s.rss));
      runs.push({ transport, chunkBytes, before, sampledPeak, hwm, hwmReset, after, samples, heapUsedMax, heapTotalMax, externalMax, heap, result, cpuGateway, loadBefore, loadAfter: loadavg() });
      console.log(`${transport}: ${outcome(result)} in ${(result.ms / 1000).toFixed(1)} s; RSS ${mib(before)} -> peak ${mib(Math.max(sampledPeak, hwm))} MiB`);
      if (gateway.exited() !== undefined) console.log(`GATEWAY DIED during the run: ${gateway.exited()}`);
      await gateway.stop(); // SIGTERM: a --cpu-prof profile is written now
      await fillStoredHashes(services, gateway, storage, [result]);
      await removeStored(services, gateway, storage);
    }

    console.log(`\n## gateway memory during one ${sizeMiB} MiB upload (MiB; peak = max(sampled VmRSS, VmHWM))`);
    console.log(
      "| transport | RSS before | peak (sampled / VmHWM) | growth | RSS 1 s after | V8 heap used / total max | external max | upload | seconds | MiB/s | gateway CPU s | load avg before -> after |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
    const verdicts: string[] = [];
    let pass = true;
    for (const r of runs) {
      const peak = Math.max(r.sampledPeak, r.hwmReset ? r.hwm : 0);
      const growth = peak - r.before;
      const verified = r.result.ok && r.result.job?.sha256 === expectedSha && r.result.job.size === size;
      console.log(
        `| ${r.transport} | ${mib(r.before)} | ${mib(peak)} (${mib(r.sampledPeak)} / ${r.hwmReset ? mib(r.hwm) : "n/a"}) | **${mib(growth)}** | ${mib(r.after)} | ${mib(r.heapUsedMax)} / ${mib(r.heapTotalMax)} | ${mib(r.externalMax)} | ${outcome(r.result)}${verified ? ", SHA-256 ok" : r.result.ok ? ", SHA-256 WRONG" : ""} | ${(r.result.ms / 1000).toFixed(1)} | ${(r.result.bytesSent / MiB / (r.result.ms / 1000)).toFixed(1)} | ${r.cpuGateway.toFixed(1)} | ${r.loadBefore[0]!.toFixed(2)} -> ${r.loadAfter[0]!.toFixed(2)} |`,
      );
      const ok = growth <= targetBytes && verified;
      pass &&= ok;
      verdicts.push(
        `TARGET ${r.transport}: RSS growth <= ${mib(targetBytes)} MiB: ${growth <= targetBytes ? "PASS" : "FAIL"} (${mib(growth)} MiB); upload ${verified ? "accepted with the right SHA-256" : `NOT accepted intact: ${outcome(r.result)}`}`,
      );
    }
    for (const r of runs) {
      // About 12 points: the RSS over the upload's life.
      const sorted = [...r.samples].sort((a, b) => a.s - b.s);
      const step = Math.max(1, Math.ceil(sorted.length / 12));
      const points = sorted.filter((_, i) => i % step === 0 || i === sorted.length - 1);
      const top = sorted.reduce((a, b) => (b.rss > a.rss ? b : a), sorted[0] ?? { s: Number.NaN, rss: Number.NaN });
      console.log(
        `\n${r.transport} RSS timeline (s: MiB): ${points.map((p) => `${p.s.toFixed(1)}: ${mib(p.rss)}`).join(", ")}; highest sample ${mib(top.rss)} MiB at ${top.s.toFixed(1)} s of ${(r.result.ms / 1000).toFixed(1)} s`,
      );
      const heap = [...r.heap].sort((a, b) => a.s - b.s);
      const hstep = Math.max(1, Math.ceil(heap.length / 12));
      const hpoints = heap.filter((_, i) => i % hstep === 0 || i === heap.length - 1);
      if (hpoints.length > 0)
        console.log(`${r.transport} V8 heap used / total / external timeline (s: MiB): ${hpoints.map((p) => `${p.s.toFixed(0)}: ${mib(p.used)}/${mib(p.total)}/${mib(p.external)}`).join(", ")}`);
      if (r.transport === "tus" && r.result.patchMs) {
        const patchMs = [...r.result.patchMs].sort((a, b) => a - b);
        console.log(
          `tus: ${r.result.patches} PATCHes of ${r.chunkBytes} bytes (${r.result.retries ?? 0} retried); PATCH p50 ${patchMs[Math.floor(patchMs.length / 2)]?.toFixed(0)} ms, max ${patchMs[patchMs.length - 1]?.toFixed(0)} ms; final PATCH ${r.result.finalPatchMs?.toFixed(0) ?? "-"} ms`,
        );
      }
    }
    console.log(
      `\nmachine load average at the end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")} (other processes share the ${availableParallelism()} cores)\n`,
    );
    for (const v of verdicts) console.log(v);
    return values.strict && !pass ? 1 : 0;
  } finally {
    await c.run();
  }
}

runMain(main);
