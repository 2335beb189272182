/**
 * What does the gateway cost an upload, in throughput? The same files go (a) through the
 * gateway, as `POST /v1/documents` and as tus (`/v1/uploads`, one PATCH per `tusChunkBytes`
 * chunk), and (b) directly to the same S3 server from this one process with the AWS SDK
 * (`@docflow/infra`'s S3ObjectStore, the driver the gateway itself uses, with the gateway's
 * settings: 5 MiB parts, 2 in flight). Same run, interleaved: every round runs each mode once,
 * the order rotating per round.
 *
 *   node bench/upload-throughput.ts [--files 8] [--mib 256] [--rounds 3] [--concurrency 8]
 *
 * Prints MiB/s per mode and round (bytes / wall time of the whole batch), CPU seconds of the
 * gateway, the S3 server and this process, the median per mode and the ratio gateway/direct
 * (median of the per-round ratios) against the target (>= 0.8): PASS/FAIL. Every gateway upload
 * is checked: the Job's SHA-256 and size must be those of the bytes sent.
 *
 * Flags:
 *   --files N             files per batch (8)
 *   --mib N               size of each file in MiB (256)
 *   --concurrency N       uploads in flight at once (default: all the files)
 *   --rounds N            interleaved rounds (3)
 *   --modes a,b           direct, post, tus (all; direct is the baseline and always runs)
 *   --target-ratio X      PASS/FAIL threshold for gateway/direct (0.8)
 *   --upload-timeout-s N  client-side cap per request (300); the gateway's 55 s deadline applies first
 *   --gateway-env K=V,... extra gateway environment, e.g. "NODE_OPTIONS=--cpu-prof --cpu-prof-dir=/tmp/prof"
 *   --strict              exit 1 on FAIL
 * Objects are deleted after each batch. Only 127.0.0.1 is contacted.
 */
import { statfs } from "node:fs/promises";
import { Agent } from "node:http";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import type { AllServices } from "@docflow/tools/services";
import { S3ObjectStore } from "../packages/infra/src/object-store/s3.ts";
import {
  MiB,
  bodyRange,
  cleanups,
  cpuSeconds,
  f1,
  makeFiller,
  median,
  outcome,
  parseEnvList,
  fillStoredHashes,
  removeStored,
  sha256Of,
  startGateway,
  startServices,
  token,
  tusChunkBytes,
  upload,
  ioDelta,
  procIo,
  type Gateway,
  type Io,
  type UploadResult,
  runMain,
} from "./lib/harness.ts";

type Mode = "direct" | "post" | "tus";

interface Batch {
  round: number;
  mode: Mode;
  seconds: number;
  bytes: number;
  ok: number;
  verified: number;
  failures: string[];
  cpu: { gateway: number; s3: number; bench: number };
  io: { gateway: Io; s3: Io };
}

