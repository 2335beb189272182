/**
 * Issue 5, benchmarks 2, 3 and 4: what the pipeline costs, how it scales out, how soon pages show.
 *
 *   node bench/pipeline.ts [--only overhead|scaling|latency] [--quick]
 *
 * overhead (benchmark 2): the same real 300-page PDF through docflow (1 processor x concurrency 2;
 *   upload done -> `job.completed`, every output stored) and through the engine functions the
 *   processor uses (services/processor/src/engines: inspectPdf, pageSizes, countFontsAndImages,
 *   then per range extractText + pageSizes alongside renderPageImages (one pdftoppm pass, a PNG
 *   preview and a WebP thumbnail per page), exactly as stages/render.ts calls them) called directly in this
 *   process, with the same ranges (stages/split.ts: first range 1 page, then 8) taken by as many
 *   lanes as the processor's concurrency, outputs kept in memory instead of stored. Interleaved,
 *   median of N rounds. Target: docflow / direct >= 0.85.
 * scaling (benchmark 3): the same PDF through 1 processor, then 2 processors, each at concurrency 1
 *   (fresh processors per phase; order alternating per round). Target: 2 processors / 1 >= 1.7x.
 *   Also CPU seconds per page and how much of the machine was busy (by anyone: /proc/stat), so a
 *   reader can tell when the machine, not docflow, is the limit.
 * latency (benchmark 4): (a) upload done -> first `page.ready` of the 300-page PDF (N uploads, each
 *   canceled once its first page is out; target <= 1.5 s); (b) a 1-page PDF from another tenant
 *   uploaded while a 2,000-page PDF is processing: upload done -> `job.completed` (M uploads one
 *   after the other; target <= 5 s), with the same 1-page upload on an idle pipeline for reference.
 *
 * Flags:
 *   --only a,b            overhead, scaling, latency (all three by default, in that order)
 *   --pages N             pages of the real document (300; bench/lib/real-pdf.ts)
 *   --rounds N            interleaved rounds of overhead and scaling (3)
 *   --concurrency N       overhead and latency: the processor's DOCFLOW_PROCESSOR_CONCURRENCY and the direct lanes (2)
 *   --first-range N, --range N   the ranges of the direct run (1, 8: the processor's defaults)
 *   --latency-n N         first-page samples (5)
 *   --big-pages N         the long document of latency (b) (2000)
 *   --small-n N           1-page uploads during the long document (5), and 3 on an idle pipeline
 *   --small-after-pages N the 1-page uploads start once the long document has this many pages done (9: its
 *                         first two ranges; later, e.g. 100, when inspect's font/image count is over)
 *   --cpu-limit N         scaling: each processor (all its threads, and the poppler children it spawns)
 *                         runs in its own cgroup with a CFS quota of N cores, which is how the kubelet
 *                         enforces a pod's `limits.cpu`: adding a processor adds N cores, as adding a pod
 *                         does on a cluster. Default 1 where a cgroup can be made (root), else 0 = none.
 *                         Without a budget one processor at concurrency 1 takes ~1.5 cores (a pdftoppm
 *                         child renders page n+1 while sharp encodes page n and the event loop stores
 *                         page n-1), so on a 2-core machine a second one has little left to add.
 *   --budget N            overhead: run each side under the same CPU quota of N cores (a cgroup, as
 *                         --cpu-limit): docflow's processor and gateway (with the poppler children) in
 *                         one, this process during the direct run in the other; the S3 server, RabbitMQ
 *                         and NATS outside both, as on a cluster, where they are other pods. Default 0:
 *                         no quota, everything shares the machine's cores (the services' CPU then
 *                         counts against docflow).
 *   --pin                 scaling: instead of the quota, pin processor i to core i with `taskset -a -cp`
 *   --quick               smoke run in < 1 min: --pages 16 --rounds 1 --latency-n 2 --big-pages 300 --small-n 2
 *   --processor-env K=V,...  --gateway-env K=V,...   extra environment
 *   --processor-args "--flag ..."  extra node flags of the processors (e.g. --trace-gc, which NODE_OPTIONS refuses)
 *   --timeout-s N         cap per docflow job (600)
 *   --strict              exit 1 on FAIL
 * Only 127.0.0.1 is contacted; everything is stopped on exit, error, Ctrl-C or SIGTERM.
 */
import { execFile } from "node:child_process";
import { request } from "node:http";
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { MiB, cleanups, cpuSeconds, f1, median, parseEnvList, startGateway, startServices, token, runMain, type Cleanups, type Gateway } from "./lib/harness.ts";
import { cpuSplit, cpuWithChildren, deleteJob, getBytes, getJson, machineCpu, postFile, startProcessors, waitIdle, watchEvents, type Events, type Processor } from "./lib/docflow.ts";
import { cpuLimitSupport, createCpuLimit, currentCpuCgroup, moveToCgroup, type CpuLimit } from "./lib/cpu-limit.ts";
import { buildRealPdf, provenance, type RealPdf } from "./lib/real-pdf.ts";
import { treeState } from "./lib/tree-state.ts";
import type { AllServices } from "@docflow/tools/services";
// The benchmark measures the production engine functions and range split themselves.
// eslint-disable-next-line no-restricted-imports
import { PREVIEW_DPI, THUMBNAIL_WIDTH_PX, countFontsAndImages, extractText, inspectPdf, pageSizes, renderPageImages } from "../services/processor/src/engines/index.ts";
// eslint-disable-next-line no-restricted-imports
import { splitRanges } from "../services/processor/src/stages/split.ts";

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : "-");
const s2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");
const loadNow = () => loadavg()[0]!.toFixed(2);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const execTool = (cmd: string, args: string[]) =>
  new Promise<void>((res, rej) => execFile(cmd, args, (err, _o, stderr) => (err ? rej(new Error(`${cmd} ${args.join(" ")}: ${stderr || err.message}`)) : res())));

