import type { JobRecord } from "@docflow/contracts";
import type { ProcessorContext } from "./context.ts";

/**
 * Re-dispatches work whose message was lost: a job still `queued` after
 * `DOCFLOW_REDISPATCH_AFTER_MS` (the broker never confirmed the gateway's
 * publish) or still `processing` without progress after
 * `DOCFLOW_STALLED_AFTER_MS` (render messages lost with a broker's data). Both
 * get their `inspect` message again, which is idempotent: it dispatches only
 * unfinished ranges. A compare-and-set "touch" elects one processor per job.
 */
export function startSweeper(ctx: ProcessorContext): () => void {
  let running = false;
  const staleSince = (record: JobRecord, now: number): number | null => {
    if (record.status === "queued") return now - ctx.config.DOCFLOW_REDISPATCH_AFTER_MS;
    if (record.status === "processing") return now - ctx.config.DOCFLOW_STALLED_AFTER_MS;
    return null;
  };
  const sweep = async () => {
    if (running) return;
    running = true;
    let open = 0;
    try {
      for await (const { record } of ctx.jobs.openJobs()) {
        open++;
        const cutoff = staleSince(record, Date.now());
        if (cutoff === null || Date.parse(record.updatedAt) > cutoff) continue;
        const touched = await ctx.jobs.update(record.tenant, record.id, (r) => (r.status === record.status && Date.parse(r.updatedAt) <= cutoff ? r : null));
        if (!touched?.changed) continue;
        await ctx.publisher.publish({ v: 1, stage: "inspect", tenant: record.tenant, jobId: record.id });
        ctx.metrics.jobsRedispatched.inc({ status: record.status });
        ctx.log.info({ jobId: record.id, status: record.status }, "re-dispatched a job whose work message was lost");
      }
      ctx.metrics.jobsOpen.set(open);
    } catch (err) {
      ctx.log.warn({ err }, "sweep failed");
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void sweep(), ctx.config.DOCFLOW_SWEEP_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
