/**
 * Does docflow process a real document faster than someone running poppler by hand (issue 5,
 * benchmark 1)? The same real ~300-page PDF through docflow (POST /v1/documents; the clock runs
 * from the 202 "upload done" to the Job's `job.completed` event: text, a thumbnail and a 150 DPI
 * preview of every page, stored) and through the poppler CLI baseline (`pdftotext`, then
 * `pdftoppm -png -scale-to-x 200` and `pdftoppm -png -r 150`, per page range, with P parallel
 * processes where P = processors x concurrency), interleaved, median of N rounds.
 *
 *   node bench/processing.ts [--pages 300] [--rounds 3] [--processors 1] [--concurrency 2] [--quick]
 *
 * Prints pages/s of both, their ratio per round and the median (target: docflow >= 2x), the time
 * to the first `page.ready`, CPU seconds per page of every process involved, and each
 * processor's event-loop delay during the docflow phase (from its /metrics:
 * `docflow_eventloop_delay_seconds` histogram over the phase, `docflow_eventloop_delay_max_seconds`
 * over every scrape), with the same figures while the baseline loads the machine and the
 * processors are idle, for comparison. docflow is driven only through its public API and events,
 * so the benchmark does not depend on the pipeline's internal stages.
 *
 * Flags:
 *   --pages N             pages of the real document (300), built from Debian documentation PDFs
 *   --rounds N            interleaved rounds (3); the order alternates (docflow first, then baseline first)
 *   --processors N        processor processes (1)
 *   --concurrency N       DOCFLOW_PROCESSOR_CONCURRENCY per processor (2, the core count here)
 *   --range N             pages per baseline range (8, DOCFLOW_RANGE_SIZE's default); the baseline's
 *                         P lanes take ranges from one queue, one CLI process at a time per lane
 *   --target-ratio X      PASS/FAIL threshold of the median ratio docflow / baseline (2)
 *   --quick               smoke run in < 1 min: --pages 16 --rounds 1
 *   --processor-env K=V,...  extra processor environment (e.g. DOCFLOW_RANGE_SIZE=16)
 *   --gateway-env K=V,... extra gateway environment
 *   --timeout-s N         cap per docflow job (600)
 *   --strict              exit 1 on FAIL or on a job that did not complete with every output
 * Only 127.0.0.1 is contacted; everything is stopped on exit, error, Ctrl-C or SIGTERM.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { MiB, cleanups, cpuSeconds, f1, median, parseEnvList, startGateway, startServices, token, runMain } from "./lib/harness.ts";
import {
  cpuMainThread,
  cpuSplit,
  cpuWithChildren,
  deleteJob,
  getBytes,
  getJson,
  histAbove,
  histQuantile,
  postFile,
  startCanary,
  startProcessors,
  watchEvents,
  watchLoop,
  type CanaryFigures,
  type Processor,
} from "./lib/docflow.ts";
import { buildRealPdf, provenance } from "./lib/real-pdf.ts";
import { treeState } from "./lib/tree-state.ts";

interface LoopFigures {
  processor: number;
  p50: number;
  p99: number;
  max: number;
  above50: number;
  samples: number;
}

interface DocflowRun {
  ok: boolean;
  problem?: string;
  uploadMs: number;
  seconds: number;
  pps: number;
  firstPageMs: number;
  pageReady: number;
  via: string;
  cpu: { processors: number; processorsNode: number; processorsMain: number; gateway: number; s3: number; rabbitmq: number; nats: number };
  loop: LoopFigures[];
  canary?: CanaryFigures;
}

interface BaselineRun {
  ok: boolean;
  problem?: string;
  seconds: number;
  pps: number;
  cpu: number;
  loop: LoopFigures[];
  canary?: CanaryFigures;
}

const ms = (s: number) => (Number.isFinite(s) ? (s * 1000).toFixed(1) : "-");

function exec(cmd: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => execFile(cmd, args, { maxBuffer: 64 * MiB }, (err, _o, stderr) => (err ? rej(new Error(`${cmd} ${args.join(" ")}: ${err.message} ${stderr}`)) : res())));
}

/** CPU seconds of a process tree: the process itself (with its reaped children) plus its live process-group members. */
async function cpuOf(pid: number): Promise<number> {
  return (await cpuWithChildren(pid)) + ((await cpuSeconds(pid, true)) - (await cpuSeconds(pid, false)));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      pages: { type: "string" },
      rounds: { type: "string" },
      processors: { type: "string", default: "1" },
      concurrency: { type: "string", default: "2" },
      range: { type: "string", default: "8" },
      "target-ratio": { type: "string", default: "2" },
      quick: { type: "boolean", default: false },
      "processor-env": { type: "string", default: "" },
      "gateway-env": { type: "string", default: "" },
      "timeout-s": { type: "string", default: "600" },
      strict: { type: "boolean", default: false },
    },
  });
  const pages = Number(values.pages ?? (values.quick ? 16 : 300));
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
  const processors = Number(values.processors);
  const concurrency = Number(values.concurrency);
  const range = Number(values.range);
  const targetRatio = Number(values["target-ratio"]);
  const lanes = processors * concurrency;
  const c = cleanups();
  const load0 = loadavg();
  const t0 = performance.now();
  try {
    console.log(`processing: docflow vs the poppler CLI baseline (issue 5, benchmark 1)`);
    console.log(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? "?"}), Node ${process.version}, load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);
    console.log(await treeState());
    const doc = await buildRealPdf(pages);
    console.log(provenance(doc));
    console.log(`docflow: ${processors} processor(s) x concurrency ${concurrency}; baseline: ${lanes} parallel process(es), ranges of ${range} pages; ${rounds} interleaved round(s)\n`);

    const services = await startServices(c);
    const gateway = await startGateway(c, services, { storage: "s3", tenants: 1, maxUploadBytes: 1024 * MiB, bucket: `bench-proc-${process.pid}`, extraEnv: parseEnvList(values["gateway-env"]) });
    const procs = await startProcessors(c, services, gateway, { count: processors, concurrency, extraEnv: parseEnvList(values["processor-env"]) });
    console.log(`gateway pid ${gateway.pid}, processors ${procs.map((p) => `pid ${p.pid} (${p.metricsUrl})`).join(", ")}`);
    const events = await watchEvents(c, services.nats.url, "bench-0");
    const canary = await startCanary(c);

    const loopFigures = async (watches: Array<{ p: Processor; w: Awaited<ReturnType<typeof watchLoop>> }>): Promise<LoopFigures[]> =>
      Promise.all(
        watches.map(async ({ p, w }) => {
          const r = await w.stop();
          return { processor: p.index, p50: histQuantile(r.hist, 0.5), p99: histQuantile(r.hist, 0.99), max: r.max, above50: histAbove(r.hist, 0.05), samples: r.hist.count };
        }),
      );

    const runDocflow = async (round: number): Promise<DocflowRun> => {
      const node0 = await Promise.all(procs.map((p) => cpuSplit(p.pid)));
      const main0 = await Promise.all(procs.map((p) => cpuMainThread(p.pid)));
      const cpu0 = await Promise.all([...procs.map((p) => cpuWithChildren(p.pid)), cpuOf(gateway.pid), cpuOf(services.s3.pid), cpuOf(services.rabbitmq.pid), cpuOf(services.nats.pid)]);
      const watches = await Promise.all(procs.map(async (p) => ({ p, w: await watchLoop(p.metricsUrl, 1000) })));
      await canary.cut();
      const posted = await postFile(gateway.url, token(0), doc.path, `real-${pages}p-round${round}.pdf`);
      if (posted.status !== 202 || !posted.job) {
        await loopFigures(watches);
        return {
          ok: false,
          problem: `upload answered ${posted.status}: ${posted.body.slice(0, 300)}`,
          uploadMs: posted.ms,
          seconds: NaN,
          pps: NaN,
          firstPageMs: NaN,
          pageReady: 0,
          via: "-",
          cpu: { processors: NaN, processorsNode: NaN, processorsMain: NaN, gateway: NaN, s3: NaN, rabbitmq: NaN, nats: NaN },
          loop: [],
        };
      }
      const jobId = posted.job.id;
      const done = await events.waitDone(jobId, { baseUrl: gateway.url, token: token(0), timeoutMs: Number(values["timeout-s"]) * 1000 });
      const loop = await loopFigures(watches);
      const canaryFigures = await canary.cut();
      const cpu1 = await Promise.all([...procs.map((p) => cpuWithChildren(p.pid)), cpuOf(gateway.pid), cpuOf(services.s3.pid), cpuOf(services.rabbitmq.pid), cpuOf(services.nats.pid)]);
      const node1 = await Promise.all(procs.map((p) => cpuSplit(p.pid)));
      const procNode = node1.reduce((a, n, i) => a + n.self - node0[i]!.self, 0);
      const main1 = await Promise.all(procs.map((p) => cpuMainThread(p.pid)));
      const procMain = main1.reduce((a, n, i) => a + n - main0[i]!, 0);
      const d = cpu1.map((v, i) => v - cpu0[i]!);
      const procTotal = d.slice(0, procs.length).reduce((a, b) => a + b, 0);
      const seen = events.events(jobId);
      const ready = seen.filter((e) => e.type === "page.ready");
      const readyPages = new Set(ready.map((e) => e.page));
      const seconds = (done.at - posted.doneAt) / 1000;
      const run: DocflowRun = {
        ok: done.status === "completed",
        uploadMs: posted.ms,
        seconds,
        pps: pages / seconds,
        firstPageMs: ready.length > 0 ? Math.min(...ready.map((e) => e.at)) - posted.doneAt : NaN,
        pageReady: readyPages.size,
        via: done.via,
        // A processor's own CPU and its reaped children's (poppler) together (cutime/cstime).
        cpu: {
          processors: procTotal,
          processorsNode: procNode,
          processorsMain: procMain,
          gateway: d[procs.length]!,
          s3: d[procs.length + 1]!,
          rabbitmq: d[procs.length + 2]!,
          nats: d[procs.length + 3]!,
        },
        loop,
        canary: canaryFigures,
      };
      if (!run.ok) run.problem = `job ${jobId} ended ${done.status}: ${JSON.stringify(seen.find((e) => e.error)?.error ?? done.job ?? {})}`;
      // Every output is there (checked outside the timed window): the result lists every page
      // with its text, and thumbnails / previews of the first, middle and last pages are images.
      if (run.ok) {
        const result = await getJson<{ pages: Array<{ n: number; text: string }> }>(`${gateway.url}/v1/jobs/${jobId}/result`, token(0));
        const got = result.json?.pages ?? [];
        const withText = got.filter((p) => p.text.trim() !== "").length;
        const problems: string[] = [];
        if (result.status !== 200 || got.length !== pages) problems.push(`result: ${result.status}, ${got.length}/${pages} pages`);
        if (withText < pages * 0.8) problems.push(`only ${withText}/${pages} pages with text`);
        for (const n of [1, Math.ceil(pages / 2), pages]) {
          const thumb = await getBytes(`${gateway.url}/v1/jobs/${jobId}/pages/${n}/thumbnail`, token(0));
          const preview = await getBytes(`${gateway.url}/v1/jobs/${jobId}/pages/${n}/preview`, token(0));
          if (thumb.status !== 200 || thumb.head.subarray(8, 12).toString("latin1") !== "WEBP") problems.push(`page ${n} thumbnail: ${thumb.status}`);
          if (preview.status !== 200 || preview.head.subarray(1, 4).toString("latin1") !== "PNG") problems.push(`page ${n} preview: ${preview.status}`);
        }
        if (readyPages.size !== pages) problems.push(`page.ready seen for ${readyPages.size}/${pages} pages`);
        if (problems.length > 0) {
          run.ok = false;
          run.problem = problems.join("; ");
        }
      }
      const del = await deleteJob(gateway.url, token(0), jobId);
      if (del !== 204) console.log(`  (DELETE /v1/jobs/${jobId} answered ${del})`);
      events.forget(jobId);
      return run;
    };

    const runBaseline = async (): Promise<BaselineRun> => {
      const out = await mkdtemp(join(tmpdir(), "docflow-bench-baseline-"));
      try {
        const queue: Array<[number, number]> = [];
        for (let first = 1; first <= pages; first += range) queue.push([first, Math.min(pages, first + range - 1)]);
        const watches = await Promise.all(procs.map(async (p) => ({ p, w: await watchLoop(p.metricsUrl, 1000) })));
        await canary.cut();
        const cpu0 = await cpuWithChildren("self");
        const started = performance.now();
        await Promise.all(
          Array.from({ length: lanes }, async () => {
            for (let r = queue.shift(); r; r = queue.shift()) {
              const [a, b] = r.map(String) as [string, string];
              await exec("pdftotext", ["-f", a, "-l", b, "-enc", "UTF-8", doc.path, join(out, `text-${a}.txt`)]);
              await exec("pdftoppm", ["-f", a, "-l", b, "-png", "-scale-to-x", "200", "-scale-to-y", "-1", doc.path, join(out, "thumb")]);
              await exec("pdftoppm", ["-f", a, "-l", b, "-png", "-r", "150", doc.path, join(out, "preview")]);
            }
          }),
        );
        const seconds = (performance.now() - started) / 1000;
        const cpu = (await cpuWithChildren("self")) - cpu0;
        const loop = await loopFigures(watches);
        const canaryFigures = await canary.cut();
        const files = await readdir(out);
        const thumbs = files.filter((f) => f.startsWith("thumb-") && f.endsWith(".png")).length;
        const previews = files.filter((f) => f.startsWith("preview-") && f.endsWith(".png")).length;
        let textPages = 0;
        for (const f of files.filter((x) => x.startsWith("text-"))) textPages += (await readFile(join(out, f), "utf8")).split("\f").length - 1;
        const ok = thumbs === pages && previews === pages && textPages === pages;
        return {
          ok,
          ...(ok ? {} : { problem: `baseline produced ${textPages} texts, ${thumbs} thumbnails, ${previews} previews for ${pages} pages` }),
          seconds,
          pps: pages / seconds,
          cpu,
          loop,
          canary: canaryFigures,
        };
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    };

    const results: Array<{ round: number; order: string; docflow: DocflowRun; baseline: BaselineRun; load: number }> = [];
    for (let round = 1; round <= rounds; round++) {
      const docflowFirst = round % 2 === 1;
      let d: DocflowRun | undefined;
      let b: BaselineRun | undefined;
      for (const which of docflowFirst ? ["docflow", "baseline"] : ["baseline", "docflow"]) {
        if (which === "docflow") {
          d = await runDocflow(round);
          console.log(
            `round ${round} docflow: ${d.ok ? "completed" : `FAILED (${d.problem})`}, upload ${f1(d.uploadMs)} ms, upload done -> job.completed ${d.seconds.toFixed(2)} s = ${f1(d.pps)} pages/s (via ${d.via}); first page.ready ${f1(d.firstPageMs)} ms; load ${loadavg()[0]!.toFixed(2)}`,
          );
          for (const l of d.loop)
            console.log(`  processor ${l.processor} loop delay: p50 ${ms(l.p50)} / p99 ${ms(l.p99)} / max ${ms(l.max)} ms, ${(l.above50 * 100).toFixed(2)}% of ${l.samples} samples > 50 ms`);
          if (d.canary)
            console.log(
              `  canary (an idle Node process, same machine): p50 ${d.canary.p50.toFixed(1)} / p99 ${d.canary.p99.toFixed(1)} / max ${d.canary.max.toFixed(1)} ms, ${(d.canary.above50 * 100).toFixed(2)}% > 50 ms`,
            );
          if (!d.ok) for (const p of procs) console.log(`  processor ${p.index}'s last output:\n${p.logs().slice(-3000)}`);
        } else {
          b = await runBaseline();
          console.log(
            `round ${round} baseline: ${b.ok ? "ok" : `FAILED (${b.problem})`}, ${b.seconds.toFixed(2)} s = ${f1(b.pps)} pages/s, CPU ${b.cpu.toFixed(1)} s; load ${loadavg()[0]!.toFixed(2)}`,
          );
        }
      }
      results.push({ round, order: docflowFirst ? "docflow, baseline" : "baseline, docflow", docflow: d!, baseline: b!, load: loadavg()[0]! });
    }
    const load1 = loadavg();

    console.log(`\n== pages per second (${pages} pages; docflow: upload done -> job.completed, every output stored; baseline: ${lanes} x poppler CLIs)`);
    console.log("| round (order) | docflow p/s | baseline p/s | ratio | docflow s | baseline s | first page.ready | load (1 min) |");
    console.log("|---|---|---|---|---|---|---|---|");
    for (const r of results) {
      console.log(
        `| ${r.round} (${r.order}) | ${f1(r.docflow.pps)} | ${f1(r.baseline.pps)} | ${(r.docflow.pps / r.baseline.pps).toFixed(2)}x | ${r.docflow.seconds.toFixed(1)} | ${r.baseline.seconds.toFixed(1)} | ${f1(r.docflow.firstPageMs)} ms | ${r.load.toFixed(2)} |`,
      );
    }
    const allOk = results.every((r) => r.docflow.ok && r.baseline.ok);
    const dMed = median(results.map((r) => r.docflow.pps));
    const bMed = median(results.map((r) => r.baseline.pps));
    const ratio = median(results.map((r) => r.docflow.pps / r.baseline.pps));
    console.log(`| median | ${f1(dMed)} | ${f1(bMed)} | **${ratio.toFixed(2)}x** | | | ${f1(median(results.map((r) => r.docflow.firstPageMs)))} ms | |`);

    console.log(`\n== CPU seconds per page (median over rounds)`);
    const per = (f: (r: (typeof results)[number]) => number) => median(results.map(f)) / pages;
    const dc = {
      proc: per((r) => r.docflow.cpu.processors),
      node: per((r) => r.docflow.cpu.processorsNode),
      main: per((r) => r.docflow.cpu.processorsMain),
      gw: per((r) => r.docflow.cpu.gateway),
      s3: per((r) => r.docflow.cpu.s3),
      mq: per((r) => r.docflow.cpu.rabbitmq),
      nats: per((r) => r.docflow.cpu.nats),
    };
    const dTotal = dc.proc + dc.gw + dc.s3 + dc.mq + dc.nats;
    console.log(
      `docflow: processor(s) ${ms(dc.proc)} ms (Node process ${ms(dc.node)} ms: main thread / event loop ${ms(dc.main)} ms, other threads (sharp's encoding on libuv's pool, V8 helpers) ${ms(dc.node - dc.main)} ms; poppler children ${ms(dc.proc - dc.node)} ms), gateway ${ms(dc.gw)} ms, S3 server ${ms(dc.s3)} ms, RabbitMQ ${ms(dc.mq)} ms, NATS ${ms(dc.nats)} ms: total ${ms(dTotal)} ms/page`,
    );
    const bc = per((r) => r.baseline.cpu);
    console.log(`baseline: poppler CLIs ${ms(bc)} ms/page`);
    console.log(`CPU-bound bound on the ratio on ${availableParallelism()} cores: ${(bc / dTotal).toFixed(2)}x (baseline CPU per page / docflow CPU per page)`);

    console.log(`\n== processor event-loop delay (docflow_eventloop_delay_seconds over the phase; max = highest docflow_eventloop_delay_max_seconds of the 1 s scrapes)`);
    console.log("| round | phase | process | p50 ms | p99 ms | max ms | samples > 50 ms | samples |");
    console.log("|---|---|---|---|---|---|---|---|");
    for (const r of results) {
      for (const [phase, loops] of [
        ["docflow (full load)", r.docflow.loop],
        ["baseline (processor idle, machine loaded)", r.baseline.loop],
      ] as const) {
        for (const l of loops) console.log(`| ${r.round} | ${phase} | processor ${l.processor} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.max)} | ${(l.above50 * 100).toFixed(2)}% | ${l.samples} |`);
      }
      for (const [phase, k] of [
        ["docflow", r.docflow.canary],
        ["baseline", r.baseline.canary],
      ] as const) {
        if (k) console.log(`| ${r.round} | ${phase} | canary (idle Node process) | ${k.p50.toFixed(1)} | ${k.p99.toFixed(1)} | ${k.max.toFixed(1)} | ${(k.above50 * 100).toFixed(2)}% | ${k.n} |`);
      }
    }
    const worstP99 = Math.max(...results.flatMap((r) => r.docflow.loop.map((l) => l.p99)));
    const worstMax = Math.max(...results.flatMap((r) => r.docflow.loop.map((l) => l.max)));

    const pass = allOk && ratio >= targetRatio;
    console.log(`\nload average ${load0.map((l) => l.toFixed(2)).join(" ")} at start -> ${load1.map((l) => l.toFixed(2)).join(" ")} at end; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`);
    console.log(
      `docflow ${f1(dMed)} pages/s vs baseline ${f1(bMed)} pages/s: ratio ${ratio.toFixed(2)}x (target >= ${targetRatio}x): ${pass ? "PASS" : "FAIL"}${allOk ? "" : " (a run failed: see above)"}`,
    );
    console.log(`processor event loop under full load: worst p99 ${ms(worstP99)} ms, worst max ${ms(worstMax)} ms`);
    for (const p of procs) if (p.exited()) console.log(`processor ${p.index} exited: ${p.exited()}`);
    return values.strict && !pass ? 1 : 0;
  } finally {
    await c.run();
  }
}

runMain(main);