interface Env {
  c: Cleanups;
  services: AllServices;
  gateway: Gateway;
  events: Events[];
  timeoutMs: number;
  processorEnv: Record<string, string>;
  processorArgs: string[];
}

/** CPU seconds of a process with its reaped children, plus its live process-group members (the services). */
async function cpuOf(pid: number): Promise<number> {
  return (await cpuWithChildren(pid)) + ((await cpuSeconds(pid, true)) - (await cpuSeconds(pid, false)));
}

interface CpuSnap {
  processors: number;
  processorsNode: number;
  /** The services: gateway, S3 server, RabbitMQ, NATS */
  each: number[];
  machineBusy: number;
  machineTotal: number;
}

async function cpuSnap(env: Env, procs: Processor[]): Promise<CpuSnap> {
  const p = await Promise.all(procs.map((x) => cpuWithChildren(x.pid)));
  const n = await Promise.all(procs.map(async (x) => (await cpuSplit(x.pid)).self));
  const s = await Promise.all([cpuOf(env.gateway.pid), cpuOf(env.services.s3.pid), cpuOf(env.services.rabbitmq.pid), cpuOf(env.services.nats.pid)]);
  const m = await machineCpu();
  return { processors: p.reduce((a, b) => a + b, 0), processorsNode: n.reduce((a, b) => a + b, 0), each: s, machineBusy: m.busy, machineTotal: m.total };
}

interface CpuUse {
  /** CPU seconds of the processors (with their poppler children) and of gateway + S3 + RabbitMQ + NATS. */
  processors: number;
  /** Of which the processors' Node processes themselves (the rest: their poppler children). */
  processorsNode: number;
  services: number;
  /** Of which the gateway, the S3 server, RabbitMQ and NATS. */
  each: number[];
  /** Busy share of the whole machine over the phase (0-1), whoever used it. */
  machine: number;
}

function cpuDelta(a: CpuSnap, b: CpuSnap): CpuUse {
  const each = b.each.map((x, i) => x - a.each[i]!);
  return {
    processors: b.processors - a.processors,
    processorsNode: b.processorsNode - a.processorsNode,
    services: each.reduce((x, y) => x + y, 0),
    each,
    machine: (b.machineBusy - a.machineBusy) / Math.max(1e-9, b.machineTotal - a.machineTotal),
  };
}

interface JobRun {
  ok: boolean;
  problem?: string;
  jobId?: string;
  uploadMs: number;
  seconds: number;
  startedMs: number;
  firstPageMs: number;
}

/** Uploads `doc` as tenant `t` and waits for its end (or, with `until: "first-page"`, its first page.ready, then deletes it). */
async function runJob(env: Env, t: number, doc: RealPdf, name: string, opts: { until?: "done" | "first-page"; verify?: boolean; atDone?: () => Promise<void> } = {}): Promise<JobRun> {
  const { gateway } = env;
  const events = env.events[t]!;
  const posted = await postFile(gateway.url, token(t), doc.path, name);
  if (posted.status !== 202 || !posted.job)
    return { ok: false, problem: `upload answered ${posted.status}: ${posted.body.slice(0, 300)}`, uploadMs: posted.ms, seconds: NaN, startedMs: NaN, firstPageMs: NaN };
  const jobId = posted.job.id;
  const rel = (at: number | undefined) => (at === undefined ? NaN : at - posted.doneAt);
  try {
    if (opts.until === "first-page") {
      const deadline = performance.now() + env.timeoutMs;
      for (;;) {
        const seen = events.events(jobId);
        const first = seen.find((e) => e.type === "page.ready");
        const end = seen.find((e) => e.type === "job.failed" || e.type === "job.canceled");
        if (first) return { ok: true, jobId, uploadMs: posted.ms, seconds: NaN, startedMs: rel(seen.find((e) => e.type === "job.started")?.at), firstPageMs: rel(first.at) };
        if (end) return { ok: false, problem: `job ${jobId}: ${end.type} ${JSON.stringify(end.error ?? {})}`, jobId, uploadMs: posted.ms, seconds: NaN, startedMs: NaN, firstPageMs: NaN };
        if (performance.now() > deadline) return { ok: false, problem: `no page.ready in ${env.timeoutMs} ms`, jobId, uploadMs: posted.ms, seconds: NaN, startedMs: NaN, firstPageMs: NaN };
        await sleep(20);
      }
    }
    const done = await events.waitDone(jobId, { baseUrl: gateway.url, token: token(t), timeoutMs: env.timeoutMs, pollMs: 2000 });
    await opts.atDone?.();
    const seen = events.events(jobId);
    const ready = seen.filter((e) => e.type === "page.ready");
    const run: JobRun = {
      ok: done.status === "completed",
      jobId,
      uploadMs: posted.ms,
      seconds: (done.at - posted.doneAt) / 1000,
      startedMs: rel(seen.find((e) => e.type === "job.started")?.at),
      firstPageMs: ready.length > 0 ? Math.min(...ready.map((e) => e.at)) - posted.doneAt : NaN,
    };
    if (!run.ok) run.problem = `job ${jobId} ended ${done.status}: ${JSON.stringify(seen.find((e) => e.error)?.error ?? done.job ?? {})}`;
    if (run.ok && opts.verify !== false) {
      // Outside the clock: every page listed (>= 80% with text), a page.ready per page, images of the first and last page.
      const problems: string[] = [];
      const result = await getJson<{ pages: Array<{ n: number; text: string }> }>(`${gateway.url}/v1/jobs/${jobId}/result`, token(t));
      const got = result.json?.pages ?? [];
      if (result.status !== 200 || got.length !== doc.pages) problems.push(`result: ${result.status}, ${got.length}/${doc.pages} pages`);
      if (got.filter((p) => p.text.trim() !== "").length < doc.pages * 0.8) problems.push("fewer than 80% of the pages with text");
      const readyPages = new Set(ready.map((e) => e.page)).size;
      if (readyPages !== doc.pages) problems.push(`page.ready for ${readyPages}/${doc.pages} pages`);
      for (const n of new Set([1, doc.pages])) {
        const thumb = await getBytes(`${gateway.url}/v1/jobs/${jobId}/pages/${n}/thumbnail`, token(t));
        const preview = await getBytes(`${gateway.url}/v1/jobs/${jobId}/pages/${n}/preview`, token(t));
        if (thumb.status !== 200 || thumb.head.subarray(8, 12).toString("latin1") !== "WEBP") problems.push(`page ${n} thumbnail: ${thumb.status}`);
        if (preview.status !== 200 || preview.head.subarray(1, 4).toString("latin1") !== "PNG") problems.push(`page ${n} preview: ${preview.status}`);
      }
      if (problems.length > 0) {
        run.ok = false;
        run.problem = problems.join("; ");
      }
    }
    return run;
  } finally {
    const del = await deleteJob(gateway.url, token(t), jobId);
    if (del !== 204 && del !== 404) console.log(`  (DELETE /v1/jobs/${jobId} answered ${del}; the gateway's last output:\n${gateway.logs().slice(-2000)})`);
    // Late events of a deleted job are not needed.
    setTimeout(() => events.forget(jobId), 5000).unref();
  }
}

