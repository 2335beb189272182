import { join } from "node:path";
import { createReadStream } from "node:fs";
import { PDF, TERMINAL_STATUSES, objectKeys, toPublicJob, type InspectMessage, type JobRecord } from "@docflow/contracts";
import { publishEvent } from "@docflow/core";
import type { ProcessorContext } from "../context.ts";
import { convertPptxToPdf, inspectPdf } from "../engines/index.ts";
import { downloadHashed, withWorkdir } from "../workdir.ts";
import { splitRanges } from "./split.ts";

/**
 * Inspect a stored document: convert a PPTX to PDF, count the pages, record
 * the page ranges, then fan them out as render messages. Safe to redeliver:
 * a job that already has its ranges only gets its unfinished ranges again.
 */
export async function inspect(ctx: ProcessorContext, message: InspectMessage, signal: AbortSignal): Promise<void> {
  const { tenant, jobId } = message;
  const current = await ctx.jobs.get(tenant, jobId);
  if (!current || TERMINAL_STATUSES.has(current.record.status)) {
    ctx.log.info({ jobId, status: current?.record.status ?? "deleted" }, "inspect skipped: job gone or finished");
    return;
  }
  let record = current.record;
  if (record.ranges.length === 0) {
    const timeoutMs = ctx.config.DOCFLOW_TASK_TIMEOUT_MS;
    const found = await withWorkdir(ctx.config.DOCFLOW_WORK_DIR, async (dir) => {
      const source = join(dir, record.contentType === PDF ? "source.pdf" : "source.pptx");
      const sha256 = await downloadHashed(ctx.store, record.sourceKey, source);
      if (record.sha256 === null) {
        // Resumable uploads are hashed here, not in the gateway's final request; recorded
        // before the engines run, so a document that fails still has its hash.
        await ctx.jobs.update(tenant, jobId, (r) => (r.sha256 === null ? { ...r, sha256 } : null));
      }
      signal.throwIfAborted();
      let pdfPath = source;
      let pdfKey = record.sourceKey;
      if (record.contentType !== PDF) {
        pdfPath = await convertPptxToPdf(source, dir, { timeoutMs, profileDir: join(dir, "lo-profile"), signal });
        pdfKey = objectKeys.convertedPdf(tenant, jobId);
        await ctx.store.put(pdfKey, createReadStream(pdfPath), { contentType: PDF });
      }
      const info = await inspectPdf(pdfPath, { timeoutMs, signal });
      return { pdfKey, pageCount: info.pageCount };
    });
    const ranges = splitRanges(found.pageCount, ctx.config.DOCFLOW_FIRST_RANGE_SIZE, ctx.config.DOCFLOW_RANGE_SIZE);
    const updated = await ctx.jobs.update(tenant, jobId, (r): JobRecord | null =>
      TERMINAL_STATUSES.has(r.status) || r.ranges.length > 0
        ? null
        : { ...r, status: "processing", pdfKey: found.pdfKey, pageCount: found.pageCount, ranges, rangesDone: [], pagesDone: 0 },
    );
    if (!updated) return;
    record = updated.record;
    if (updated.changed) {
      publishEvent(ctx.nats, tenant, {
        type: "job.started",
        jobId,
        revision: updated.revision,
        at: new Date().toISOString(),
        job: toPublicJob(record),
        pageCount: record.pageCount,
      });
    }
  }
  const done = new Set(record.rangesDone);
  for (const range of record.ranges) {
    if (done.has(range.first)) continue;
    await ctx.publisher.publish({ v: 1, stage: "render", tenant, jobId, range });
  }
  ctx.log.info({ jobId, pageCount: record.pageCount, ranges: record.ranges.length }, "inspected; ranges dispatched");
}
