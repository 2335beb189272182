import type { UploadFailure } from "@/upload/uploadTransport";

export type UploadState = "refused" | "waiting" | "uploading" | "done" | "failed" | "canceled";

/** One row of the upload list. */
export interface UploadEntry {
  key: string;
  /** Uppy's file id while Uppy holds the file. */
  fileId: string | null;
  name: string;
  size: number;
  state: UploadState;
  bytesUploaded: number;
  /** Bytes per second over the last few seconds, once known. */
  speed: number | null;
  /** Why it was refused or failed. */
  message: string | null;
  /** A failed upload that may succeed if tried again. */
  retryable: boolean;
  /** The job the upload created. */
  jobId: string | null;
  /** Where the upload went on from (bytes the server already had), when it resumed. */
  resumedFrom: number | null;
  /** The browser is offline: the upload waits for the connection and then goes on by itself. */
  waitingForNetwork: boolean;
}

/*
 * How a row moves from state to state: waiting -> uploading -> done | failed, failed -> waiting
 * (retry), waiting | uploading -> canceled; refused from the start. Each function changes the
 * row it is given and returns false when the row is in no state to take the change (nothing
 * changed then). Plain functions on plain rows, so that the upload list can hold them reactive.
 */

/** A new row for `file`, waiting for its upload to start, or refused with `refusal`. */
export function createEntry(key: string, file: { name: string; size: number }, refusal: string | null = null): UploadEntry {
  return {
    key,
    fileId: null,
    name: file.name,
    size: file.size,
    state: refusal === null ? "waiting" : "refused",
    bytesUploaded: 0,
    speed: null,
    message: refusal,
    retryable: false,
    jobId: null,
    resumedFrom: null,
    waitingForNetwork: false,
  };
}

/** Waiting to start or uploading: the row can be canceled, not dismissed. */
export function isInFlight(entry: UploadEntry): boolean {
  return entry.state === "waiting" || entry.state === "uploading";
}

/** `bytesUploaded` have gone (at most the file's size); `online` when the browser says it is. */
export function recordProgress(entry: UploadEntry, bytesUploaded: number, online: boolean): boolean {
  if (entry.state === "canceled") return false;
  entry.state = "uploading";
  if (online) entry.waitingForNetwork = false;
  entry.bytesUploaded = Math.min(bytesUploaded || 0, entry.size);
  return true;
}

/** The upload goes on from `offset` bytes the server already had (never past the end of the file). */
export function recordResume(entry: UploadEntry, offset: number): boolean {
  if (entry.state === "canceled" || offset >= entry.size) return false;
  entry.resumedFrom = offset;
  entry.bytesUploaded = offset;
  entry.waitingForNetwork = false;
  return true;
}

/** The gateway has the whole file; `jobId` when its answer named the job. */
export function recordSuccess(entry: UploadEntry, jobId: string | null): void {
  entry.state = "done";
  entry.bytesUploaded = entry.size;
  entry.speed = null;
  entry.message = null;
  entry.waitingForNetwork = false;
  entry.jobId = jobId;
}

/** The upload failed for good (a canceled one stays canceled). */
export function recordFailure(entry: UploadEntry, failure: UploadFailure): boolean {
  if (entry.state === "canceled") return false;
  entry.state = "failed";
  entry.speed = null;
  entry.waitingForNetwork = false;
  entry.message = failure.message;
  entry.retryable = failure.retryable;
  return true;
}

/** Someone stopped an upload in flight. */
export function recordCancel(entry: UploadEntry): boolean {
  if (!isInFlight(entry)) return false;
  entry.state = "canceled";
  entry.speed = null;
  entry.message = null;
  entry.fileId = null;
  return true;
}

/** A failed upload goes again, from the start as far as the row knows (it may resume). */
export function recordRetry(entry: UploadEntry, waitingForNetwork: boolean): boolean {
  if (entry.state !== "failed" || !entry.fileId) return false;
  entry.state = "waiting";
  entry.message = null;
  entry.bytesUploaded = 0;
  entry.waitingForNetwork = waitingForNetwork;
  return true;
}

/** The browser went offline: an upload in flight waits for the connection, its speed unknown. */
export function recordOffline(entry: UploadEntry): boolean {
  if (!isInFlight(entry)) return false;
  entry.waitingForNetwork = true;
  entry.speed = null;
  return true;
}