/** DELETE /v1/jobs/{id} with the answer's body (a failed cancellation says why). */
function deleteWithBody(baseUrl: string, tok: string, id: string): Promise<{ status: number; body: string }> {
  return new Promise((res) => {
    const req = request(`${baseUrl}/v1/jobs/${id}`, { method: "DELETE", agent: false, headers: { authorization: `Bearer ${tok}` } }, (r) => {
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (d: string) => (body += d));
      r.once("end", () => res({ status: r.statusCode ?? 0, body }));
    });
    req.once("error", (err) => res({ status: 0, body: err.message }));
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Benchmark 2: framework overhead

interface DirectRun {
  ok: boolean;
  problem?: string;
  seconds: number;
  inspectMs: number;
  firstPageMs: number;
  cpu: number;
  /** Of which this Node process itself (the rest: its poppler children). */
  cpuNode: number;
  machine: number;
}

/** The engine functions called directly, as inspect + render call them, outputs in memory. */
async function runDirect(doc: RealPdf, lanes: number, firstRange: number, rangeSize: number, timeoutMs: number): Promise<DirectRun> {
  const cpu0 = await cpuWithChildren("self");
  const node0 = (await cpuSplit(process.pid)).self;
  const m0 = await machineCpu();
  const t0 = performance.now();
  const call = { timeoutMs };
  // inspect: page count, then every page's size; fonts and images counted alongside the ranges.
  const info = await inspectPdf(doc.path, call);
  const counting = countFontsAndImages(doc.path, call);
  await pageSizes(doc.path, 1, info.pageCount, { ...call, maxOutputBytes: 128 * info.pageCount + 64 * 1024 });
  const inspectMs = performance.now() - t0;
  const queue = splitRanges(info.pageCount, firstRange, rangeSize);
  let firstPageAt = NaN;
  let texts = 0;
  let webps = 0;
  let pngs = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let range = queue.shift(); range; range = queue.shift()) {
        const { first, last } = range;
        const textsAndSizes = Promise.all([extractText(doc.path, first, last, call), pageSizes(doc.path, first, last, call)]);
        await renderPageImages(doc.path, first, last, { ...call, dpi: PREVIEW_DPI, thumbnailWidthPx: THUMBNAIL_WIDTH_PX }, async ({ page: n, preview, thumbnail }) => {
          const [text, sizes] = await textsAndSizes;
          const size = sizes.find((p) => p.page === n);
          const page = Buffer.from(JSON.stringify({ n, width: size?.width ?? 0, height: size?.height ?? 0, text: text[n - first] ?? "" }));
          if (page.length > 0 && (text[n - first] ?? "").trim() !== "") texts++;
          if (thumbnail.subarray(8, 12).toString("latin1") === "WEBP") webps++;
          if (preview.subarray(1, 4).toString("latin1") === "PNG") pngs++;
        });
        await textsAndSizes;
        if (Number.isNaN(firstPageAt)) firstPageAt = performance.now();
      }
    }),
  );
  await counting;
  const seconds = (performance.now() - t0) / 1000;
  const m1 = await machineCpu();
  const cpu = (await cpuWithChildren("self")) - cpu0;
  const cpuNode = (await cpuSplit(process.pid)).self - node0;
  const ok = webps === doc.pages && pngs === doc.pages && texts >= doc.pages * 0.8;
  return {
    ok,
    ...(ok ? {} : { problem: `direct produced ${texts} texts, ${webps} WebP thumbnails, ${pngs} PNG previews for ${doc.pages} pages` }),
    seconds,
    inspectMs,
    firstPageMs: firstPageAt - t0,
    cpu,
    cpuNode,
    machine: (m1.busy - m0.busy) / (m1.total - m0.total),
  };
}

