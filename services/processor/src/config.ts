import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { parseEnv, sharedEnv } from "@docflow/core";

/** Everything the processor reads from its environment, parsed once at start-up. */
export const processorEnv = {
  ...sharedEnv,
  /** Tasks run at once by this process (and the RabbitMQ prefetch of each consumer). Default: CPU count. */
  DOCFLOW_PROCESSOR_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(availableParallelism()),
  /** Port of the probe and metrics server (`/healthz`, `/readyz`, `/metrics`); 0 picks a free one. */
  DOCFLOW_PROCESSOR_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  DOCFLOW_PROCESSOR_HOST: z.string().default("0.0.0.0"),
  /** Longest a single task (inspect or one page range) may run; its child processes are killed after it. Must stay below RabbitMQ's consumer timeout. */
  DOCFLOW_TASK_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  /** Pages per render message. */
  DOCFLOW_RANGE_SIZE: z.coerce.number().int().min(1).max(1000).default(8),
  /** Pages in the first range, kept small so page 1 shows at once. */
  DOCFLOW_FIRST_RANGE_SIZE: z.coerce.number().int().min(1).max(1000).default(1),
  /** Scratch space for downloads and renders (an emptyDir in Kubernetes). */
  DOCFLOW_WORK_DIR: z.string().default(join(tmpdir(), "docflow-processor")),
  /** How often queued jobs are checked for a lost dispatch. */
  DOCFLOW_SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(30_000),
  /** A job still queued this long after its last change gets its inspect message again. */
  DOCFLOW_REDISPATCH_AFTER_MS: z.coerce.number().int().positive().default(60_000),
  /**
   * A job still processing this long after its last progress gets its
   * unfinished ranges dispatched again (their messages were lost, e.g. with a
   * broker's data). Must exceed the task timeout times the delivery limit.
   */
  DOCFLOW_STALLED_AFTER_MS: z.coerce.number().int().positive().default(15 * 60_000),
  /** On SIGTERM, in-flight tasks get this long before they are abandoned (and redelivered elsewhere). */
  DOCFLOW_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(150_000),
};

export type ProcessorConfig = ReturnType<typeof loadConfig>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = parseEnv(processorEnv, env);
  if (config.DOCFLOW_STALLED_AFTER_MS <= config.DOCFLOW_TASK_TIMEOUT_MS * config.DOCFLOW_DELIVERY_LIMIT) {
    throw new Error("invalid configuration:\n  DOCFLOW_STALLED_AFTER_MS must exceed DOCFLOW_TASK_TIMEOUT_MS x DOCFLOW_DELIVERY_LIMIT, or healthy work is dispatched twice");
  }
  return config;
}
