import { TERMINAL_STATUSES, objectKeys, type JobRecord, type PageRange, type PageResult, type RenderMessage } from "@docflow/contracts";
import { publishEvent } from "@docflow/infra";
import { withSpan } from "@docflow/telemetry";
import type { ProcessorContext, TaskInfo } from "../context.ts";
import { advanceWindow, allRangesDone, publishRanges, resumeDispatch } from "../dispatch.ts";
import { PREVIEW_DPI, THUMBNAIL_WIDTH_PX, extractText, pageSizes, renderPageImages, type PageImages, type PdfPageSize } from "../engines/index.ts";

/**
 * Render and extract one page range: text, a thumbnail and a preview per page,
 * written to the object store; then the range is marked done with
 * compare-and-set, so a redelivered or duplicated message never counts twice.
 * The same update releases the next range(s) of the job's window, and the
 * update that marks the last range sends `finish`.
 */
export async function render(ctx: ProcessorContext, message: RenderMessage, signal: AbortSignal, task: TaskInfo = { repeated: false }): Promise<void> {
  const { tenant, jobId, range } = message;
  const current = await ctx.jobs.get(tenant, jobId);
  if (!current || TERMINAL_STATUSES.has(current.record.status)) {
    await ctx.sources.evictJob(objectKeys.jobPrefix(tenant, jobId));
    return;
  }
  if (current.record.rangesDone.includes(range.first)) {
    // A duplicate: nothing to do. A redelivery or retry may mean the attempt that
    // marked this range died or failed before publishing what the mark released
    // (next ranges, or `finish`): repair that. (Not on plain duplicates: repairing
    // on every copy would multiply messages.)
    if (task.repeated) await resumeDispatch(ctx, tenant, jobId);
    return;
  }
  const pdfKey = current.record.pdfKey;
  if (!pdfKey) throw new Error(`job ${jobId} has ranges but no pdfKey`);
  const written = await storeRange(ctx, message, pdfKey, signal);
  await markRangeDone(ctx, message, written);
}

/**
 * Renders the range's pages and stores each page's JSON, thumbnail and
 * preview; returns the keys written. Fails unless every page of the range was
 * stored.
 */
async function storeRange(ctx: ProcessorContext, message: RenderMessage, pdfKey: string, signal: AbortSignal): Promise<string[]> {
  const { jobId, range } = message;
  const written: string[] = [];
  // The document comes from this processor's cache: downloaded by the job's first range here, not by every range.
  await ctx.sources.use(pdfKey, async (pdf) => {
    signal.throwIfAborted();
    const call = { timeoutMs: ctx.config.DOCFLOW_TASK_TIMEOUT_MS, signal, maxMemoryBytes: ctx.config.DOCFLOW_ENGINE_MAX_MEMORY_BYTES };
    // Text and sizes are small and quick: they come alongside the images, which are stored page by
    // page as they are encoded (nothing of the range is held in memory or on disk).
    const textsAndSizes = Promise.all([extractText(pdf, range.first, range.last, call), pageSizes(pdf, range.first, range.last, call)]);
    textsAndSizes.catch(() => {}); // awaited below; a failure must not go unhandled while the images are rendered
    let delivered: number;
    try {
      delivered = await renderPageImages(pdf, range.first, range.last, { ...call, dpi: PREVIEW_DPI, thumbnailWidthPx: THUMBNAIL_WIDTH_PX }, async ({ page: n, preview, thumbnail }) => {
        const [texts, sizes] = await textsAndSizes;
        signal.throwIfAborted();
        const page = pageResult(n, texts[n - range.first] ?? "", sizes);
        written.push(...(await storePage(ctx, message, page, { preview, thumbnail })));
      });
    } finally {
      await textsAndSizes.catch(() => {}); // no child of this range is still running when we return
    }
    signal.throwIfAborted();
    // Pages come in order from the first: the ones missing are the last ones.
    const missing = rangePages(range).slice(delivered);
    if (missing.length > 0) throw new Error(`pages ${missing.join(", ")} of job ${jobId} were not rendered`);
  });
  return written;
}