/** Runs `tasks` with at most `limit` at once. */
async function pool<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      files: { type: "string", default: "8" },
      mib: { type: "string", default: "256" },
      concurrency: { type: "string" },
      rounds: { type: "string", default: "3" },
      modes: { type: "string", default: "direct,post,tus" },
      "target-ratio": { type: "string", default: "0.8" },
      "upload-timeout-s": { type: "string", default: "300" },
      "gateway-env": { type: "string", default: "" },
      strict: { type: "boolean", default: false },
    },
  });
  const files = Number(values.files);
  const sizeMiB = Number(values.mib);
  const rounds = Number(values.rounds);
  const concurrency = Number(values.concurrency ?? files);
  const target = Number(values["target-ratio"]);
  if (!(files >= 1 && files <= 64 && sizeMiB >= 1 && sizeMiB <= 4096 && rounds >= 1 && rounds <= 20 && concurrency >= 1)) {
    throw new Error("--files 1..64, --mib 1..4096, --rounds 1..20, --concurrency >= 1");
  }
  const asked = values.modes.split(",").map((m) => m.trim());
  if (asked.some((m) => !["direct", "post", "tus"].includes(m))) throw new Error("--modes: direct, post, tus");
  const modes: Mode[] = ["direct", ...(["post", "tus"] as const).filter((m) => asked.includes(m))];
  const size = sizeMiB * MiB;
  const timeoutMs = Number(values["upload-timeout-s"]) * 1000;

  const fsStat = await statfs(tmpdir());
  const free = fsStat.bavail * fsStat.bsize;
  const needed = files * size * 1.2 + 512 * MiB;
  console.log(
    `# docflow upload throughput: ${files} files x ${sizeMiB} MiB, ${concurrency} at once, gateway (${modes.filter((m) => m !== "direct").join(", ")}) vs direct to S3; ${rounds} interleaved rounds`,
  );
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores; ${(free / 2 ** 30).toFixed(1)} GiB free in ${tmpdir()}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  if (free < needed) {
    console.log(`not enough disk: ${(needed / 2 ** 30).toFixed(1)} GiB needed; use fewer or smaller files (--files, --mib)`);
    return 2;
  }

  const c = cleanups();
  try {
    const services: AllServices = await startServices(c);
    const bucket = "bench";
    const gateway: Gateway = await startGateway(c, services, {
      storage: "s3",
      tenants: files,
      maxUploadBytes: size + MiB,
      bucket,
      extraEnv: parseEnvList(values["gateway-env"]),
    });
    const chunkBytes = await tusChunkBytes(gateway.url);
    console.log(`gateway pid ${gateway.pid} at ${gateway.url}; tusChunkBytes ${chunkBytes} (${(chunkBytes / MiB).toFixed(2)} MiB, ${Math.ceil(size / chunkBytes)} PATCHes per tus upload)`);
    // The direct client: one S3ObjectStore in this process, the gateway's driver and settings.
    const direct = new S3ObjectStore({
      bucket,
      endpoint: services.s3.endpoint,
      region: services.s3.region,
      credentials: { accessKeyId: services.s3.accessKey, secretAccessKey: services.s3.secretKey },
    });
    c.push(async () => direct.client.destroy());
    await direct.check(); // the gateway created the bucket

    const fillers = Array.from({ length: files }, (_, i) => makeFiller(0x9e3779b9 + i * 7919));
    const t0 = performance.now();
    const expected = fillers.map((f) => sha256Of(f, size));
    console.log(`expected SHA-256 of the ${files} files computed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const batches: Batch[] = [];
    for (let round = 1; round <= rounds; round++) {
      const order = modes.map((_, k) => modes[(k + round - 1) % modes.length]!);
      for (const mode of order) {
        const agent = new Agent({ keepAlive: mode === "tus", maxSockets: Infinity });
        const cpuBefore = { gateway: await cpuSeconds(gateway.pid), s3: await cpuSeconds(services.s3.pid, true), bench: process.cpuUsage() };
        const ioBefore = { gateway: await procIo(gateway.pid), s3: await procIo(services.s3.pid, true) };
        const start = performance.now();
        const results: UploadResult[] = await pool(files, concurrency, async (i) => {
          if (mode === "direct") {
            const t = performance.now();
            try {
              await direct.put(`direct/r${round}/file-${i}.pdf`, Readable.from(bodyRange(fillers[i]!, 0, size), { objectMode: false, highWaterMark: 1 }), {
                contentType: "application/pdf",
                signal: c.signal,
              });
              return { transport: "post", ok: true, status: 200, ms: performance.now() - t, bytesSent: size };
            } catch (err) {
              return { transport: "post", ok: false, status: 0, ms: performance.now() - t, bytesSent: 0, error: (err as Error).message };
            }
          }
          return upload(mode, { baseUrl: gateway.url, token: token(i), size, filler: fillers[i]!, filename: `tp-${round}-${i}.pdf`, agent, timeoutMs, signal: c.signal, chunkBytes });
        });
        const seconds = (performance.now() - start) / 1000;
        const benchCpu = process.cpuUsage(cpuBefore.bench);
        const cpu = {
          gateway: (await cpuSeconds(gateway.pid)) - cpuBefore.gateway,
          s3: (await cpuSeconds(services.s3.pid, true)) - cpuBefore.s3,
          bench: (benchCpu.user + benchCpu.system) / 1e6,
        };
        const io = { gateway: ioDelta(await procIo(gateway.pid), ioBefore.gateway), s3: ioDelta(await procIo(services.s3.pid, true), ioBefore.s3) };
        agent.destroy();
        const ok = results.filter((r) => r.ok);
        if (mode !== "direct") await fillStoredHashes(services, gateway, "s3", results);
        const verified = mode === "direct" ? ok.length : results.filter((r, i) => r.ok && r.job?.sha256 === expected[i] && r.job?.size === size).length;
        const bytes = ok.length * size;
        const b: Batch = { round, mode, seconds, bytes, ok: ok.length, verified, failures: results.filter((r) => !r.ok).map(outcome), cpu, io };
        batches.push(b);
        console.log(
          `round ${round} ${mode.padEnd(6)} ${f1(bytes / MiB / seconds).padStart(6)} MiB/s  ${seconds.toFixed(1)} s  ${ok.length}/${files} ok${mode === "direct" ? "" : `, ${verified} SHA-256 verified`}  CPU s gateway ${cpu.gateway.toFixed(1)} / S3 ${cpu.s3.toFixed(1)} / bench ${cpu.bench.toFixed(1)}  load ${loadavg()[0]!.toFixed(2)}${b.failures.length ? `  failures: ${b.failures.join("; ")}` : ""}`,
        );
        // Keep the disk bounded: drop what this batch stored.
        if (mode === "direct") await direct.deletePrefix("direct/");
        else await removeStored(services, gateway, "s3");
      }
    }

    console.log(`\n## throughput (MiB/s = ${files} x ${sizeMiB} MiB / wall time of the batch, ${concurrency} in flight)`);
    console.log(
      `| round | ${modes.join(" | ")} | ${modes
        .filter((m) => m !== "direct")
        .map((m) => `${m}/direct`)
        .join(" | ")} |`,
    );
    console.log(
      `|---|${modes.map(() => "---|").join("")}${modes
        .filter((m) => m !== "direct")
        .map(() => "---|")
        .join("")}`,
    );
    const rate = (b: Batch | undefined) => (b && b.ok === files ? b.bytes / MiB / b.seconds : Number.NaN);
    const ratios: Record<string, number[]> = {};
    for (let round = 1; round <= rounds; round++) {
      const get = (m: Mode) => batches.find((b) => b.round === round && b.mode === m);
      const d = rate(get("direct"));
      const cells = modes.map((m) => f1(rate(get(m))));
      const rs = modes
        .filter((m) => m !== "direct")
        .map((m) => {
          const r = rate(get(m)) / d;
          (ratios[m] ??= []).push(r);
          return Number.isFinite(r) ? r.toFixed(2) : "-";
        });
      console.log(`| ${round} | ${cells.join(" | ")} | ${rs.join(" | ")} |`);
    }
    const medians = Object.fromEntries(
      modes.map((m) => [
        m,
        median(
          batches
            .filter((b) => b.mode === m)
            .map(rate)
            .filter(Number.isFinite),
        ),
      ]),
    );
    console.log(
      `| median | ${modes.map((m) => f1(medians[m]!)).join(" | ")} | ${modes
        .filter((m) => m !== "direct")
        .map((m) => median(ratios[m]!.filter(Number.isFinite)).toFixed(2))
        .join(" | ")} |`,
    );

    console.log("\n## CPU seconds per GiB moved (median over rounds): gateway / S3 server / this process");
    for (const m of modes) {
      const per = (k: "gateway" | "s3" | "bench") => median(batches.filter((b) => b.mode === m && b.bytes > 0).map((b) => b.cpu[k] / (b.bytes / 2 ** 30)));
      console.log(`${m.padEnd(6)} ${per("gateway").toFixed(2)} / ${per("s3").toFixed(2)} / ${per("bench").toFixed(2)}`);
    }
    console.log("\n## I/O per byte uploaded (median over rounds; /proc/<pid>/io: rchar/wchar = files and sockets, disk = write_bytes dirtied)");
    console.log("| mode | gateway rchar | gateway wchar | gateway disk writes | S3 server rchar | S3 server wchar | S3 server disk writes |");
    console.log("|---|---|---|---|---|---|---|");
    for (const m of modes) {
      const per = (pick: (b: Batch) => number) => median(batches.filter((b) => b.mode === m && b.bytes > 0).map((b) => pick(b) / b.bytes)).toFixed(2);
      console.log(
        `| ${m} | ${per((b) => b.io.gateway.rchar)} | ${per((b) => b.io.gateway.wchar)} | ${per((b) => b.io.gateway.writeBytes)} | ${per((b) => b.io.s3.rchar)} | ${per((b) => b.io.s3.wchar)} | ${per((b) => b.io.s3.writeBytes)} |`,
      );
    }
    console.log(
      `\nmachine load average at the end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")} (other processes share the ${availableParallelism()} cores)`,
    );
    if (gateway.exited() !== undefined) console.log(`GATEWAY DIED during the run: ${gateway.exited()}`);

    let pass = gateway.exited() === undefined;
    console.log("");
    for (const m of modes.filter((x) => x !== "direct")) {
      const all = batches.filter((b) => b.mode === m);
      const complete = all.every((b) => b.ok === files && b.verified === files);
      const r = median(ratios[m]!);
      const ok = complete && r >= target;
      pass &&= ok;
      console.log(
        `TARGET ${m}/direct >= ${target}: ${ok ? "PASS" : "FAIL"} (median ratio ${Number.isFinite(r) ? r.toFixed(2) : "-"}; per round ${ratios[m]!.map((x) => (Number.isFinite(x) ? x.toFixed(2) : "-")).join(", ")}; ${complete ? "every upload accepted with the right SHA-256" : "SOME UPLOADS FAILED OR WERE WRONG"})`,
      );
    }
    return values.strict && !pass ? 1 : 0;
  } finally {
    await c.run();
  }
}

runMain(main);
