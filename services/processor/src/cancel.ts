import { TERMINAL_STATUSES, type JobId, type TenantId } from "@docflow/contracts";
import type { ProcessorContext } from "./context.ts";

/** Why a task was stopped: its job was canceled, deleted, or ended elsewhere (e.g. another range failed it). */
export class JobEnded extends Error {
  override readonly name = "JobEnded";
  /** True when the job record is gone or `canceled`: the task's outputs must go too. */
  readonly removed: boolean;
  constructor(jobId: JobId, status: string) {
    super(`job ${jobId} is ${status}; task stopped`);
    this.removed = status === "deleted" || status === "canceled";
  }
}

/**
 * Watches a job while one of its tasks runs: every `DOCFLOW_CANCEL_CHECK_MS`
 * it reads the record (one KV get) and aborts `controller` with `JobEnded`
 * once the job is canceled, deleted or otherwise finished, which kills the
 * task's child processes. Polling, not a KV watch: it needs no consumer per
 * task on the server and cannot miss a change across a reconnect.
 */
export function watchJob(ctx: ProcessorContext, tenant: TenantId, jobId: JobId, controller: AbortController): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const check = async () => {
    try {
      const current = await ctx.jobs.get(tenant, jobId);
      if (stopped) return;
      const status = current?.record.status ?? "deleted";
      if (status === "deleted" || TERMINAL_STATUSES.has(current!.record.status)) {
        controller.abort(new JobEnded(jobId, status));
        return;
      }
    } catch {
      // NATS briefly unavailable: keep working, look again next time.
    }
    if (!stopped) timer = setTimeout(() => void check(), ctx.config.DOCFLOW_CANCEL_CHECK_MS);
  };
  timer = setTimeout(() => void check(), ctx.config.DOCFLOW_CANCEL_CHECK_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
