import { describe, expect, it } from "vitest";
import { DocflowError, ERRORS, JOB_FAILURES, isJobFailureCode, isProblemCode } from "./errors.ts";

/*
 * The codes are public (problem documents, job records, events): these tables pin every code, its
 * title and its status or retryability as they were when the one catalog was split in two.
 */

/** code: [HTTP status, title] */
const PROBLEMS = {
  unauthorized: [401, "Missing or invalid bearer token"],
  not_found: [404, "Not found"],
  route_not_found: [404, "No such endpoint"],
  validation_failed: [400, "The request is not valid"],
  empty_body: [400, "The upload is empty"],
  missing_file: [400, "The multipart upload has no field named 'file'"],
  file_too_large: [413, "The file is larger than the upload limit"],
  unsupported_media_type: [415, "Only PDF and PowerPoint (PPTX) files are accepted"],
  upload_aborted: [400, "The upload was interrupted before it finished"],
  too_many_uploads: [429, "Too many uploads in progress; retry shortly"],
  upload_offset_mismatch: [409, "The upload offset does not match the server's; ask for the current offset (HEAD) and continue from there"],
  upload_expired: [410, "This upload expired before it was finished; start it again"],
  tus_version_required: [412, "Uploads at /v1/uploads use tus 1.0.0: send the header Tus-Resumable: 1.0.0"],
  request_timeout: [408, "The request took longer than the server allows for one request"],
  job_not_ready: [409, "The job has not finished processing yet"],
  page_not_ready: [404, "This page has not been processed yet"],
  queue_unavailable: [503, "The work queue is unavailable; the document is stored and will be processed"],
  not_ready: [503, "The service is not ready"],
  service_unavailable: [503, "docflow is not available right now"],
  realtime_unavailable: [501, "Live updates are not configured on this server; poll the jobs instead"],
  telemetry_unavailable: [404, "Browser traces are not collected by this server"],
  telemetry_batch_too_large: [413, "The trace batch is larger than the server accepts"],
  telemetry_unsupported_media_type: [415, "Trace batches are OTLP/HTTP: application/json or application/x-protobuf"],
  collector_unavailable: [502, "The trace collector did not accept the batch"],
  internal: [500, "Internal error"],
};

/** code: [title, retryable] */
const FAILURES = {
  pdf_invalid: ["The file is not a readable PDF (it may be damaged or truncated)", false],
  pdf_encrypted: ["The PDF is protected by a password", false],
  pdf_no_pages: ["The PDF has no pages", false],
  pptx_invalid: ["The presentation could not be opened (it may be damaged)", false],
  pptx_external_content: ["The presentation links to content outside the file (e.g. an image at a web address), which is never fetched", false],
  pptx_too_large: ["The presentation unpacks to more data or more parts than allowed (possibly a zip bomb)", false],
  document_too_many_pages: ["The document has more pages than allowed", false],
  page_too_large: ["A page is too large to render", false],
  conversion_failed: ["The presentation could not be converted to PDF", false],
  processing_timeout: ["Processing took too long and was stopped", false],
  processing_failed: ["Processing failed repeatedly; the document was set aside", true],
};

describe("the error catalogs", () => {
  it("keep every HTTP problem: its code, status and title", () => {
    expect(Object.fromEntries(Object.entries(ERRORS).map(([code, { status, title }]) => [code, [status, title]]))).toEqual(PROBLEMS);
  });

  it("keep every job-failure reason: its code and title, and say which ones are retried", () => {
    expect(Object.fromEntries(Object.entries(JOB_FAILURES).map(([code, { title, retryable }]) => [code, [title, retryable]]))).toEqual(FAILURES);
  });

  it("share no code, and tell which catalog a code is from", () => {
    expect(Object.keys(ERRORS).filter((code) => Object.hasOwn(JOB_FAILURES, code))).toEqual([]);
    expect([isProblemCode("not_found"), isJobFailureCode("not_found")]).toEqual([true, false]);
    expect([isProblemCode("pdf_invalid"), isJobFailureCode("pdf_invalid")]).toEqual([false, true]);
    expect([isProblemCode("toString"), isJobFailureCode("constructor"), isProblemCode("nope")]).toEqual([false, false, false]);
  });
});

describe("DocflowError", () => {
  it("carries a problem code with its status and title, and no retryability", () => {
    const error = new DocflowError("file_too_large", "The file is larger than the limit of 10 bytes.", { extra: { limit: 10 } });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: "DocflowError", code: "file_too_large", status: 413, retryable: undefined, extra: { limit: 10 } });
    expect(error.message).toBe("The file is larger than the limit of 10 bytes.");
    expect(new DocflowError("not_found").message).toBe("Not found");
  });

  it("carries a job-failure reason with its retryability and title, and no HTTP status", () => {
    const cause = new Error("pdfinfo: Incorrect password");
    const error = new DocflowError("pdf_encrypted", undefined, { cause });
    expect(error).toMatchObject({ name: "DocflowError", code: "pdf_encrypted", status: undefined, retryable: false, message: "The PDF is protected by a password" });
    expect(error.cause).toBe(cause);
    expect(new DocflowError("processing_failed", "gave up")).toMatchObject({ retryable: true, message: "gave up" });
    expect(new DocflowError("internal")).not.toHaveProperty("cause");
  });
});
