import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { parseEnv, sharedEnv } from "@docflow/infra";
import { STAGES, type Stage } from "@docflow/contracts";

/** Everything the processor reads from its environment, parsed once at start-up. */
export const processorEnv = {
  ...sharedEnv,
  /** Tasks run at once by this process (and the RabbitMQ prefetch of each consumer). Default: CPU count. */
  DOCFLOW_PROCESSOR_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(availableParallelism()),
  /**
   * The stages this processor consumes, comma-separated (default: all). A ProcessorPool sets it
   * (the operator), so that pools can split the work, e.g. conversions apart from renders. The
   * render stage includes its express lane. Dead letters are consumed by every processor.
   */
  DOCFLOW_PROCESSOR_STAGES: z
    .string()
    .default(STAGES.join(","))
    .transform((value, ctx): Stage[] => {
      const names = [
        ...new Set(
          value
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
        ),
      ];
      const unknown = names.filter((n) => !(STAGES as readonly string[]).includes(n));
      if (names.length === 0 || unknown.length > 0) {
        ctx.addIssue({ code: "custom", message: `expected a comma-separated list of ${STAGES.join(", ")}${unknown.length ? `; unknown: ${unknown.join(", ")}` : ""}` });
        return z.NEVER;
      }
      return STAGES.filter((stage) => names.includes(stage));
    }),
  /** Port of the probe and metrics server (`/healthz`, `/readyz`, `/metrics`); 0 picks a free one. */
  DOCFLOW_PROCESSOR_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  DOCFLOW_PROCESSOR_HOST: z.string().default("0.0.0.0"),
  /** Longest a single task (inspect or one page range) may run; its child processes are killed after it. Must stay below RabbitMQ's consumer timeout. */
  DOCFLOW_TASK_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  /** Pages per render message. */
  DOCFLOW_RANGE_SIZE: z.coerce.number().int().min(1).max(1000).default(8),
  /** Pages in the first range, kept small so page 1 shows at once. */
  DOCFLOW_FIRST_RANGE_SIZE: z.coerce.number().int().min(1).max(1000).default(1),
  /**
   * Ranges of one job in flight at once (dispatched, not yet done). A finished
   * range releases the next, so a 2,000-page document keeps at most this many
   * render messages queued and a small job of another tenant is not stuck behind it.
   */
  DOCFLOW_RANGE_WINDOW: z.coerce.number().int().min(1).max(1000).default(4),
  /** Prefetch (tasks at once per process) of the `inspect` queue. Default: DOCFLOW_PROCESSOR_CONCURRENCY. */
  DOCFLOW_INSPECT_PREFETCH: z.coerce.number().int().min(1).max(64).optional(),
  /** Prefetch of the `convert` queue (LibreOffice; each conversion uses about a core and 0.5-1 GB). */
  DOCFLOW_CONVERT_PREFETCH: z.coerce.number().int().min(1).max(16).default(1),
  /** Prefetch of the `render` queue. Default: DOCFLOW_PROCESSOR_CONCURRENCY. */
  DOCFLOW_RENDER_PREFETCH: z.coerce.number().int().min(1).max(64).optional(),
  /**
   * Prefetch of the render stage's express lane (`<namespace>.render.express`: every job's
   * first range and every range of a job of at most DOCFLOW_EXPRESS_MAX_PAGES pages). These
   * tasks run on top of the render prefetch, so a small job never waits for a slot held by a
   * long document. Default: half of DOCFLOW_PROCESSOR_CONCURRENCY, at least 1.
   */
  DOCFLOW_EXPRESS_PREFETCH: z.coerce.number().int().min(1).max(64).optional(),
  /** Jobs with at most this many pages render all their ranges in the express lane (0: only first ranges do). */
  DOCFLOW_EXPRESS_MAX_PAGES: z.coerce.number().int().min(0).max(1000).default(16),
  /**
   * Bytes of documents this processor keeps in its work dir between the ranges of a job
   * (downloaded once per job, not once per range); unused ones beyond it go, least recently used first.
   */
  DOCFLOW_SOURCE_CACHE_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(512 * 1024 * 1024),
  /** A cached document no range used for this long is removed. */
  DOCFLOW_SOURCE_CACHE_IDLE_MS: z.coerce.number().int().min(1000).default(120_000),
  /** Prefetch of the `finish` queue (cheap bookkeeping). */
  DOCFLOW_FINISH_PREFETCH: z.coerce.number().int().min(1).max(64).default(8),
  /** Back-off before the first retry of a task that failed for a transient reason; doubled for each further attempt. */
  DOCFLOW_RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(2_000),
  /** Upper bound of the back-off. */
  DOCFLOW_RETRY_MAX_MS: z.coerce.number().int().min(10).max(3_600_000).default(60_000),
  /** How often a running task checks that its job still exists and is not canceled (then it stops). */
  DOCFLOW_CANCEL_CHECK_MS: z.coerce.number().int().min(50).max(60_000).default(500),
  /** Documents with more pages fail with `document_too_many_pages`. */
  DOCFLOW_MAX_PAGES: z.coerce.number().int().min(1).max(1_000_000).default(5_000),
  /** Pixels of the largest image rendered for one page (the 150 DPI preview); larger pages fail with `page_too_large`. */
  DOCFLOW_MAX_RENDER_PIXELS: z.coerce.number().int().min(1).max(2_000_000_000).default(50_000_000),
  /**
   * Address space of each poppler child (pdfinfo, pdftotext, pdftoppm), set with `ulimit -v`.
   * A page that needs more fails with `page_too_large` instead of taking the pod's memory.
   * A 150 DPI render of the largest page DOCFLOW_MAX_RENDER_PIXELS allows needs about 3 bytes per pixel plus ~300 MB.
   */
  DOCFLOW_ENGINE_MAX_MEMORY_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024 * 1024)
    .default(2 * 1024 * 1024 * 1024),
  /** Sum of the uncompressed sizes of a PPTX's ZIP entries; beyond it: `pptx_too_large` (zip bombs). */
  DOCFLOW_PPTX_MAX_UNCOMPRESSED_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(512 * 1024 * 1024),
  /** ZIP entries in a PPTX; beyond it: `pptx_too_large`. */
  DOCFLOW_PPTX_MAX_ENTRIES: z.coerce.number().int().min(1).default(10_000),
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
  DOCFLOW_STALLED_AFTER_MS: z.coerce
    .number()
    .int()
    .positive()
    .default(15 * 60_000),
  /** On SIGTERM, in-flight tasks get this long before they are abandoned (and redelivered elsewhere). */
  DOCFLOW_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(150_000),
};

