import { z } from "zod";
import { JobId, TenantId } from "./ids.ts";
import { PageRange } from "./job.ts";

/**
 * Processing stages. Each has a RabbitMQ work queue `<namespace>.<stage>` and a
 * dead-letter queue `<namespace>.<stage>.dlq` (namespace `docflow` by default),
 * and its own consumer (prefetch) settings in the processor:
 * - `inspect`: read the document's facts (page count, sizes, metadata; for a
 *   PPTX its slides from the OOXML), enforce the limits, split into ranges and
 *   dispatch the first window of them. A PPTX without its PDF yet goes to `convert`.
 * - `convert`: PPTX -> PDF with LibreOffice (heavy: prefetch 1 by default), then `inspect` again.
 * - `render`: one page range: text, thumbnail, preview per page. The range
 *   that finishes releases the next one (windowed fan-out).
 * - `finish`: runs once the last range is marked: the job is completed.
 */
export const STAGES = ["inspect", "convert", "render", "finish"] as const;
export type Stage = (typeof STAGES)[number];

const base = { v: z.literal(1), jobId: JobId, tenant: TenantId };

/** Inspect a stored document (or its converted PDF): facts, limits, ranges, first window. */
export const InspectMessage = z.object({ ...base, stage: z.literal("inspect") });
export type InspectMessage = z.infer<typeof InspectMessage>;

/** Convert a job's PPTX source to PDF. */
export const ConvertMessage = z.object({ ...base, stage: z.literal("convert") });
export type ConvertMessage = z.infer<typeof ConvertMessage>;

/** Render and extract one page range of a job's PDF. */
export const RenderMessage = z.object({ ...base, stage: z.literal("render"), range: PageRange });
export type RenderMessage = z.infer<typeof RenderMessage>;

/** Complete a job whose ranges are all done (idempotent). */
export const FinishMessage = z.object({ ...base, stage: z.literal("finish") });
export type FinishMessage = z.infer<typeof FinishMessage>;

export const WorkMessage = z.discriminatedUnion("stage", [InspectMessage, ConvertMessage, RenderMessage, FinishMessage]);
export type WorkMessage = z.infer<typeof WorkMessage>;

/**
 * Headers on a work message that the processor sets itself. `attempts`: how
 * many times the message failed before this copy (a retry is a new message, so
 * RabbitMQ's own `x-delivery-count` starts again). On a dead letter, `error`
 * says why it was set aside (for operators; never shown to users as is).
 */
export const WORK_HEADERS = {
  attempts: "x-docflow-attempts",
  errorCode: "x-docflow-error-code",
  error: "x-docflow-error",
} as const;