/** A page's JSON: its text, and its width and height as the page is shown (rotation applied), in PDF points (0 when unknown). */
export function pageResult(n: number, text: string, sizes: readonly PdfPageSize[]): PageResult {
  const size = sizes.find((p) => p.page === n);
  const turned = size?.rotation === 90 || size?.rotation === 270;
  return { n, width: (turned ? size?.height : size?.width) ?? 0, height: (turned ? size?.width : size?.height) ?? 0, text };
}

/** Writes one page's JSON, thumbnail and preview (every write settles before this does); returns their keys. */
async function storePage(ctx: ProcessorContext, message: RenderMessage, page: PageResult, images: PageImages): Promise<readonly string[]> {
  const { tenant, jobId } = message;
  const keys = [objectKeys.pageJson(tenant, jobId, page.n), objectKeys.pageThumbnail(tenant, jobId, page.n), objectKeys.pagePreview(tenant, jobId, page.n)] as const;
  await withSpan(`page ${page.n}`, { attributes: { "docflow.job.id": jobId, "docflow.page": page.n } }, () =>
    settleAll([
      ctx.store.put(keys[0], Buffer.from(JSON.stringify(page)), { contentType: "application/json" }),
      ctx.store.put(keys[1], images.thumbnail, { contentType: "image/webp" }),
      ctx.store.put(keys[2], images.preview, { contentType: "image/png" }),
    ]),
  );
  return keys;
}

/**
 * Marks the range done (compare-and-set), releasing the next range(s) of the
 * window; then announces its pages and publishes what the mark released, or
 * `finish` after the last range. Removes what was `written` when the job was
 * deleted or canceled meanwhile.
 */
async function markRangeDone(ctx: ProcessorContext, message: RenderMessage, written: readonly string[]): Promise<void> {
  const { tenant, jobId, range } = message;
  const pages = rangePages(range);
  const window = ctx.config.DOCFLOW_RANGE_WINDOW;
  let released: { from: number; to: number } = { from: 0, to: 0 };
  const updated = await ctx.jobs.update(tenant, jobId, (r): JobRecord | null => {
    if (TERMINAL_STATUSES.has(r.status) || r.rangesDone.includes(range.first)) return null;
    const next: JobRecord = { ...r, rangesDone: [...r.rangesDone, range.first], pagesDone: r.pagesDone + pages.length };
    // The finished range frees a place in the window: the next range(s) go out.
    const from = r.rangesDispatched ?? r.ranges.length;
    next.rangesDispatched = advanceWindow(next, window);
    released = { from, to: next.rangesDispatched };
    return next;
  });
  if (!updated || updated.record.status === "canceled") {
    // The job was deleted while we worked: leave nothing of ours behind.
    await Promise.all(written.map((k) => ctx.store.delete(k).catch(() => {})));
    return;
  }
  if (!updated.changed) return;
  ctx.metrics.pages.inc(pages.length);
  const at = new Date().toISOString();
  const { record, revision } = updated;
  for (const n of pages) publishEvent(ctx.nats, tenant, { type: "page.ready", jobId, revision, at, page: n, pagesDone: record.pagesDone, pageCount: record.pageCount });
  publishEvent(ctx.nats, tenant, { type: "job.progress", jobId, revision, at, pagesDone: record.pagesDone, pageCount: record.pageCount });
  const done = new Set(record.rangesDone);
  await publishRanges(
    ctx,
    record,
    record.ranges.slice(released.from, released.to).filter((r) => !done.has(r.first)),
  );
  if (allRangesDone(record)) {
    await ctx.sources.evictJob(objectKeys.jobPrefix(tenant, jobId));
    await ctx.publisher.publish({ v: 1, stage: "finish", tenant, jobId });
  }
}

/** The page numbers of a range. */
function rangePages(range: PageRange): number[] {
  const pages: number[] = [];
  for (let n = range.first; n <= range.last; n++) pages.push(n);
  return pages;
}

/** Like Promise.all, but settles only when every promise has: no write is still landing when we return (or clean up). */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}
