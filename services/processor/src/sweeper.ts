import { TERMINAL_STATUSES } from "@docflow/contracts";
import type { ProcessorContext } from "./context.ts";

/**
 * Re-dispatches jobs whose inspect message was lost (the gateway stored the
 * job but the broker never confirmed the publish). The compare-and-set
 * "touch" elects one processor per job, so several sweepers publish once.
 */
export function startSweeper(ctx: ProcessorContext): () => void {
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const cutoff = Date.now() - ctx.config.DOCFLOW_REDISPATCH_AFTER_MS;
      for await (const { record } of ctx.jobs.scan()) {
        if (record.status !== "queued" || TERMINAL_STATUSES.has(record.status) || Date.parse(record.updatedAt) > cutoff) continue;
        const touched = await ctx.jobs.update(record.tenant, record.id, (r) => (r.status === "queued" && Date.parse(r.updatedAt) <= cutoff ? r : null));
        if (!touched?.changed) continue;
        await ctx.publisher.publish({ v: 1, stage: "inspect", tenant: record.tenant, jobId: record.id });
        ctx.log.info({ jobId: record.id }, "re-dispatched a queued job");
      }
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
