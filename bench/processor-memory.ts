/**
 * Does a processor's memory stay bounded through a very long document (issue 5, benchmark 5)?
 * A real 2,000-page PDF through docflow (POST /v1/documents, then the Job's events until
 * `job.completed`) while one processor's RSS is sampled every 100 ms from /proc: the Node
 * process itself (VmRSS, and VmHWM reset when the upload starts, so nothing between two samples
 * is missed) and, separately, the sum over its child processes (pdftoppm, pdftotext, pdfinfo...).
 * Target: the processor's RSS, children included, < 1 GiB throughout.
 *
 *   node bench/processor-memory.ts [--pages 2000] [--concurrency 2] [--quick]
 *
 * Prints RSS before, peaks (process, children, both together in one sample), growth, RSS after,
 * V8 heap used / total and external memory (the processor's /metrics, every second), a timeline,
 * and pages/s.
 *
 * Flags:
 *   --pages N             pages of the real document (2000), Debian documentation PDFs concatenated
 *                         whole, cycling through them (see bench/lib/real-pdf.ts)
 *   --concurrency N       DOCFLOW_PROCESSOR_CONCURRENCY of the one processor (2)
 *   --interval-ms N       sampling interval (100)
 *   --target-mib N        PASS/FAIL threshold of the peak, children included (1024)
 *   --settle-seconds N    wait after the processor is ready before "before" is read (3)
 *   --quick               smoke run in < 1 min: --pages 150
 *   --processor-env K=V,...  extra processor environment (e.g. "NODE_OPTIONS=--max-old-space-size=256")
 *   --timeout-s N         cap on the job (1800)
 *   --strict              exit 1 on FAIL
 * Only 127.0.0.1 is contacted; everything is stopped on exit, error, Ctrl-C or SIGTERM.
 */
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { MiB, cleanups, f1, mib, parseEnvList, procStatus, resetPeakRss, scrape, startGateway, startServices, token, runMain } from "./lib/harness.ts";
import { cpuWithChildren, deleteJob, postFile, sampleTree, startProcessors, treeRss, watchEvents, type TreeSample } from "./lib/docflow.ts";
import { buildRealPdf, provenance } from "./lib/real-pdf.ts";
import { treeState } from "./lib/tree-state.ts";