async function overhead(env: Env, doc: RealPdf, o: { rounds: number; concurrency: number; firstRange: number; range: number; budget: number }): Promise<{ pass: boolean; line: string }> {
  const budgetText =
    o.budget > 0
      ? `; each side under the same CPU quota of ${o.budget} cores (docflow: the processor and the gateway with their children; direct: this process with its children), the S3 server, RabbitMQ and NATS outside it`
      : "; all on the same cores as the S3 server, RabbitMQ and NATS";
  console.log(
    `\n=== overhead (benchmark 2): docflow (1 processor x concurrency ${o.concurrency}) vs the engine functions called directly (${o.concurrency} lanes, ranges ${o.firstRange} + ${o.range}...), ${doc.pages} pages, ${o.rounds} interleaved round(s)${budgetText}`,
  );
  const procs = await startProcessors(env.c, env.services, env.gateway, { count: 1, concurrency: o.concurrency, extraEnv: env.processorEnv, nodeArgs: env.processorArgs });
  // --budget: a cgroup with a CFS quota per side, as a pod's limits.cpu is enforced; the
  // services stay outside (on a cluster they are other pods, on other nodes).
  let budget: { docflow: CpuLimit; direct: CpuLimit; home: string; gatewayHome: string } | undefined;
  if (o.budget > 0) {
    const name = `docflow-bench-${process.pid}-overhead`;
    budget = {
      docflow: await createCpuLimit(`${name}-docflow`, o.budget),
      direct: await createCpuLimit(`${name}-direct`, o.budget),
      home: await currentCpuCgroup("self"),
      gatewayHome: await currentCpuCgroup(env.gateway.pid),
    };
    const b = budget;
    env.c.push(() => b.docflow.remove());
    env.c.push(() => b.direct.remove());
    for (const p of procs) await b.docflow.add(p.pid);
    await b.docflow.add(env.gateway.pid);
  }
  await sleep(2000);
  const rows: Array<{ round: number; order: string; d: JobRun; dc: CpuUse; x: DirectRun; load: string }> = [];
  for (let round = 1; round <= o.rounds; round++) {
    const docflowFirst = round % 2 === 1;
    let d: JobRun | undefined;
    let dc: CpuUse | undefined;
    let x: DirectRun | undefined;
    for (const which of docflowFirst ? ["docflow", "direct"] : ["direct", "docflow"]) {
      if (which === "docflow") {
        // CPU from before the upload to the job's end (not the checks of its outputs after it).
        const a = await cpuSnap(env, procs);
        let b: CpuSnap | undefined;
        d = await runJob(env, 0, doc, `overhead-${round}.pdf`, { atDone: async () => void (b = await cpuSnap(env, procs)) });
        dc = cpuDelta(a, b ?? (await cpuSnap(env, procs)));
        console.log(
          `round ${round} docflow: ${d.ok ? "completed" : `FAILED (${d.problem})`}, ${s2(d.seconds)} s = ${f1(doc.pages / d.seconds)} p/s; first page.ready ${ms(d.firstPageMs)} ms; CPU ${f1(dc.processors)} s processor + ${f1(dc.services)} s services; machine busy ${(dc.machine * 100).toFixed(0)}%; load ${loadNow()}`,
        );
        if (!d.ok) for (const p of procs) console.log(`  processor's last output:\n${p.logs().slice(-3000)}`);
      } else {
        if (budget) await budget.direct.add(process.pid);
        try {
          x = await runDirect(doc, o.concurrency, o.firstRange, o.range, env.timeoutMs);
        } finally {
          if (budget) await moveToCgroup(budget.home, process.pid);
        }
        console.log(
          `round ${round} direct: ${x.ok ? "ok" : `FAILED (${x.problem})`}, ${s2(x.seconds)} s = ${f1(doc.pages / x.seconds)} p/s (inspect ${ms(x.inspectMs)} ms, first range ${ms(x.firstPageMs)} ms); CPU ${f1(x.cpu)} s; machine busy ${(x.machine * 100).toFixed(0)}%; load ${loadNow()}`,
        );
      }
    }
    rows.push({ round, order: docflowFirst ? "docflow, direct" : "direct, docflow", d: d!, dc: dc!, x: x!, load: loadNow() });
  }
  for (const p of procs) await p.stop();
  if (budget) {
    await moveToCgroup(budget.gatewayHome, env.gateway.pid);
    const [d, x] = [await budget.docflow.throttled(), await budget.direct.throttled()];
    console.log(
      `CPU quota ${o.budget} cores: docflow throttled in ${d.throttledPeriods}/${d.periods} periods (${f1(d.throttledSeconds)} s), direct in ${x.throttledPeriods}/${x.periods} (${f1(x.throttledSeconds)} s)`,
    );
    await budget.docflow.remove();
    await budget.direct.remove();
  }
  const pps = (s: number) => doc.pages / s;
  console.log(
    `\n| round (order) | docflow p/s | direct p/s | ratio docflow / direct | docflow s | direct s | CPU ms/page docflow (processor + services) | CPU ms/page direct | machine busy docflow / direct | load (1 min) |`,
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.round} (${r.order}) | ${f1(pps(r.d.seconds))} | ${f1(pps(r.x.seconds))} | ${(r.x.seconds / r.d.seconds).toFixed(3)} | ${f1(r.d.seconds)} | ${f1(r.x.seconds)} | ${ms(((r.dc.processors + r.dc.services) / doc.pages) * 1000)} (${ms((r.dc.processors / doc.pages) * 1000)} + ${ms((r.dc.services / doc.pages) * 1000)}) | ${ms((r.x.cpu / doc.pages) * 1000)} | ${(r.dc.machine * 100).toFixed(0)}% / ${(r.x.machine * 100).toFixed(0)}% | ${r.load} |`,
    );
  }
  const ratio = median(rows.map((r) => r.x.seconds / r.d.seconds));
  const dCpu = median(rows.map((r) => r.dc.processors + r.dc.services)) / doc.pages;
  const xCpu = median(rows.map((r) => r.x.cpu)) / doc.pages;
  console.log(
    `| median | ${f1(median(rows.map((r) => pps(r.d.seconds))))} | ${f1(median(rows.map((r) => pps(r.x.seconds))))} | **${ratio.toFixed(3)}** | | | ${ms(dCpu * 1000)} | ${ms(xCpu * 1000)} | | |`,
  );
  const node = median(rows.map((r) => r.dc.processorsNode)) / doc.pages;
  const xNode = median(rows.map((r) => r.x.cpuNode)) / doc.pages;
  const svc = median(rows.map((r) => r.dc.services)) / doc.pages;
  console.log(
    `CPU ms per page (medians): docflow processor Node process ${ms(node * 1000)} + its poppler children ${ms((median(rows.map((r) => r.dc.processors)) / doc.pages - node) * 1000)} + services (gateway, S3 server, RabbitMQ, NATS) ${ms(svc * 1000)}; direct: this Node process ${ms(xNode * 1000)} + its poppler children ${ms((xCpu - xNode) * 1000)}`,
  );
  const each = ["gateway", "S3 server", "RabbitMQ", "NATS"].map((name, i) => `${name} ${f1((median(rows.map((r) => r.dc.each[i]!)) / doc.pages) * 1000)}`);
  console.log(`services' CPU ms per page (medians): ${each.join(", ")}`);
  const ok = rows.every((r) => r.d.ok && r.x.ok);
  const pass = ok && ratio >= 0.85;
  const line = `overhead${o.budget > 0 ? ` (CPU quota of ${o.budget} cores per side)` : " (shared cores)"}: docflow / direct = ${ratio.toFixed(3)} (median of ${rows.length}; target >= 0.85): ${pass ? "PASS" : "FAIL"}${ok ? "" : " (a run failed)"}; CPU per page docflow ${ms(dCpu * 1000)} ms vs direct ${ms(xCpu * 1000)} ms (direct / docflow ${(xCpu / dCpu).toFixed(2)})`;
  console.log(line);
  return { pass, line };
}

