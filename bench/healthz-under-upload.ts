/**
 * The seed incident as a regression benchmark: an API whose event loop was
 * blocked answered /healthz in 7.6 s and its uploads died at the CDN's 60 s
 * timeout. Does docflow's gateway stay free while it streams big uploads?
 *
 *   node bench/healthz-under-upload.ts [--uploads 16] [--mib 256] [--transport post|tus|both] [--storage s3|fs] [--strict]
 *
 * Starts real RabbitMQ, NATS and the S3 server (tools/src/services.ts) and the
 * real gateway (`node services/gateway/src/server.ts`, default timeouts), then:
 *   1. idle: GET /healthz every 50 ms for --idle-seconds (5);
 *   2. load, per transport (POST first, then tus, with --transport both):
 *      --uploads concurrent uploads of --mib MiB each (a valid "%PDF-1.7" header,
 *      then bytes from a generator: nothing big is allocated), while /healthz is
 *      probed every 50 ms on its own keep-alive connection, from a worker thread
 *      of this process (so the uploads' I/O here cannot delay it).
 *      post: one `POST /v1/documents` each; tus: `POST /v1/uploads`, then one PATCH per
 *      chunk of the size the gateway advertises at `GET /v1/config` (`tusChunkBytes`).
 *      What the previous transport stored is deleted before the next one starts.
 * Prints, per transport, /healthz p50/p99/max idle and under load (and their ratio),
 * every upload's time and throughput (and for tus its PATCHes), the SHA-256 the
 * gateway computed (the Job's) against the bytes sent, the gateway's own event-loop
 * delay from /metrics (prom-client resets its histogram at every scrape, so each
 * scrape covers one phase), the gateway's peak RSS (VmHWM, reset per phase) and CPU
 * seconds per process.
 *
 * Flags:
 *   --transport post|tus|both  which upload API (both)
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
 *   --upload-timeout-s N  client-side cap per request (300); the gateway's own 55 s deadline applies first
 *   --gateway-env K=V,... extra environment for the gateway (e.g. DOCFLOW_REQUEST_TIMEOUT_MS=120000)
 *   --pin-gateway         the gateway on a CPU of its own, everything else on the others (as in a pod with its own CPU)
 * Everything it starts is stopped on exit, error, Ctrl-C or SIGTERM. Only 127.0.0.1 is contacted.
 */
import { spawnSync } from "node:child_process";
import { statfs } from "node:fs/promises";
import { Agent } from "node:http";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { threadSchedule } from "@docflow/telemetry";
import {
  MiB,
  cleanups,
  cpuSeconds,
  f1,
  ioDelta,
  makeFiller,
  mib,
  outcome,
  parseEnvList,
  percentile,
  procIo,
  procStatus,
  fillStoredHashes,
  removeStored,
  resetPeakRss,
  sampleRss,
  scrape,
  sha256Of,
  startGateway,
  startProber,
  startServices,
  stats,
  token,
  tusChunkBytes,
  upload,
  type Io,
  type Sample,
  type Transport,
  type UploadResult,
  runMain,
} from "./lib/harness.ts";

