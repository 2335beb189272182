/**
 * The error catalog: every error a client can see has a stable `code`, an HTTP
 * status (where it is an API error) and a message written for a person.
 * Job failures use the same codes in `job.error.code`.
 */
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
  // Job failure reasons (job.error.code); never returned as an HTTP status.
  pdf_invalid: { status: 422, title: "The file is not a readable PDF (it may be damaged or truncated)" },
  pdf_encrypted: { status: 422, title: "The PDF is protected by a password" },
  pdf_no_pages: { status: 422, title: "The PDF has no pages" },
  pptx_invalid: { status: 422, title: "The presentation could not be opened (it may be damaged)" },
  pptx_external_content: { status: 422, title: "The presentation links to content outside the file (e.g. an image at a web address), which is never fetched" },
  pptx_too_large: { status: 422, title: "The presentation unpacks to more data or more parts than allowed (possibly a zip bomb)" },
  document_too_many_pages: { status: 422, title: "The document has more pages than allowed" },
  page_too_large: { status: 422, title: "A page is too large to render" },
  conversion_failed: { status: 422, title: "The presentation could not be converted to PDF" },
  processing_timeout: { status: 422, title: "Processing took too long and was stopped" },
  processing_failed: { status: 500, title: "Processing failed repeatedly; the document was set aside" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERRORS, value);
}

/**
 * An error with a stable code from the catalog. The gateway's error middleware
 * turns it into problem+json; the processor records it as the job's error.
 * `detail` is shown to the user, so it must never carry secrets or internals.
 */
export class DocflowError extends Error {
  override readonly name = "DocflowError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly extra: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; extra?: Record<string, unknown> }) {
    super(detail ?? ERRORS[code].title, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERRORS[code].status;
    this.extra = options?.extra;
  }
}
