import { z } from "zod";
import { JobId, TenantId } from "./ids.ts";
import { PageRange } from "./job.ts";

/**
 * Processing stages. Each has a RabbitMQ work queue `<namespace>.<stage>` and a
 * dead-letter queue `<namespace>.<stage>.dlq` (namespace `docflow` by default).
 */
export const STAGES = ["inspect", "render"] as const;
export type Stage = (typeof STAGES)[number];

const base = { v: z.literal(1), jobId: JobId, tenant: TenantId };

/** Inspect a stored document: convert a PPTX, count pages, fan out render ranges. */
export const InspectMessage = z.object({ ...base, stage: z.literal("inspect") });
export type InspectMessage = z.infer<typeof InspectMessage>;

/** Render and extract one page range of a job's PDF. */
export const RenderMessage = z.object({ ...base, stage: z.literal("render"), range: PageRange });
export type RenderMessage = z.infer<typeof RenderMessage>;

export const WorkMessage = z.discriminatedUnion("stage", [InspectMessage, RenderMessage]);
export type WorkMessage = z.infer<typeof WorkMessage>;