interface Phase {
  transport: Transport;
  seconds: number;
  probes: Sample[];
  loop: Record<string, number>;
  results: UploadResult[];
  rssBefore: number;
  rssPeak: number;
  hwm: number;
  hwmReset: boolean;
  cpu: { gateway: number; s3: number; bench: number };
  io: { gateway: Io; s3: Io };
  ownLoop: { p99: number; max: number };
  loopThread: { run: number; wait: number };
  loadAfter: number[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      transport: { type: "string", default: "both" },
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
      "pin-gateway": { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
    },
  });
  const uploads = Number(values.uploads);
  const sizeMiB = Number(values.mib);
  const storage = values.storage;
  if (!(uploads >= 1 && uploads <= 256 && sizeMiB >= 1 && sizeMiB <= 4096)) throw new Error("--uploads must be 1..256 and --mib 1..4096");
  if (storage !== "s3" && storage !== "fs") throw new Error("--storage must be s3 or fs");
  const transports: Transport[] = values.transport === "both" ? ["post", "tus"] : values.transport === "post" || values.transport === "tus" ? [values.transport] : [];
  if (transports.length === 0) throw new Error("--transport must be post, tus or both");
  const size = sizeMiB * MiB;
  const tenants = Number(values.tenants ?? uploads);
  if (!(tenants >= 1 && tenants <= uploads)) throw new Error("--tenants must be 1..--uploads");
  const intervalMs = Number(values["interval-ms"]);
  const p99Target = Number(values["p99-target-ms"]);
  const maxTarget = Number(values["max-target-ms"]);
  const timeoutMs = Number(values["upload-timeout-s"]) * 1000;

  // Disk: every upload is stored in full (by the S3 server, or the fs store), under the temp dir;
  // each transport's files are deleted before the next one runs.
  const fsStat = await statfs(tmpdir());
  const free = fsStat.bavail * fsStat.bsize;
  const needed = uploads * size * 1.1 + 512 * MiB;
  console.log(`# docflow gateway: /healthz under ${uploads} concurrent uploads of ${sizeMiB} MiB (${storage} storage; transport ${transports.join(", then ")})`);
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores; ${(free / 2 ** 30).toFixed(1)} GiB free in ${tmpdir()}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  if (free < needed) {
    console.log(`not enough disk: ${(needed / 2 ** 30).toFixed(1)} GiB needed; use fewer or smaller uploads (--uploads, --mib)`);
    return 2;
  }

  const c = cleanups();
  try {
    const services = await startServices(c);
    const gateway = await startGateway(c, services, { storage, tenants, maxUploadBytes: size + MiB, bucket: "bench", extraEnv: parseEnvList(values["gateway-env"]) });
    const chunkBytes = await tusChunkBytes(gateway.url);
    if (values["pin-gateway"]) pinGateway(gateway.pid, [services.s3.pid, services.rabbitmq.pid, services.nats.pid, process.pid]);
    console.log(
      `gateway pid ${gateway.pid} ready at ${gateway.url}; request deadline ${gateway.env.DOCFLOW_REQUEST_TIMEOUT_MS ?? "55000 (default)"} ms; tusChunkBytes ${chunkBytes} (${(chunkBytes / MiB).toFixed(2)} MiB, ${Math.ceil(size / chunkBytes)} PATCHes per tus upload)`,
    );
    const filler = makeFiller();
    const expectedSha = sha256Of(filler, size);

    const prober = startProber(c, `${gateway.url}/healthz`, intervalMs);

    // Phase 1: idle.
    await scrape(gateway.url); // resets the gateway's event-loop histogram
    const idleSeconds = Number(values["idle-seconds"]);
    await prober.cut(); // drop the samples from before the scrape
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idle = await prober.cut();
    const idleLoop = await scrape(gateway.url);

    // Phase 2: load, per transport.
    const phases: Phase[] = [];
    for (const transport of transports) {
      if (phases.length > 0) {
        await removeStored(services, gateway, storage);
        await new Promise((r) => setTimeout(r, 2000));
      }
      const agent = new Agent({ keepAlive: transport === "tus", maxSockets: Infinity });
      await scrape(gateway.url).catch(() => undefined);
      const hwmReset = await resetPeakRss(gateway.pid);
      await prober.cut();
      const rssBefore = await procStatus(gateway.pid, "VmRSS");
      const ownLoop = monitorEventLoopDelay({ resolution: 10 });
      ownLoop.enable();
      const rss = sampleRss(gateway.pid, 250);
      // The gateway's event-loop thread: its run and wait (for a CPU) seconds.
      const scheduleBefore = threadSchedule(gateway.pid) ?? { run: Number.NaN, wait: Number.NaN };
      const cpuBefore = { gateway: await cpuSeconds(gateway.pid), s3: await cpuSeconds(services.s3.pid, true), bench: process.cpuUsage() };
      const ioBefore = { gateway: await procIo(gateway.pid), s3: await procIo(services.s3.pid, true) };
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: uploads }, (_, i) =>
          upload(transport, { baseUrl: gateway.url, token: token(i % tenants), size, filler, filename: `bench-${transport}-${i}.pdf`, agent, timeoutMs, signal: c.signal, chunkBytes }),
        ),
      );
      const seconds = (performance.now() - t0) / 1000;
      const probes = await prober.cut();
      rss.stop();
      ownLoop.disable();
      const benchCpu = process.cpuUsage(cpuBefore.bench);
      const cpu = {
        gateway: (await cpuSeconds(gateway.pid)) - cpuBefore.gateway,
        s3: (await cpuSeconds(services.s3.pid, true)) - cpuBefore.s3,
        bench: (benchCpu.user + benchCpu.system) / 1e6,
      };
      const scheduleAfter = threadSchedule(gateway.pid) ?? { run: Number.NaN, wait: Number.NaN };
      const loopThread = { run: scheduleAfter.run - scheduleBefore.run, wait: scheduleAfter.wait - scheduleBefore.wait };
      const io = { gateway: ioDelta(await procIo(gateway.pid), ioBefore.gateway), s3: ioDelta(await procIo(services.s3.pid, true), ioBefore.s3) };
      const loop = await scrape(gateway.url).catch(() => ({}) as Record<string, number>);
      const hwm = await procStatus(gateway.pid, "VmHWM");
      agent.destroy();
      await fillStoredHashes(services, gateway, storage, results);
      phases.push({
        transport,
        seconds,
        probes,
        loop,
        results,
        rssBefore,
        rssPeak: rss.samples() > 0 ? rss.peak() : Number.NaN,
        hwm,
        hwmReset,
        cpu,
        loopThread,
        io,
        ownLoop: { p99: ownLoop.percentile(99) / 1e6, max: ownLoop.max / 1e6 },
        loadAfter: loadavg(),
      });
      console.log(`${transport}: ${results.filter((r) => r.ok).length}/${uploads} uploads done in ${seconds.toFixed(1)} s`);
    }
    await prober.stop();

    // Report.
    const i0 = stats(idle);
    const ms = (s: number | undefined) => (s === undefined ? "-" : (s * 1000).toFixed(1));
    console.log(`\n## /healthz latency (ms), probed every ${intervalMs} ms on its own keep-alive connection`);
    console.log("| phase | probes | failed | p50 | p99 | max | ratio to idle p50 / p99 / max |");
    console.log("|---|---|---|---|---|---|---|");
    console.log(`| idle (${idleSeconds} s) | ${i0.n} | ${i0.failed} | ${f1(i0.p50)} | ${f1(i0.p99)} | ${f1(i0.max)} | |`);
    for (const p of phases) {
      const l = stats(p.probes);
      console.log(
        `| under load, ${p.transport} (${p.seconds.toFixed(1)} s) | ${l.n} | ${l.failed} | ${f1(l.p50)} | ${f1(l.p99)} | ${f1(l.max)} | ${(l.p50 / i0.p50).toFixed(2)}x / ${(l.p99 / i0.p99).toFixed(2)}x / ${(l.max / i0.max).toFixed(2)}x |`,
      );
    }

    console.log("\n## gateway event-loop delay from its /metrics (ms; prom-client, 10 ms resolution, reset at each scrape)");
    console.log("| phase | p50 | p99 | max |");
    console.log("|---|---|---|---|");
    console.log(`| idle | ${ms(idleLoop.nodejs_eventloop_lag_p50_seconds)} | ${ms(idleLoop.nodejs_eventloop_lag_p99_seconds)} | ${ms(idleLoop.nodejs_eventloop_lag_max_seconds)} |`);
    for (const p of phases) {
      console.log(`| under load, ${p.transport} | ${ms(p.loop.nodejs_eventloop_lag_p50_seconds)} | ${ms(p.loop.nodejs_eventloop_lag_p99_seconds)} | ${ms(p.loop.nodejs_eventloop_lag_max_seconds)} |`);
    }

    const verdicts: string[] = [];
    let allPass = true;
    for (const p of phases) {
      const ok = p.results.filter((r) => r.ok);
      const verified = ok.filter((r) => r.job?.sha256 === expectedSha && r.job.size === size);
      const totalBytes = p.results.reduce((a, r) => a + r.bytesSent, 0);
      const durations = ok.map((r) => r.ms / 1000).sort((a, b) => a - b);
      console.log(
        `\n## ${p.transport} uploads: ${ok.length}/${uploads} accepted (${p.transport === "post" ? "202" : "final PATCH 200"}) in ${p.seconds.toFixed(1)} s (${tenants} tenant${tenants === 1 ? "" : "s"}); SHA-256 of the Job = SHA-256 of the bytes sent: ${verified.length}/${ok.length}`,
      );
      console.log(`aggregate throughput ${(totalBytes / MiB / p.seconds).toFixed(1)} MiB/s sent (${(totalBytes / MiB).toFixed(0)} MiB)`);
      if (durations.length > 0)
        console.log(
          `accepted uploads: duration min ${durations[0]?.toFixed(1)} s, median ${percentile(durations, 50).toFixed(1)} s, max ${durations[durations.length - 1]?.toFixed(1)} s; throughput median ${(size / MiB / percentile(durations, 50)).toFixed(1)} MiB/s`,
        );
      if (p.transport === "tus") {
        const patchMs = p.results.flatMap((r) => r.patchMs ?? []).sort((a, b) => a - b);
        const finals = p.results.flatMap((r) => (r.finalPatchMs === undefined ? [] : [r.finalPatchMs])).sort((a, b) => a - b);
        const retries = p.results.reduce((a, r) => a + (r.retries ?? 0), 0);
        console.log(
          `PATCHes: ${patchMs.length} (${retries} retried), duration p50 ${f1(percentile(patchMs, 50))} ms, p99 ${f1(percentile(patchMs, 99))} ms, max ${f1(patchMs[patchMs.length - 1] ?? Number.NaN)} ms; final PATCH (completes the upload, reads it back to hash it) median ${f1(percentile(finals, 50))} ms, max ${f1(finals[finals.length - 1] ?? Number.NaN)} ms`,
        );
      }
      const byOutcome = new Map<string, number>();
      for (const r of p.results) byOutcome.set(outcome(r), (byOutcome.get(outcome(r)) ?? 0) + 1);
      console.log(`outcomes: ${[...byOutcome].map(([k, v]) => `${v} x ${k}`).join(", ")}`);
      console.log(`| # | status | seconds | MiB sent | MiB/s |${p.transport === "tus" ? " PATCHes | slowest PATCH ms | final PATCH ms |" : ""}`);
      console.log(`|---|---|---|---|---|${p.transport === "tus" ? "---|---|---|" : ""}`);
      p.results.forEach((r, i) => {
        const tus =
          p.transport === "tus" ? ` ${r.patches ?? 0}${r.retries ? ` (${r.retries} retried)` : ""} | ${f1(Math.max(...(r.patchMs ?? [Number.NaN])))} | ${f1(r.finalPatchMs ?? Number.NaN)} |` : "";
        console.log(`| ${i} | ${outcome(r)} | ${(r.ms / 1000).toFixed(1)} | ${(r.bytesSent / MiB).toFixed(0)} | ${(r.bytesSent / MiB / (r.ms / 1000)).toFixed(1)} |${tus}`);
      });
      console.log(`\n### resources during the ${p.transport} load phase`);
      console.log(
        `gateway RSS: ${mib(p.rssBefore)} MiB before the uploads, highest sampled under load ${mib(p.rssPeak)} MiB, peak VmHWM ${mib(p.hwm)} MiB${p.hwmReset ? " (reset at the start of the phase)" : " (since the gateway started: clear_refs not allowed)"}; total uploaded ${(totalBytes / MiB).toFixed(0)} MiB (${uploads} x ${sizeMiB} MiB)`,
      );
      console.log(
        `CPU seconds under load (${p.seconds.toFixed(1)} s wall, ${cpus().length} cores): gateway ${p.cpu.gateway.toFixed(1)}, S3 server ${p.cpu.s3.toFixed(1)}, this benchmark ${p.cpu.bench.toFixed(1)}`,
      );
      console.log(
        `gateway event-loop thread (schedstat): ran ${p.loopThread.run.toFixed(1)} s, and waited ${p.loopThread.wait.toFixed(1)} s for a CPU while runnable (${((100 * p.loopThread.wait) / p.seconds).toFixed(0)}% of the phase): the waiting is the machine's share of slow answers (other processes held the cores), the running the gateway's`,
      );
      const per = (n: number) => (totalBytes > 0 ? (n / totalBytes).toFixed(2) : "-");
      console.log(
        `I/O per byte uploaded (/proc/<pid>/io): gateway rchar ${per(p.io.gateway.rchar)}, wchar ${per(p.io.gateway.wchar)}, disk writes ${per(p.io.gateway.writeBytes)}; S3 server rchar ${per(p.io.s3.rchar)}, wchar ${per(p.io.s3.wchar)}, disk writes ${per(p.io.s3.writeBytes)}`,
      );
      console.log(`machine load average after the phase: ${p.loadAfter.map((l) => l.toFixed(2)).join(" ")} (other processes on the machine share its ${cpus().length} cores)`);
      console.log(`this benchmark's own event-loop delay under load: p99 ${p.ownLoop.p99.toFixed(1)} ms, max ${p.ownLoop.max.toFixed(1)} ms (the prober has its own thread)`);

      const l = stats(p.probes);
      const t0 = p.probes[0]?.at ?? 0;
      const slowest = [...p.probes].sort((a, b) => b.ms - a.ms).slice(0, 5);
      console.log(`slowest /healthz probes (ms at s into the phase): ${slowest.map((x) => `${x.ms.toFixed(0)} at ${((x.at - t0) / 1000).toFixed(1)}`).join(", ")}`);
      const pass = gateway.exited() === undefined && l.p99 <= p99Target && l.max <= maxTarget && l.failed === 0;
      const uploaded = verified.length === uploads;
      allPass &&= pass && uploaded;
      verdicts.push(
        `TARGET under load (${p.transport}): /healthz p99 <= ${p99Target} ms and max <= ${maxTarget} ms: ${pass ? "PASS" : "FAIL"} (p99 ${f1(l.p99)} ms, max ${f1(l.max)} ms, ${l.failed} failed probes)`,
      );
      verdicts.push(`UPLOADS (${p.transport}): ${uploaded ? "PASS" : "FAIL"}: ${ok.length}/${uploads} accepted, ${verified.length} with the right SHA-256 and size`);
    }

    if (gateway.exited() !== undefined) console.log(`\nGATEWAY DIED during the run: ${gateway.exited()}`);
    console.log("");
    for (const v of verdicts) console.log(v);
    if (values.strict && !allPass) return 1;
    return 0;
  } finally {
    await c.run();
  }
}

runMain(main);

/**
 * --pin-gateway: the gateway gets the last CPU to itself and everything else of the run (the S3
 * server, RabbitMQ, NATS, and this process with its prober thread) shares the others, as when the
 * gateway runs in a pod with a CPU of its own. The prober's answers then also include its own
 * wait for a CPU among the busy rest, so the figures stay an upper bound of the gateway's.
 */
function pinGateway(gatewayPid: number, others: number[]): void {
  const count = cpus().length;
  if (count < 2) throw new Error("--pin-gateway needs at least 2 CPUs");
  const pin = (pid: number, list: string) => {
    const result = spawnSync("taskset", ["-a", "-p", "-c", list, String(pid)], { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`taskset for pid ${pid} failed: ${result.stderr || result.error?.message}`);
  };
  pin(gatewayPid, String(count - 1));
  for (const pid of others) pin(pid, count === 2 ? "0" : `0-${count - 2}`);
  console.log(`pinned: gateway (pid ${gatewayPid}) on CPU ${count - 1}; S3 server, RabbitMQ, NATS and this benchmark on ${count === 2 ? "CPU 0" : `CPUs 0-${count - 2}`}`);
}
