import { describe, expect, it } from "vitest";
import {
  createEntry,
  isInFlight,
  recordCancel,
  recordFailure,
  recordOffline,
  recordProgress,
  recordResume,
  recordRetry,
  recordSuccess,
  type UploadEntry,
  type UploadState,
} from "@/upload/uploadEntry";

const FILE = { name: "report.pdf", size: 1_000 };
const FAILURE = { message: "Storage is not answering.", status: 503, retryable: true };

function entryIn(state: UploadState, fields: Partial<UploadEntry> = {}): UploadEntry {
  return { ...createEntry("u1", FILE), fileId: "f1", state, ...fields };
}

describe("upload entry", () => {
  it("starts waiting, or refused with the reason", () => {
    expect(createEntry("u1", FILE)).toMatchObject({ key: "u1", name: "report.pdf", size: 1_000, state: "waiting", message: null, bytesUploaded: 0 });
    expect(createEntry("u2", FILE, "The file is empty.")).toMatchObject({ state: "refused", message: "The file is empty." });
    expect(isInFlight(createEntry("u1", FILE))).toBe(true);
    expect(isInFlight(createEntry("u2", FILE, "no"))).toBe(false);
  });

  it("moves to uploading with progress, never past the file's size, and stays canceled once canceled", () => {
    const entry = entryIn("waiting", { waitingForNetwork: true });
    expect(recordProgress(entry, 400, false)).toBe(true);
    expect(entry).toMatchObject({ state: "uploading", bytesUploaded: 400, waitingForNetwork: true });
    recordProgress(entry, 5_000, true);
    expect(entry).toMatchObject({ bytesUploaded: 1_000, waitingForNetwork: false });

    const canceled = entryIn("canceled");
    expect(recordProgress(canceled, 400, true)).toBe(false);
    expect(canceled).toMatchObject({ state: "canceled", bytesUploaded: 0 });
  });

  it("resumes from bytes the server had, but not past the end nor once canceled", () => {
    const entry = entryIn("uploading", { waitingForNetwork: true });
    expect(recordResume(entry, 600)).toBe(true);
    expect(entry).toMatchObject({ resumedFrom: 600, bytesUploaded: 600, waitingForNetwork: false });
    expect(recordResume(entry, 1_000)).toBe(false);
    expect(entry.resumedFrom).toBe(600);
    expect(recordResume(entryIn("canceled"), 10)).toBe(false);
  });

  it("ends done with the job, or failed with the reason; a canceled upload does not fail", () => {
    const done = entryIn("uploading", { speed: 5, message: "old" });
    recordSuccess(done, "job-1");
    expect(done).toMatchObject({ state: "done", bytesUploaded: 1_000, speed: null, message: null, jobId: "job-1" });

    const failed = entryIn("uploading", { speed: 5 });
    expect(recordFailure(failed, FAILURE)).toBe(true);
    expect(failed).toMatchObject({ state: "failed", speed: null, message: "Storage is not answering.", retryable: true });

    const canceled = entryIn("canceled");
    expect(recordFailure(canceled, FAILURE)).toBe(false);
    expect(canceled.state).toBe("canceled");
  });

  it("cancels only an upload in flight, and lets go of its file", () => {
    for (const state of ["waiting", "uploading"] as const) {
      const entry = entryIn(state, { speed: 5 });
      expect(recordCancel(entry)).toBe(true);
      expect(entry).toMatchObject({ state: "canceled", fileId: null, speed: null });
    }
    for (const state of ["refused", "done", "failed", "canceled"] as const) {
      const entry = entryIn(state);
      expect(recordCancel(entry)).toBe(false);
      expect(entry.state).toBe(state);
    }
  });

  it("retries only a failed upload Uppy still holds, from the start", () => {
    const entry = entryIn("failed", { bytesUploaded: 700, message: "Storage is not answering." });
    expect(recordRetry(entry, true)).toBe(true);
    expect(entry).toMatchObject({ state: "waiting", bytesUploaded: 0, message: null, waitingForNetwork: true });
    expect(recordRetry(entryIn("failed", { fileId: null }), false)).toBe(false);
    expect(recordRetry(entryIn("done"), false)).toBe(false);
  });

  it("waits for the connection while offline only when in flight", () => {
    const uploading = entryIn("uploading", { speed: 5 });
    expect(recordOffline(uploading)).toBe(true);
    expect(uploading).toMatchObject({ waitingForNetwork: true, speed: null });
    const done = entryIn("done");
    expect(recordOffline(done)).toBe(false);
    expect(done.waitingForNetwork).toBe(false);
  });
});
