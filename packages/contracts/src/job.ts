import { z } from "zod";
import { JobId, TenantId } from "./ids.ts";

export const JobStatus = z.enum(["uploading", "queued", "processing", "completed", "failed", "canceled"]);
export type JobStatus = z.infer<typeof JobStatus>;

/** Statuses after which nothing changes any more. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["completed", "failed", "canceled"]);

export const ContentType = z.enum(["application/pdf", "application/vnd.openxmlformats-officedocument.presentationml.presentation"]);
export type ContentType = z.infer<typeof ContentType>;
export const PDF: ContentType = "application/pdf";
export const PPTX: ContentType = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

export const JobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof JobError>;

/**
 * What inspection found out about the document (public, optional: absent until
 * the job was inspected). Page sizes are on each page's result; slide titles
 * and speaker notes are in `GET /v1/jobs/{id}/result` (`document.slides`).
 */
export const DocumentInfo = z.object({
  /** Title and author from the PDF's info dictionary or the PPTX's core properties. */
  title: z.string().max(1000).optional(),
  author: z.string().max(1000).optional(),
  /** The PDF version of the rendered PDF (for a PPTX: of its conversion). */
  pdfVersion: z.string().max(20).optional(),
  /** The PDF is encrypted but opens without a password (owner password only). */
  encrypted: z.boolean(),
  /** The PDF carries JavaScript. It is never run; reported so users know. */
  javascript: z.boolean(),
  /** Font objects in the PDF (`pdffonts`), and images drawn on its pages (`pdfimages -list`); absent when they could not be counted. */
  fontCount: z.number().int().nonnegative().optional(),
  imageCount: z.number().int().nonnegative().optional(),
  /** Slides shown (hidden slides are not rendered), for a PPTX. */
  slideCount: z.number().int().nonnegative().optional(),
});
export type DocumentInfo = z.infer<typeof DocumentInfo>;

/** One slide as read straight from a PPTX (`n` is its page in the rendered PDF). */
export const SlideInfo = z.object({ n: z.number().int().positive(), title: z.string(), notes: z.string() });
export type SlideInfo = z.infer<typeof SlideInfo>;

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
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  pageCount: z.number().int().nonnegative().nullable(),
  pagesDone: z.number().int().nonnegative(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  completedAt: z.iso.datetime().optional(),
  error: JobError.optional(),
  document: DocumentInfo.optional(),
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
  /**
   * How many of `ranges` (in order) were dispatched as render messages. Those
   * dispatched and not done are in flight; at most `DOCFLOW_RANGE_WINDOW` are.
   * Older records without it had every range dispatched at once.
   */
  rangesDispatched: z.number().int().nonnegative().optional(),
});
export type JobRecord = z.infer<typeof JobRecord>;

export function toPublicJob(record: JobRecord): Job {
  const { tenant: _t, sourceKey: _s, pdfKey: _p, ranges: _r, rangesDone: _d, rangesDispatched: _w, ...job } = record;
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

/** What inspect found, in full: the DocumentInfo plus a PPTX's slides. Stored as `documentKey`. */
export const DocumentDetails = DocumentInfo.extend({ slides: z.array(SlideInfo).optional() });
export type DocumentDetails = z.infer<typeof DocumentDetails>;

/** Object key of a job's DocumentDetails (under the job's prefix, so deleting the job removes it). */
export const documentKey = (tenant: TenantId, job: JobId) => `tenants/${tenant}/jobs/${job}/document.json`;
