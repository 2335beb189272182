import { DocflowError, ERRORS, TERMINAL_STATUSES, isErrorCode, toPublicJob, type JobError, type JobId, type TenantId } from "@docflow/contracts";
import { publishEvent } from "@docflow/core";
import type { ProcessorContext } from "./context.ts";

/** A failure that belongs to the document: the job fails now, no retry. */
export function isPermanent(err: unknown): err is DocflowError {
  return err instanceof DocflowError && err.status === 422;
}

/** Words a user understands for a failure code, with the engine's detail when it helps. */
export function jobErrorOf(err: DocflowError): JobError {
  return { code: err.code, message: err.message };
}

/**
 * Marks a job failed (unless it already ended) and tells the browser. Safe to
 * call twice: the second call changes nothing and publishes nothing.
 */
export async function failJob(ctx: ProcessorContext, tenant: TenantId, jobId: JobId, error: JobError): Promise<void> {
  const code = isErrorCode(error.code) ? error.code : "processing_failed";
  const message = error.message || ERRORS[code].title;
  const updated = await ctx.jobs.update(tenant, jobId, (r) =>
    TERMINAL_STATUSES.has(r.status) ? null : { ...r, status: "failed", error: { code, message }, completedAt: new Date().toISOString() },
  );
  if (!updated?.changed) return;
  ctx.metrics.jobOutcomes.inc({ status: "failed" });
  ctx.log.info({ jobId, tenant, code }, "job failed");
  publishEvent(ctx.nats, tenant, {
    type: "job.failed",
    jobId,
    revision: updated.revision,
    at: new Date().toISOString(),
    job: toPublicJob(updated.record),
    error: { code, message },
  });
}
