import { DocflowError, JOB_FAILURES, TERMINAL_STATUSES, isJobFailureCode, toPublicJob, type JobError, type JobFailureCode, type JobId, type TenantId } from "@docflow/contracts";
import { publishEvent } from "@docflow/infra";
import type { ProcessorContext } from "./context.ts";

/** An error that fails its job: one with a job-failure reason. */
export type JobFailure = DocflowError & { code: JobFailureCode };

/** A job-failure reason that is not `retryable` (a problem with the document): the job fails now, no retry. */
export function isPermanent(err: unknown): err is JobFailure {
  return err instanceof DocflowError && isJobFailureCode(err.code) && !JOB_FAILURES[err.code].retryable;
}

/** Words a user understands for a failure code, with the engine's detail when it helps. */
export function jobErrorOf(err: JobFailure): JobError {
  return { code: err.code, message: err.message };
}

/**
 * Marks a job failed (unless it already ended) and tells the browser. Safe to
 * call twice: the second call changes nothing and publishes nothing.
 */
export async function failJob(ctx: ProcessorContext, tenant: TenantId, jobId: JobId, error: JobError): Promise<void> {
  const code = isJobFailureCode(error.code) ? error.code : "processing_failed";
  const message = error.message || JOB_FAILURES[code].title;
  const updated = await ctx.jobs.update(tenant, jobId, (r) => (TERMINAL_STATUSES.has(r.status) ? null : { ...r, status: "failed", error: { code, message }, completedAt: new Date().toISOString() }));
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
