import type { Job, JobStatus } from "@docflow/contracts";

/** Status names as people read them. */
export const STATUS_LABELS: Record<JobStatus, string> = {
  uploading: "Uploading",
  queued: "Waiting",
  processing: "Processing",
  completed: "Ready",
  failed: "Failed",
  canceled: "Canceled",
};

/**
 * Why a job failed, in words for the person who uploaded the file: what happened
 * and what they can do about it. Keyed by `job.error.code`.
 */
export const FAILURE_REASONS: Record<string, string> = {
  pdf_encrypted: "This PDF is protected by a password, so its pages cannot be read. Remove the password (for example by saving an unprotected copy) and upload it again.",
  pdf_invalid: "This file could not be read as a PDF. It may be damaged or only partly downloaded. Try saving or exporting it again, then upload the new copy.",
  pdf_no_pages: "This PDF has no pages, so there is nothing to show.",
  pptx_invalid: "This presentation could not be opened. It may be damaged, or saved in a format other than PowerPoint (.pptx). Try saving it again as .pptx.",
  conversion_failed: "This presentation could not be converted for display. Try opening and saving it again in PowerPoint, or export it as a PDF and upload that instead.",
  processing_timeout: "This document took too long to process and was stopped. Very large or complex files can do this: try splitting it into smaller files.",
  processing_failed: "Something went wrong on our side while processing this document, several times in a row, so it was set aside. Please try uploading it again later.",
};

/** A few words for the jobs list; the job view shows the full reason. */
export const SHORT_FAILURE_REASONS: Record<string, string> = {
  pdf_encrypted: "Protected by a password",
  pdf_invalid: "Not a readable PDF",
  pdf_no_pages: "The PDF has no pages",
  pptx_invalid: "Presentation could not be opened",
  conversion_failed: "Presentation could not be converted",
  processing_timeout: "Took too long to process",
  processing_failed: "Processing error",
};

export function shortFailureReason(job: Pick<Job, "error">): string {
  const code = job.error?.code;
  return (code && SHORT_FAILURE_REASONS[code]) || "Could not be processed";
}

/** The failure reason of a failed job, for people. */
export function failureReason(job: Pick<Job, "error">): string {
  const code = job.error?.code;
  if (code && FAILURE_REASONS[code]) return FAILURE_REASONS[code];
  return job.error?.message || "Processing failed for a reason the app does not know.";
}

export function isPptx(job: Pick<Job, "contentType" | "filename">): boolean {
  return job.contentType.includes("presentation") || /\.pptx$/i.test(job.filename);
}