// ---------------------------------------------------------------------------------------------
// Benchmark 3: horizontal scaling

async function scaling(env: Env, doc: RealPdf, o: { rounds: number; pin: boolean; cpuLimit: number }): Promise<{ pass: boolean; line: string }> {
  const how = o.pin
    ? "; processor i pinned to core i (taskset -a: its threads and the poppler children it spawns)"
    : o.cpuLimit > 0
      ? `; each processor (its threads and the poppler children it spawns) in its own cgroup with a CFS quota of ${o.cpuLimit} core(s), as the kubelet enforces a pod's limits.cpu`
      : "; no CPU budget per processor (all share the machine's cores)";
  console.log(`\n=== scaling (benchmark 3): 1 processor vs 2 processors, concurrency 1 each, ${doc.pages} pages, ${o.rounds} interleaved round(s) (fresh processors per phase)${how}`);
  const phase = async (count: number, round: number) => {
    const procs = await startProcessors(env.c, env.services, env.gateway, { count, concurrency: 1, extraEnv: env.processorEnv, nodeArgs: env.processorArgs });
    if (o.pin) for (const p of procs) await execTool("taskset", ["-a", "-cp", String(p.index % availableParallelism()), String(p.pid)]);
    const limits: CpuLimit[] = [];
    if (!o.pin && o.cpuLimit > 0) {
      for (const p of procs) {
        const limit = await createCpuLimit(`docflow-bench-${process.pid}-${round}-${count}-${p.index}`, o.cpuLimit);
        env.c.push(() => limit.remove());
        await limit.add(p.pid);
        limits.push(limit);
      }
    }
    await sleep(1500);
    const a = await cpuSnap(env, procs);
    const t0 = await Promise.all(limits.map((l) => l.throttled()));
    let b: CpuSnap | undefined;
    const run = await runJob(env, 0, doc, `scaling-${count}-${round}.pdf`, { atDone: async () => void (b = await cpuSnap(env, procs)) });
    const cpu = cpuDelta(a, b ?? (await cpuSnap(env, procs)));
    const t1 = await Promise.all(limits.map((l) => l.throttled()));
    const load = loadNow();
    const throttled =
      limits.length === 0
        ? ""
        : `; throttled ${t1.map((t, i) => `${f1(t.throttledSeconds - t0[i]!.throttledSeconds)} s in ${t.throttledPeriods - t0[i]!.throttledPeriods}/${t.periods - t0[i]!.periods} periods`).join(", ")}`;
    console.log(
      `round ${round}, ${count} processor(s): ${run.ok ? "completed" : `FAILED (${run.problem})`}, ${s2(run.seconds)} s = ${f1(doc.pages / run.seconds)} p/s; CPU ${f1(cpu.processors)} s processors + ${f1(cpu.services)} s services = ${f1((cpu.processors + cpu.services) / run.seconds)} cores used by docflow; machine busy ${(cpu.machine * 100).toFixed(0)}%; load ${load}${throttled}`,
    );
    if (!run.ok) for (const p of procs) console.log(`  processor ${p.index}'s last output:\n${p.logs().slice(-3000)}`);
    for (const p of procs) await p.stop();
    for (const l of limits) await l.remove();
    return { run, cpu, load };
  };
  const rows: Array<{ round: number; one: Awaited<ReturnType<typeof phase>>; two: Awaited<ReturnType<typeof phase>> }> = [];
  for (let round = 1; round <= o.rounds; round++) {
    let one: Awaited<ReturnType<typeof phase>> | undefined;
    let two: Awaited<ReturnType<typeof phase>> | undefined;
    for (const n of round % 2 === 1 ? [1, 2] : [2, 1]) {
      if (n === 1) one = await phase(1, round);
      else two = await phase(2, round);
    }
    rows.push({ round, one: one!, two: two! });
  }
  const pps = (r: JobRun) => doc.pages / r.seconds;
  const cores = availableParallelism();
  console.log(
    `\n| round (order) | 1 processor p/s | 2 processors p/s | ratio | CPU ms/page 1 / 2 (processors + services) | docflow cores used 1 / 2 | machine busy 1 / 2 (of ${cores} cores) | load (1 min) after 1 / 2 |`,
  );
  console.log("|---|---|---|---|---|---|---|---|");
  const perPage = (c: CpuUse) => ((c.processors + c.services) / doc.pages) * 1000;
  for (const r of rows) {
    console.log(
      `| ${r.round} (${r.round % 2 === 1 ? "1, 2" : "2, 1"}) | ${f1(pps(r.one.run))} | ${f1(pps(r.two.run))} | ${(pps(r.two.run) / pps(r.one.run)).toFixed(2)}x | ${ms(perPage(r.one.cpu))} / ${ms(perPage(r.two.cpu))} | ${f1((r.one.cpu.processors + r.one.cpu.services) / r.one.run.seconds)} / ${f1((r.two.cpu.processors + r.two.cpu.services) / r.two.run.seconds)} | ${(r.one.cpu.machine * 100).toFixed(0)}% / ${(r.two.cpu.machine * 100).toFixed(0)}% | ${r.one.load} / ${r.two.load} |`,
    );
  }
  const ratio = median(rows.map((r) => pps(r.two.run) / pps(r.one.run)));
  const used1 = median(rows.map((r) => (r.one.cpu.processors + r.one.cpu.services) / r.one.run.seconds));
  const used2 = median(rows.map((r) => (r.two.cpu.processors + r.two.cpu.services) / r.two.run.seconds));
  const busy2 = median(rows.map((r) => r.two.cpu.machine));
  console.log(
    `| median | ${f1(median(rows.map((r) => pps(r.one.run))))} | ${f1(median(rows.map((r) => pps(r.two.run))))} | **${ratio.toFixed(2)}x** | ${ms(median(rows.map((r) => perPage(r.one.cpu))))} / ${ms(median(rows.map((r) => perPage(r.two.cpu))))} | ${f1(used1)} / ${f1(used2)} | | |`,
  );
  const ok = rows.every((r) => r.one.run.ok && r.two.run.ok);
  const pass = ok && ratio >= 1.7;
  // One processor at concurrency 1 already runs 4 poppler children per range and sharp's threads:
  // it uses `used1` cores. Two can at most use what the machine has left.
  const budget = o.pin ? "processors pinned to a core each" : o.cpuLimit > 0 ? `${o.cpuLimit} core(s) of CPU quota per processor` : "no CPU budget per processor";
  const line = `scaling: 2 processors / 1 = ${ratio.toFixed(3)}x (median of ${rows.length}; ${budget}; target >= 1.7x): ${pass ? "PASS" : "FAIL"}${ok ? "" : " (a run failed)"}; docflow used ${f1(used1)} cores with 1 processor, ${f1(used2)} with 2, machine ${(busy2 * 100).toFixed(0)}% busy during the 2-processor phase (${cores} cores)`;
  console.log(line);
  return { pass, line };
}

