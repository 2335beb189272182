import { toPublicJob, type FinishMessage } from "@docflow/contracts";
import { publishEvent } from "@docflow/infra";
import type { ProcessorContext } from "../context.ts";
import { allRangesDone } from "../dispatch.ts";

/**
 * Complete a job whose ranges are all marked done. Sent by the render that
 * marked the last range (and again by repairs), so it may arrive more than
 * once: the compare-and-set lets exactly one delivery complete the job and
 * publish `job.completed`; the others change nothing.
 */
export async function finish(ctx: ProcessorContext, message: FinishMessage): Promise<void> {
  const { tenant, jobId } = message;
  const updated = await ctx.jobs.update(tenant, jobId, (r) => (r.status === "processing" && allRangesDone(r) ? { ...r, status: "completed", completedAt: new Date().toISOString() } : null));
  if (!updated?.changed) {
    ctx.log.info({ jobId, status: updated?.record.status ?? "deleted" }, "finish: nothing to do");
    return;
  }
  const { record, revision } = updated;
  ctx.metrics.jobOutcomes.inc({ status: "completed" });
  ctx.log.info({ jobId, pageCount: record.pageCount }, "job completed");
  publishEvent(ctx.nats, tenant, { type: "job.completed", jobId, revision, at: new Date().toISOString(), job: toPublicJob(record) });
}
