import { z } from "zod";
import { JobId, TenantId } from "./ids.ts";

export const JobStatus = z.enum(["uploading", "queued", "processing", "completed", "failed", "canceled"]);
export type JobStatus = z.infer<typeof JobStatus>;

/** Statuses after which nothing changes any more. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["completed", "failed", "canceled"]);

export const ContentType = z.enum([
  "application/pdf",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
]);
export type ContentType = z.infer<typeof ContentType>;
export const PDF: ContentType = "application/pdf";
export const PPTX: ContentType = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

export const JobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof JobError>;

/** The Job as the public API shows it. */
export const Job = z.object({
  id: JobId,
  status: JobStatus,
  filename: z.string(),
  contentType: ContentType,
  size: z.number().int().nonnegative(),
  /**
   * SHA-256 of the source. Known at once for `POST /v1/documents` (hashed as it
   * streams); for resumable uploads it is filled in when processing starts, so
   * that finishing an upload never takes time proportional to its size.
   */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  pageCount: z.number().int().nonnegative().nullable(),
  pagesDone: z.number().int().nonnegative(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  completedAt: z.iso.datetime().optional(),
  error: JobError.optional(),
});
export type Job = z.infer<typeof Job>;

/** An inclusive, 1-based page range. */
export const PageRange = z.object({ first: z.number().int().positive(), last: z.number().int().positive() });
export type PageRange = z.infer<typeof PageRange>;

/**
 * The job record as stored in the JetStream KV bucket: the public Job plus the
 * bookkeeping that processors need. Never sent to clients as is.
 */
export const JobRecord = Job.extend({
  tenant: TenantId,
  /** Object key of the uploaded source. */
  sourceKey: z.string(),
  /** Object key of the PDF that pages are rendered from (the source, or the PPTX's conversion). */
  pdfKey: z.string().optional(),
  /** Ranges the document was split into, and the ones that are finished (by `first` page). */
  ranges: z.array(PageRange).default([]),
  rangesDone: z.array(z.number().int().positive()).default([]),
});
export type JobRecord = z.infer<typeof JobRecord>;

export function toPublicJob(record: JobRecord): Job {
  const { tenant: _t, sourceKey: _s, pdfKey: _p, ranges: _r, rangesDone: _d, ...job } = record;
  return job;
}

/** What one processed page holds (stored as `pages/<n>.json`). */
export const PageResult = z.object({
  n: z.number().int().positive(),
  width: z.number().nonnegative(),
  height: z.number().nonnegative(),
  text: z.string(),
});
export type PageResult = z.infer<typeof PageResult>;