// ---------------------------------------------------------------------------------------------
// Benchmark 4: latency

async function latency(env: Env, doc: RealPdf, o: { n: number; bigPages: number; smallN: number; smallAfter: number; concurrency: number }): Promise<{ pass: boolean; line: string }> {
  console.log(`\n=== latency (benchmark 4): 1 processor x concurrency ${o.concurrency}`);
  const procs = await startProcessors(env.c, env.services, env.gateway, { count: 1, concurrency: o.concurrency, extraEnv: env.processorEnv, nodeArgs: env.processorArgs });
  await sleep(2000);

  // (a) first page of the long document
  const firsts: JobRun[] = [];
  for (let i = 1; i <= o.n; i++) {
    const r = await runJob(env, 0, doc, `latency-${i}.pdf`, { until: "first-page" });
    firsts.push(r);
    console.log(
      `first page ${i}/${o.n}: ${r.ok ? "" : `FAILED (${r.problem}) `}upload ${ms(r.uploadMs)} ms; upload done -> job.started (inspect done, ranges out) ${ms(r.startedMs)} ms -> first page.ready ${ms(r.firstPageMs)} ms; load ${loadNow()}`,
    );
    if (!(await waitIdle(procs, 60_000))) console.log("  (the processor was still busy 60 s after the cancellation)");
    await sleep(1000);
  }
  const okFirsts = firsts.filter((r) => r.ok);
  const firstMed = median(okFirsts.map((r) => r.firstPageMs));
  const startedMed = median(okFirsts.map((r) => r.startedMs));

  // (b) a 1-page document of another tenant, idle, then while the long one is processing
  const one = await buildRealPdf(1);
  const big = await buildRealPdf(o.bigPages, { perDoc: Infinity });
  console.log(
    `small document: ${one.path} (1 page, ${(one.bytes / 1024).toFixed(0)} KiB); long document: ${big.path} (${big.pages} pages, ${(big.bytes / MiB).toFixed(1)} MiB, sha256 ${big.sha256.slice(0, 16)}...)`,
  );
  const idle: JobRun[] = [];
  for (let i = 1; i <= 3; i++) {
    const r = await runJob(env, 1, one, `small-idle-${i}.pdf`);
    idle.push(r);
    console.log(
      `1 page, idle pipeline ${i}/3: ${r.ok ? "completed" : `FAILED (${r.problem})`}, upload done -> job.completed ${ms(r.seconds * 1000)} ms (first page.ready ${ms(r.firstPageMs)} ms); load ${loadNow()}`,
    );
  }
  const bigPost = await postFile(env.gateway.url, token(0), big.path, `long-${big.pages}p.pdf`);
  if (bigPost.status !== 202 || !bigPost.job) throw new Error(`long upload answered ${bigPost.status}: ${bigPost.body.slice(0, 300)}`);
  const bigId = bigPost.job.id;
  const bigEvents = () => env.events[0]!.events(bigId);
  const pagesDone = () => Math.max(0, ...bigEvents().map((e) => e.pagesDone ?? 0));
  // Wait until the long document is really rendering (its window full): by default 2 ranges done.
  const waitStart = performance.now();
  while (pagesDone() < o.smallAfter && performance.now() - waitStart < env.timeoutMs) {
    if (bigEvents().some((e) => e.type === "job.failed" || e.type === "job.completed")) break;
    await sleep(100);
  }
  console.log(`long document: upload ${ms(bigPost.ms)} ms, ${pagesDone()} pages done ${ms(performance.now() - bigPost.doneAt)} ms after its upload; now the 1-page uploads`);
  const during: Array<JobRun & { bigDone: number; bigBusy: boolean }> = [];
  for (let i = 1; i <= o.smallN; i++) {
    const before = pagesDone();
    const r = await runJob(env, 1, one, `small-busy-${i}.pdf`);
    const bigBusy = !bigEvents().some((e) => e.type === "job.completed" || e.type === "job.failed");
    during.push({ ...r, bigDone: before, bigBusy });
    console.log(
      `1 page during the long document ${i}/${o.smallN}: ${r.ok ? "completed" : `FAILED (${r.problem})`}, upload ${ms(r.uploadMs)} ms; upload done -> job.started ${ms(r.startedMs)} ms -> page.ready ${ms(r.firstPageMs)} ms -> job.completed ${ms(r.seconds * 1000)} ms; long document at ${before}/${big.pages} pages${bigBusy ? "" : " (it had FINISHED: not a valid sample)"}; load ${loadNow()}`,
    );
    await sleep(1500);
  }
  const bigPps = pagesDone() / ((performance.now() - bigPost.doneAt) / 1000);
  const del = await deleteWithBody(env.gateway.url, token(0), bigId);
  console.log(`long document deleted at ${pagesDone()}/${big.pages} pages (${f1(bigPps)} p/s meanwhile; DELETE answered ${del.status})`);
  if (del.status !== 204) console.log(`  answer: ${del.body.slice(0, 1000)}\n  the gateway's last output:\n${env.gateway.logs().slice(-2000)}`);
  await waitIdle(procs, 60_000);
  for (const p of procs) await p.stop();

  const valid = during.filter((r) => r.ok && r.bigBusy);
  const smallMed = median(valid.map((r) => r.seconds * 1000));
  const smallMax = Math.max(...valid.map((r) => r.seconds * 1000));
  const idleMed = median(idle.filter((r) => r.ok).map((r) => r.seconds * 1000));
  console.log(`\n| measure | median | min | max | n | target |`);
  console.log("|---|---|---|---|---|---|");
  const row = (name: string, xs: number[], target: string) => console.log(`| ${name} | ${ms(median(xs))} ms | ${ms(Math.min(...xs))} ms | ${ms(Math.max(...xs))} ms | ${xs.length} | ${target} |`);
  row(
    `${doc.pages}-page PDF: upload done -> job.started (inspect done)`,
    okFirsts.map((r) => r.startedMs),
    "",
  );
  row(
    `${doc.pages}-page PDF: upload done -> first page.ready`,
    okFirsts.map((r) => r.firstPageMs),
    "<= 1500 ms",
  );
  row(
    "1-page PDF, idle pipeline: upload done -> job.completed",
    idle.filter((r) => r.ok).map((r) => r.seconds * 1000),
    "",
  );
  row(
    `1-page PDF (tenant 2) during the ${big.pages}-page PDF (tenant 1): upload done -> job.started`,
    valid.map((r) => r.startedMs),
    "",
  );
  row(
    `1-page PDF during the ${big.pages}-page PDF: upload done -> job.completed`,
    valid.map((r) => r.seconds * 1000),
    "<= 5000 ms",
  );
  const passA = okFirsts.length === firsts.length && firstMed <= 1500;
  const passB = valid.length === during.length && valid.length > 0 && smallMax <= 5000;
  const line = `latency: first page.ready median ${ms(firstMed)} ms (job.started ${ms(startedMed)} ms; n ${okFirsts.length}; target <= 1500 ms): ${passA ? "PASS" : "FAIL"}; 1-page PDF during the ${big.pages}-page one: median ${ms(smallMed)} ms, max ${ms(smallMax)} ms (idle ${ms(idleMed)} ms; n ${valid.length}; target <= 5000 ms): ${passB ? "PASS" : "FAIL"}`;
  console.log(line);
  return { pass: passA && passB, line };
}

