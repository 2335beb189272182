import { TERMINAL_STATUSES, type JobId, type JobRecord, type PageRange, type TenantId } from "@docflow/contracts";
import type { ProcessorContext } from "./context.ts";

/**
 * Windowed fan-out. `ranges` are dispatched in order; `rangesDispatched` counts
 * how many were. In flight = dispatched and not done; at most `window` are.
 * Returns the new `rangesDispatched` (unchanged when the window is full).
 * Pure, so it can run inside a compare-and-set: two processors finishing
 * ranges at once each release their own next range, never the same one twice.
 */
export function advanceWindow(record: JobRecord, window: number): number {
  const done = new Set(record.rangesDone);
  const dispatched = Math.min(record.rangesDispatched ?? record.ranges.length, record.ranges.length);
  let inFlight = record.ranges.slice(0, dispatched).filter((r) => !done.has(r.first)).length;
  let next = dispatched;
  while (next < record.ranges.length && inFlight < window) {
    if (!done.has(record.ranges[next]!.first)) inFlight++;
    next++;
  }
  return next;
}

/** Ranges dispatched (index < `dispatched`) and not done. */
export function inFlightRanges(record: JobRecord, dispatched = record.rangesDispatched ?? record.ranges.length): PageRange[] {
  const done = new Set(record.rangesDone);
  return record.ranges.slice(0, dispatched).filter((r) => !done.has(r.first));
}

export const allRangesDone = (record: JobRecord): boolean => record.ranges.length > 0 && record.rangesDone.length >= record.ranges.length;

/**
 * Whether `range` of the job goes to the render stage's express lane: its first
 * range (page 1 shows at once, whatever else is queued) and every range of a
 * job of at most `maxPages` pages (a small job is done in a few seconds even
 * while long documents fill the render queue). Pure: the same range always
 * takes the same lane, on every processor and every repair.
 */
export function isExpress(record: Pick<JobRecord, "pageCount" | "ranges">, range: PageRange, maxPages: number): boolean {
  return range.first === record.ranges[0]?.first || (record.pageCount !== null && record.pageCount <= maxPages);
}

/** Publishes render messages for `ranges` of the job, each to its lane (a duplicate is harmless: a done range is skipped). */
export async function publishRanges(ctx: ProcessorContext, record: JobRecord, ranges: readonly PageRange[]): Promise<void> {
  const { tenant, id: jobId } = record;
  for (const range of ranges) {
    await ctx.publisher.publish({ v: 1, stage: "render", tenant, jobId, range }, { express: isExpress(record, range, ctx.config.DOCFLOW_EXPRESS_MAX_PAGES) });
  }
}

/**
 * Repairs a split job's dispatch: fills the window (compare-and-set), then
 * publishes every range in flight again, or `finish` when all are done. Used
 * where a dispatch may have been lost: the sweeper's re-dispatch (through
 * `inspect`) and the redelivery of a range that was already marked done (the
 * processor died between marking it and publishing what it released).
 */
export async function resumeDispatch(ctx: ProcessorContext, tenant: TenantId, jobId: JobId): Promise<void> {
  const updated = await ctx.jobs.update(tenant, jobId, (r) => {
    if (TERMINAL_STATUSES.has(r.status) || r.ranges.length === 0) return null;
    const next = advanceWindow(r, ctx.config.DOCFLOW_RANGE_WINDOW);
    return next === (r.rangesDispatched ?? r.ranges.length) ? null : { ...r, rangesDispatched: next };
  });
  if (!updated || TERMINAL_STATUSES.has(updated.record.status) || updated.record.ranges.length === 0) return;
  if (allRangesDone(updated.record)) {
    await ctx.publisher.publish({ v: 1, stage: "finish", tenant, jobId });
    return;
  }
  const ranges = inFlightRanges(updated.record);
  await publishRanges(ctx, updated.record, ranges);
  ctx.log.info({ jobId, ranges: ranges.length }, "dispatch resumed: ranges in flight published again");
}