const HEAP = ["nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes", "nodejs_external_memory_bytes"];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      pages: { type: "string" },
      concurrency: { type: "string", default: "2" },
      "interval-ms": { type: "string", default: "100" },
      "target-mib": { type: "string", default: "1024" },
      "settle-seconds": { type: "string", default: "3" },
      quick: { type: "boolean", default: false },
      "processor-env": { type: "string", default: "" },
      "timeout-s": { type: "string", default: "1800" },
      strict: { type: "boolean", default: false },
    },
  });
  const pages = Number(values.pages ?? (values.quick ? 150 : 2000));
  const concurrency = Number(values.concurrency);
  const intervalMs = Number(values["interval-ms"]);
  const target = Number(values["target-mib"]) * MiB;
  const c = cleanups();
  const load0 = loadavg();
  const t0 = performance.now();
  try {
    console.log(`processor-memory: one processor's RSS through a ${pages}-page real PDF (issue 5, benchmark 5)`);
    console.log(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? "?"}), Node ${process.version}, load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);
    console.log(await treeState());
    const doc = await buildRealPdf(pages, { perDoc: Infinity });
    console.log(provenance(doc));

    const services = await startServices(c);
    const gateway = await startGateway(c, services, { storage: "s3", tenants: 1, maxUploadBytes: 1024 * MiB, bucket: `bench-mem-${process.pid}`, extraEnv: {} });
    const [proc] = await startProcessors(c, services, gateway, { count: 1, concurrency, extraEnv: parseEnvList(values["processor-env"]) });
    const events = await watchEvents(c, services.nats.url, "bench-0");
    console.log(`gateway pid ${gateway.pid}, processor pid ${proc!.pid}, concurrency ${concurrency}`);
    await new Promise((r) => setTimeout(r, Number(values["settle-seconds"]) * 1000));

    const before = await treeRss(proc!.pid);
    const hwmReset = await resetPeakRss(proc!.pid);
    const heap: Array<{ s: number; used: number; total: number; external: number }> = [];
    const start = performance.now();
    const heapTimer = setInterval(() => {
      void scrape(proc!.metricsUrl.replace(/\/metrics$/, ""), HEAP).then(
        (m) =>
          heap.push({
            s: (performance.now() - start) / 1000,
            used: m.nodejs_heap_size_used_bytes ?? NaN,
            total: m.nodejs_heap_size_total_bytes ?? NaN,
            external: m.nodejs_external_memory_bytes ?? NaN,
          }),
        () => {},
      );
    }, 1000);
    const sampler = sampleTree(proc!.pid, intervalMs, start);
    const cpu0 = await cpuWithChildren(proc!.pid);

    const posted = await postFile(gateway.url, token(0), doc.path, `real-${pages}p.pdf`);
    if (posted.status !== 202 || !posted.job) throw new Error(`upload answered ${posted.status}: ${posted.body.slice(0, 300)}`);
    const done = await events.waitDone(posted.job.id, { baseUrl: gateway.url, token: token(0), timeoutMs: Number(values["timeout-s"]) * 1000 });
    const seconds = (done.at - posted.doneAt) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    const samples: TreeSample[] = await sampler.stop();
    clearInterval(heapTimer);
    const cpu = (await cpuWithChildren(proc!.pid)) - cpu0;
    const hwm = await procStatus(proc!.pid, "VmHWM");
    const after = await treeRss(proc!.pid);
    const ready = new Set(
      events
        .events(posted.job.id)
        .filter((e) => e.type === "page.ready")
        .map((e) => e.page),
    ).size;
    await deleteJob(gateway.url, token(0), posted.job.id);
    const load1 = loadavg();

    const peakSelf = Math.max(...samples.map((s) => s.self), hwmReset ? hwm : 0);
    const peakChildren = Math.max(...samples.map((s) => s.children));
    const peakBoth = Math.max(...samples.map((s) => s.self + s.children));
    const peakBothAt = samples.find((s) => s.self + s.children === peakBoth);
    const maxChildren = Math.max(...samples.map((s) => s.count));
    const pass = done.status === "completed" && ready === pages && Math.max(peakBoth, peakSelf) < target;

    console.log(
      `\njob ${done.status} (via ${done.via}); page.ready for ${ready}/${pages} pages; upload ${f1(posted.ms)} ms; upload done -> job.completed ${seconds.toFixed(1)} s = ${f1(pages / seconds)} pages/s; processor CPU (with its children) ${cpu.toFixed(1)} s`,
    );
    console.log(`${samples.length} samples every ${intervalMs} ms; VmHWM ${hwmReset ? "reset at the start" : "could not be reset (peak since start-up)"}`);
    console.log("\n| | before | peak | growth (peak - before) | after (1 s after completion) |");
    console.log("|---|---|---|---|---|");
    console.log(
      `| processor (Node) RSS | ${mib(before.self)} MiB | ${mib(peakSelf)} MiB (sampled ${mib(Math.max(...samples.map((s) => s.self)))}, VmHWM ${mib(hwm)}) | ${mib(peakSelf - before.self)} MiB | ${mib(after.self)} MiB |`,
    );
    console.log(`| child processes, sum | ${mib(before.children)} MiB | ${mib(peakChildren)} MiB (at most ${maxChildren} at once) | - | ${mib(after.children)} MiB |`);
    console.log(
      `| both, same sample | ${mib(before.self + before.children)} MiB | ${mib(peakBoth)} MiB at ${f1((peakBothAt?.t ?? NaN) / 1000)} s | ${mib(peakBoth - before.self - before.children)} MiB | ${mib(after.self + after.children)} MiB |`,
    );
    const hu = Math.max(...heap.map((h) => h.used));
    const ht = Math.max(...heap.map((h) => h.total));
    const ex = Math.max(...heap.map((h) => h.external));
    console.log(`V8 heap used max ${mib(hu)} MiB, heap total max ${mib(ht)} MiB, external max ${mib(ex)} MiB (${heap.length} scrapes)`);

    // Growth over the run: RSS in the first and last tenth of the processing (a leak shows as a rise).
    const inRun = samples.filter((s) => s.t >= posted.doneAt - start && s.t <= done.at - start);
    if (inRun.length >= 20) {
      const tenth = Math.max(1, Math.floor(inRun.length / 10));
      const avg = (xs: TreeSample[]) => xs.reduce((a, s) => a + s.self, 0) / xs.length;
      const mx = (xs: TreeSample[]) => Math.max(...xs.map((s) => s.self));
      console.log(
        `processor RSS in the first / last tenth of the processing: mean ${mib(avg(inRun.slice(0, tenth)))} / ${mib(avg(inRun.slice(-tenth)))} MiB, max ${mib(mx(inRun.slice(0, tenth)))} / ${mib(mx(inRun.slice(-tenth)))} MiB`,
      );
    }
    console.log("\ntimeline (s: processor RSS + children RSS (count), MiB):");
    const step = Math.max(1, Math.floor(samples.length / 20));
    const lines: string[] = [];
    for (let i = 0; i < samples.length; i += step) {
      const s = samples[i]!;
      lines.push(`${f1(s.t / 1000)}: ${mib(s.self)} + ${mib(s.children)} (${s.count})`);
    }
    console.log(`  ${lines.join(", ")}`);

    const load = `load average ${load0.map((l) => l.toFixed(2)).join(" ")} at start -> ${load1.map((l) => l.toFixed(2)).join(" ")} at end; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`;
    console.log(`\n${load}`);
    console.log(
      `processor peak RSS ${mib(peakSelf)} MiB alone, ${mib(peakBoth)} MiB with its children in one sample (target < ${mib(target)} MiB): ${pass ? "PASS" : "FAIL"}${done.status === "completed" && ready === pages ? "" : " (the job did not complete with every page)"}`,
    );
    if (proc!.exited()) console.log(`the processor exited: ${proc!.exited()}`);
    return values.strict && !pass ? 1 : 0;
  } finally {
    await c.run();
  }
}

runMain(main);