// ---------------------------------------------------------------------------------------------

/**
 * The CPU budget of each processor in the scaling benchmark: --cpu-limit N cores (0: none). By
 * default 1 core where a CPU cgroup can be made (it says so otherwise and runs without).
 */
function scalingCpuLimit(flag: string | undefined, pin: boolean): number {
  if (pin) return 0;
  if (flag !== undefined) {
    const cores = Number(flag);
    if (!(cores >= 0)) throw new Error(`--cpu-limit: not a number of cores: ${flag}`);
    return cores;
  }
  const support = cpuLimitSupport();
  if (support.ok) return 1;
  console.log(`scaling: no CPU budget per processor (${support.why}); the figure then depends on how many cores one processor takes`);
  return 0;
}

/** --budget N: the CPU quota of each side of the overhead benchmark (0: none). */
function overheadBudget(flag: string): number {
  const cores = Number(flag);
  if (!(cores >= 0)) throw new Error(`--budget: not a number of cores: ${flag}`);
  if (cores > 0) {
    const support = cpuLimitSupport();
    if (!support.ok) throw new Error(`--budget needs a CPU cgroup: ${support.why}`);
  }
  return cores;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: "string", default: "overhead,scaling,latency" },
      pages: { type: "string" },
      rounds: { type: "string" },
      concurrency: { type: "string", default: "2" },
      "first-range": { type: "string", default: "1" },
      range: { type: "string", default: "8" },
      "latency-n": { type: "string" },
      "big-pages": { type: "string" },
      "small-n": { type: "string" },
      "small-after-pages": { type: "string", default: "9" },
      quick: { type: "boolean", default: false },
      pin: { type: "boolean", default: false },
      "cpu-limit": { type: "string" },
      budget: { type: "string", default: "0" },
      "processor-env": { type: "string", default: "" },
      "gateway-env": { type: "string", default: "" },
      "processor-args": { type: "string", default: "" },
      "timeout-s": { type: "string", default: "600" },
      strict: { type: "boolean", default: false },
    },
  });
  const q = values.quick;
  const only = new Set(values.only.split(",").map((s) => s.trim()));
  for (const o of only) if (!["overhead", "scaling", "latency"].includes(o)) throw new Error(`--only: unknown benchmark ${o} (overhead, scaling, latency)`);
  const pages = Number(values.pages ?? (q ? 16 : 300));
  const rounds = Number(values.rounds ?? (q ? 1 : 3));
  const concurrency = Number(values.concurrency);
  const c = cleanups();
  const load0 = loadavg();
  const t0 = performance.now();
  try {
    console.log(`pipeline: issue 5 benchmarks 2 (overhead), 3 (scaling), 4 (latency); running: ${[...only].join(", ")}`);
    console.log(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? "?"}), Node ${process.version}, load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);
    console.log(await treeState());
    const doc = await buildRealPdf(pages);
    console.log(provenance(doc));
    const services = await startServices(c);
    const gateway = await startGateway(c, services, { storage: "s3", tenants: 2, maxUploadBytes: 1024 * MiB, bucket: `bench-pipe-${process.pid}`, extraEnv: parseEnvList(values["gateway-env"]) });
    const events = [await watchEvents(c, services.nats.url, "bench-0"), await watchEvents(c, services.nats.url, "bench-1")];
    const env: Env = {
      c,
      services,
      gateway,
      events,
      timeoutMs: Number(values["timeout-s"]) * 1000,
      processorEnv: parseEnvList(values["processor-env"]),
      processorArgs: values["processor-args"].split(" ").filter((a) => a !== ""),
    };
    console.log(`gateway pid ${gateway.pid}`);
    const results: Array<{ pass: boolean; line: string }> = [];
    if (only.has("overhead"))
      results.push(await overhead(env, doc, { rounds, concurrency, firstRange: Number(values["first-range"]), range: Number(values.range), budget: overheadBudget(values.budget) }));
    if (only.has("scaling")) results.push(await scaling(env, doc, { rounds, pin: values.pin, cpuLimit: scalingCpuLimit(values["cpu-limit"], values.pin) }));
    if (only.has("latency")) {
      results.push(
        await latency(env, doc, {
          n: Number(values["latency-n"] ?? (q ? 2 : 5)),
          bigPages: Number(values["big-pages"] ?? (q ? 300 : 2000)),
          smallN: Number(values["small-n"] ?? (q ? 2 : 5)),
          smallAfter: Number(values["small-after-pages"]),
          concurrency,
        }),
      );
    }
    const load1 = loadavg();
    console.log(`\n== summary (${await treeState()})`);
    for (const r of results) console.log(r.line);
    console.log(`load average ${load0.map((l) => l.toFixed(2)).join(" ")} at start -> ${load1.map((l) => l.toFixed(2)).join(" ")} at end; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`);
    return values.strict && !results.every((r) => r.pass) ? 1 : 0;
  } finally {
    await c.run();
  }
}

runMain(main);
