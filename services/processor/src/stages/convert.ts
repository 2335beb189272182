import { createReadStream } from "node:fs";
import { join } from "node:path";
import { PDF, TERMINAL_STATUSES, objectKeys, type ConvertMessage } from "@docflow/contracts";
import type { ProcessorContext } from "../context.ts";
import { convertPptxToPdf } from "../engines/index.ts";
import { isPermanent } from "../job-events.ts";
import { download, withWorkdir } from "../workdir.ts";

/**
 * Convert a job's PPTX to PDF with LibreOffice (its own queue: heavy, prefetch
 * 1 by default), store the PDF, then hand the job back to `inspect`, which
 * inspects the PDF and fans out its ranges. Safe to redeliver: a job that has
 * its PDF only gets its `inspect` message again.
 */
export async function convert(ctx: ProcessorContext, message: ConvertMessage, signal: AbortSignal): Promise<void> {
  const { tenant, jobId } = message;
  const current = await ctx.jobs.get(tenant, jobId);
  if (!current || TERMINAL_STATUSES.has(current.record.status)) return;
  const record = current.record;
  if (record.pdfKey === undefined) {
    const pdfKey = objectKeys.convertedPdf(tenant, jobId);
    await withWorkdir(ctx.config.DOCFLOW_WORK_DIR, async (dir) => {
      const source = await download(ctx.store, record.sourceKey, join(dir, "source.pptx"));
      signal.throwIfAborted();
      const pdf = await ctx.office.run(
        (profileDir) => convertPptxToPdf(source, dir, { timeoutMs: ctx.config.DOCFLOW_TASK_TIMEOUT_MS, profileDir, signal }),
        // A document's own failure leaves the profile sound; a crash, kill or timeout may not.
        (error) => isPermanent(error) && error.code !== "processing_timeout",
      );
      signal.throwIfAborted();
      await ctx.store.put(pdfKey, createReadStream(pdf), { contentType: PDF });
    });
    const updated = await ctx.jobs.update(tenant, jobId, (r) => (TERMINAL_STATUSES.has(r.status) || r.pdfKey !== undefined ? null : { ...r, pdfKey }));
    if (!updated || updated.record.status === "canceled") {
      await ctx.store.delete(pdfKey).catch(() => {});
      return;
    }
    if (TERMINAL_STATUSES.has(updated.record.status)) return;
    ctx.log.info({ jobId }, "presentation converted to PDF");
  }
  await ctx.publisher.publish({ v: 1, stage: "inspect", tenant, jobId });
}
