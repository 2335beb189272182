/*
 * docflow's two catalogs of public error codes. A code is stable once published: clients, job
 * records and events hold it, so it is never renamed or reused, and no code is in both catalogs.
 * Each entry has a title written for a person.
 * - `ERRORS`: the problems the HTTP API answers with (problem+json `code`), each with its status.
 * - `JOB_FAILURES`: why a job failed (`job.error.code`, the `job.failed` event), each saying
 *   whether the processor retries the work that failed with it. Never an HTTP answer.
 */

/** The problems the HTTP API answers with, and the status of each answer. */
export const ERRORS = {
  unauthorized: { status: 401, title: "Missing or invalid bearer token" },
  not_found: { status: 404, title: "Not found" },
  route_not_found: { status: 404, title: "No such endpoint" },
  validation_failed: { status: 400, title: "The request is not valid" },
  empty_body: { status: 400, title: "The upload is empty" },
  missing_file: { status: 400, title: "The multipart upload has no field named 'file'" },
  file_too_large: { status: 413, title: "The file is larger than the upload limit" },
  unsupported_media_type: { status: 415, title: "Only PDF and PowerPoint (PPTX) files are accepted" },
  upload_aborted: { status: 400, title: "The upload was interrupted before it finished" },
  too_many_uploads: { status: 429, title: "Too many uploads in progress; retry shortly" },
  upload_offset_mismatch: { status: 409, title: "The upload offset does not match the server's; ask for the current offset (HEAD) and continue from there" },
  upload_expired: { status: 410, title: "This upload expired before it was finished; start it again" },
  tus_version_required: { status: 412, title: "Uploads at /v1/uploads use tus 1.0.0: send the header Tus-Resumable: 1.0.0" },
  request_timeout: { status: 408, title: "The request took longer than the server allows for one request" },
  job_not_ready: { status: 409, title: "The job has not finished processing yet" },
  page_not_ready: { status: 404, title: "This page has not been processed yet" },
  queue_unavailable: { status: 503, title: "The work queue is unavailable; the document is stored and will be processed" },
  not_ready: { status: 503, title: "The service is not ready" },
  // Answered by the ingress (the web server's /edge/unavailable) when no gateway is ready.
  service_unavailable: { status: 503, title: "docflow is not available right now" },
  realtime_unavailable: { status: 501, title: "Live updates are not configured on this server; poll the jobs instead" },
  telemetry_unavailable: { status: 404, title: "Browser traces are not collected by this server" },
  telemetry_batch_too_large: { status: 413, title: "The trace batch is larger than the server accepts" },
  telemetry_unsupported_media_type: { status: 415, title: "Trace batches are OTLP/HTTP: application/json or application/x-protobuf" },
  collector_unavailable: { status: 502, title: "The trace collector did not accept the batch" },
  internal: { status: 500, title: "Internal error" },
} as const satisfies Record<string, { status: number; title: string }>;

/** A code of an HTTP problem (the problem document's `code`). */
export type ProblemCode = keyof typeof ERRORS;

export function isProblemCode(value: string): value is ProblemCode {
  return Object.hasOwn(ERRORS, value);
}

/**
 * Why a job failed. `retryable: false`: the document itself is the problem, so the job fails at
 * once. `retryable: true`: the failure may pass, so the processor retries the work (with back-off,
 * up to `DOCFLOW_DELIVERY_LIMIT` attempts) and fails the job with `processing_failed` once they are
 * spent; a new upload of the same document may succeed.
 */
export const JOB_FAILURES = {
  pdf_invalid: { retryable: false, title: "The file is not a readable PDF (it may be damaged or truncated)" },
  pdf_encrypted: { retryable: false, title: "The PDF is protected by a password" },
  pdf_no_pages: { retryable: false, title: "The PDF has no pages" },
  pptx_invalid: { retryable: false, title: "The presentation could not be opened (it may be damaged)" },
  pptx_external_content: { retryable: false, title: "The presentation links to content outside the file (e.g. an image at a web address), which is never fetched" },
  pptx_too_large: { retryable: false, title: "The presentation unpacks to more data or more parts than allowed (possibly a zip bomb)" },
  document_too_many_pages: { retryable: false, title: "The document has more pages than allowed" },
  page_too_large: { retryable: false, title: "A page is too large to render" },
  conversion_failed: { retryable: false, title: "The presentation could not be converted to PDF" },
  // The task timeout bounds one document's work: a document that takes longer would take longer again.
  processing_timeout: { retryable: false, title: "Processing took too long and was stopped" },
  processing_failed: { retryable: true, title: "Processing failed repeatedly; the document was set aside" },
} as const satisfies Record<string, { retryable: boolean; title: string }>;

/** A reason a job failed (`job.error.code`). */
export type JobFailureCode = keyof typeof JOB_FAILURES;

export function isJobFailureCode(value: string): value is JobFailureCode {
  return Object.hasOwn(JOB_FAILURES, value);
}

/** A code of either catalog. */
export type ErrorCode = ProblemCode | JobFailureCode;

/**
 * An error with a stable code from either catalog. The gateway's error middleware turns one
 * with a problem code into problem+json; the processor records one with a job-failure code as
 * the job's error, at once or after its retries as `retryable` says. `detail` (the message,
 * by default the code's title) is shown to the user, so it must never carry secrets or internals.
 */
export class DocflowError extends Error {
  override readonly name = "DocflowError";
  readonly code: ErrorCode;
  /** The HTTP status of a problem code; undefined for a job-failure reason, which is never an HTTP answer. */
  readonly status: number | undefined;
  /** Whether the processor retries work that failed with a job-failure reason; undefined for a problem code. */
  readonly retryable: boolean | undefined;
  /** Extension members of the problem document (e.g. `limit`). */
  readonly extra: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; extra?: Record<string, unknown> }) {
    const entry = isProblemCode(code) ? ERRORS[code] : JOB_FAILURES[code];
    super(detail ?? entry.title, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = "status" in entry ? entry.status : undefined;
    this.retryable = "retryable" in entry ? entry.retryable : undefined;
    this.extra = options?.extra;
  }
}
