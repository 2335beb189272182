import { computed, reactive } from "vue";
import { formatBytes } from "@/lib/format";
import { createEntry, isInFlight, recordCancel, recordFailure, recordOffline, recordProgress, recordResume, recordRetry, recordSuccess, type UploadEntry } from "@/upload/uploadEntry";
import { SpeedMeter } from "@/upload/speedMeter";
import type { UploadFailure } from "@/upload/uploadTransport";
import { isBrowserOnline } from "./useConnectivity";
import { useAnnouncer } from "./useAnnouncer";

/**
 * The rows of the upload list, newest first, and what each thing that happens to an upload does
 * to its row: progress and speed, resuming, success, failure, cancel, retry, the connection
 * coming and going. Outcomes are announced to screen readers. Knows nothing of Uppy: rows are
 * found by Uppy's file id, which the caller gives.
 */
export function useUploadList() {
  const { announce } = useAnnouncer();
  const entries = reactive<UploadEntry[]>([]);
  const speeds = new SpeedMeter();
  let counter = 0;

  /** Some upload is waiting or in progress. */
  const active = computed(() => entries.some(isInFlight));

  function find(key: string): UploadEntry | undefined {
    return entries.find((entry) => entry.key === key);
  }

  function byFileId(id: string | undefined): UploadEntry | undefined {
    return id === undefined ? undefined : entries.find((entry) => entry.fileId === id);
  }

  /** A new row at the top: uploading as `fileId`, or refused with `refusal`. */
  function add(file: { name: string; size: number }, from: { fileId: string } | { refusal: string }): UploadEntry {
    const entry = createEntry(`u${++counter}`, file, "refusal" in from ? from.refusal : null);
    if ("fileId" in from) entry.fileId = from.fileId;
    entries.unshift(entry);
    return entries[0]!;
  }

  function progress(fileId: string | undefined, bytesUploaded: number): void {
    const entry = byFileId(fileId);
    if (!entry || !recordProgress(entry, bytesUploaded, isBrowserOnline())) return;
    const speed = speeds.sample(entry.key, entry.bytesUploaded);
    if (speed !== null) entry.speed = speed;
  }

  function resumed(fileId: string, offset: number): void {
    const entry = byFileId(fileId);
    if (!entry) return;
    const first = entry.resumedFrom === null;
    if (!recordResume(entry, offset)) return;
    // The bytes the server had were not sent now: they say nothing of the speed.
    speeds.forget(entry.key);
    if (first) void announce(`Resuming ${entry.name} from ${formatBytes(offset)} already uploaded.`);
  }

  function succeeded(fileId: string | undefined, jobId: string | null): void {
    const entry = byFileId(fileId);
    if (!entry) return;
    recordSuccess(entry, jobId);
    void announce(`${entry.name} uploaded. Processing starts shortly.`);
  }

  function failed(fileId: string | undefined, failure: UploadFailure): void {
    const entry = byFileId(fileId);
    if (!entry || !recordFailure(entry, failure)) return;
    void announce(`${entry.name} could not be uploaded: ${failure.message}`, "assertive");
  }

  /** Marks an upload in flight canceled. Returns the file id Uppy must let go of, or null when it was not in flight. */
  function cancel(key: string): string | null {
    const entry = find(key);
    const fileId = entry?.fileId ?? null;
    if (!entry || !recordCancel(entry)) return null;
    void announce(`Upload of ${entry.name} canceled.`);
    return fileId;
  }

  /** Marks a failed upload waiting again. Returns the file id Uppy must send again, or null when it had not failed. */
  function retry(key: string): string | null {
    const entry = find(key);
    if (!entry || !recordRetry(entry, !isBrowserOnline())) return null;
    speeds.forget(entry.key);
    return entry.fileId;
  }

  /** Takes out a row that is not in flight. Returns it, or null when there is none to take out. */
  function remove(key: string): UploadEntry | null {
    const index = entries.findIndex((entry) => entry.key === key);
    const entry = entries[index];
    if (!entry || isInFlight(entry)) return null;
    speeds.forget(entry.key);
    entries.splice(index, 1);
    return entry;
  }

  /** Offline, uploads wait for the connection (and then go on by themselves): say so. */
  function offline(): void {
    const waiting = entries.filter(recordOffline);
    for (const entry of waiting) speeds.forget(entry.key);
    if (waiting.length > 0) void announce("Connection lost. Uploads go on when you are back online.", "assertive");
  }

  function online(): void {
    for (const entry of entries) entry.waitingForNetwork = false;
  }

  return { entries, active, find, byFileId, add, progress, resumed, succeeded, failed, cancel, retry, remove, offline, online };
}
