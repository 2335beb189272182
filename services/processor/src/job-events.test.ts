import { describe, expect, it, vi } from "vitest";
import { DocflowError, type JobFailureCode, type JobRecord } from "@docflow/contracts";
import type { ProcessorContext } from "./context.ts";
import { failJob, isPermanent, jobErrorOf, type JobFailure } from "./job-events.ts";
import { jobRecord, TEST_JOB_ID, TEST_TENANT } from "../test/support.ts";

const TENANT = TEST_TENANT;
const JOB_ID = TEST_JOB_ID;

/** The failure reasons that fail the job at once: problems with the document itself. */
const PERMANENT = [
  "pdf_invalid",
  "pdf_encrypted",
  "pdf_no_pages",
  "pptx_invalid",
  "pptx_external_content",
  "pptx_too_large",
  "document_too_many_pages",
  "page_too_large",
  "conversion_failed",
  "processing_timeout",
] as const;

/** A context whose job store holds one processing job, and whose NATS records what is published. */
function fakeContext() {
  let current: JobRecord = jobRecord();
  const published: { subject: string; data: string }[] = [];
  const ctx = {
    log: { info: vi.fn() },
    metrics: { jobOutcomes: { inc: vi.fn() } },
    nats: { publish: (subject: string, data: string) => published.push({ subject, data }) },
    jobs: {
      update: async (_tenant: string, _id: string, mutate: (r: JobRecord) => JobRecord | null) => {
        const next = mutate(structuredClone(current));
        if (next === null) return { record: current, revision: 7, changed: false };
        current = next;
        return { record: current, revision: 8, changed: true };
      },
    },
  };
  return { ctx: ctx as unknown as ProcessorContext, published, current: () => current };
}

/** A failure of the document, as `taskOutcome` hands it on to be recorded. */
function permanent(code: JobFailureCode, detail?: string): JobFailure {
  const error = new DocflowError(code, detail);
  expect(isPermanent(error)).toBe(true);
  return error as JobFailure;
}

describe("isPermanent", () => {
  it("fails the job now for a problem with the document, and retries everything else", () => {
    for (const code of PERMANENT) expect(isPermanent(new DocflowError(code)), code).toBe(true);
    // Given up on after the retries, never thrown to fail a job at once.
    expect(isPermanent(new DocflowError("processing_failed"))).toBe(false);
    // API problems thrown on the processor's path (a broker that does not confirm) are transient.
    for (const code of ["queue_unavailable", "not_found", "internal", "not_ready"] as const) expect(isPermanent(new DocflowError(code)), code).toBe(false);
    expect(isPermanent(new Error("S3 is slow"))).toBe(false);
    expect(isPermanent({ code: "pdf_invalid", status: 422 })).toBe(false);
  });
});

describe("failJob", () => {
  it("records the failure and announces it byte for byte: the code, and the detail or else the reason's title", async () => {
    const { ctx, published, current } = fakeContext();
    await failJob(ctx, TENANT, JOB_ID, jobErrorOf(permanent("pdf_encrypted")));
    expect(JSON.stringify(current().error)).toBe('{"code":"pdf_encrypted","message":"The PDF is protected by a password"}');
    expect(current()).toMatchObject({ status: "failed", completedAt: expect.any(String) });
    expect(published).toHaveLength(1);
    expect(published[0]!.subject).toBe(`docflow.events.${TENANT}.${JOB_ID}`);
    const event = JSON.parse(published[0]!.data) as Record<string, unknown>;
    expect(Object.keys(event)).toEqual(["type", "jobId", "revision", "at", "job", "error"]);
    expect(event).toMatchObject({ type: "job.failed", jobId: JOB_ID, revision: 8, job: { status: "failed", error: current().error } });
    expect(JSON.stringify(event.error)).toBe('{"code":"pdf_encrypted","message":"The PDF is protected by a password"}');

    // A second call changes nothing and publishes nothing.
    await failJob(ctx, TENANT, JOB_ID, { code: "pdf_invalid", message: "other" });
    expect(current().error).toEqual({ code: "pdf_encrypted", message: "The PDF is protected by a password" });
    expect(published).toHaveLength(1);
  });

  it("keeps the engine's detail as the message", async () => {
    const { ctx, current } = fakeContext();
    await failJob(ctx, TENANT, JOB_ID, jobErrorOf(permanent("document_too_many_pages", "The document has 5000 pages; at most 2000 are allowed.")));
    expect(JSON.stringify(current().error)).toBe('{"code":"document_too_many_pages","message":"The document has 5000 pages; at most 2000 are allowed."}');
  });

  it("records a code that is no failure reason as processing_failed, with its title when there is no message", async () => {
    const { ctx, current } = fakeContext();
    await failJob(ctx, TENANT, JOB_ID, { code: "no_such_code", message: "" });
    expect(JSON.stringify(current().error)).toBe('{"code":"processing_failed","message":"Processing failed repeatedly; the document was set aside"}');
  });
});