export type ProcessorConfig = ReturnType<typeof loadConfig>;

/**
 * Back-off before retry k (k = 1 .. deliveryLimit - 1): base x 2^(k-1), capped.
 * One retry queue exists per distinct delay.
 */
export function retryDelays(config: { DOCFLOW_DELIVERY_LIMIT: number; DOCFLOW_RETRY_BASE_MS: number; DOCFLOW_RETRY_MAX_MS: number }): number[] {
  return Array.from({ length: config.DOCFLOW_DELIVERY_LIMIT - 1 }, (_, i) => Math.min(config.DOCFLOW_RETRY_MAX_MS, config.DOCFLOW_RETRY_BASE_MS * 2 ** i));
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = parseEnv(processorEnv, env);
  const config = {
    ...parsed,
    DOCFLOW_INSPECT_PREFETCH: parsed.DOCFLOW_INSPECT_PREFETCH ?? parsed.DOCFLOW_PROCESSOR_CONCURRENCY,
    DOCFLOW_RENDER_PREFETCH: parsed.DOCFLOW_RENDER_PREFETCH ?? parsed.DOCFLOW_PROCESSOR_CONCURRENCY,
    DOCFLOW_EXPRESS_PREFETCH: parsed.DOCFLOW_EXPRESS_PREFETCH ?? Math.max(1, Math.floor(parsed.DOCFLOW_PROCESSOR_CONCURRENCY / 2)),
  };
  const backoff = retryDelays(config).reduce((a, b) => a + b, 0);
  if (config.DOCFLOW_STALLED_AFTER_MS <= config.DOCFLOW_TASK_TIMEOUT_MS * config.DOCFLOW_DELIVERY_LIMIT + backoff) {
    throw new Error(
      "invalid configuration:\n  DOCFLOW_STALLED_AFTER_MS must exceed DOCFLOW_TASK_TIMEOUT_MS x DOCFLOW_DELIVERY_LIMIT plus the retry back-offs (DOCFLOW_RETRY_BASE_MS, DOCFLOW_RETRY_MAX_MS), or healthy work is dispatched twice",
    );
  }
  if (config.DOCFLOW_RETRY_MAX_MS < config.DOCFLOW_RETRY_BASE_MS) throw new Error("invalid configuration:\n  DOCFLOW_RETRY_MAX_MS must be at least DOCFLOW_RETRY_BASE_MS");
  return config;
}
