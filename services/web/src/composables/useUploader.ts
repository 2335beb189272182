import { Uppy, type Body, type Meta } from "@uppy/core";
import { computed, onScopeDispose, reactive, watch } from "vue";
import { runtimeConfig } from "@/config";
import { formatBytes } from "@/lib/format";
import { useJobsStore } from "@/stores/jobs";
import { createUploadTransport, type UploadTransport, type UploadUppy } from "@/upload/uploadTransport";
import { ACCEPTED_EXTENSIONS, ACCEPTED_TYPES, refusalReason } from "@/upload/validate";
import { useAnnouncer } from "./useAnnouncer";

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
}

/** Speed is measured over this window (ms). */
const SPEED_WINDOW_MS = 4_000;

let instances = 0;

/**
 * Uploads through Uppy: validation before anything is sent, per-file progress,
 * speed, cancel and retry, and the server's reason when it refuses a file. The
 * uploader plugin comes from `uploadTransport` (runtime config), so this
 * composable does not know whether files go as one POST or as tus chunks.
 */
export function useUploader() {
  const jobs = useJobsStore();
  const { announce } = useAnnouncer();
  const entries = reactive<UploadEntry[]>([]);
  const samples = new Map<string, Array<[number, number]>>();
  let counter = 0;

  const uppy: UploadUppy = new Uppy<Meta, Body>({
    id: `docflow-upload-${++instances}`,
    autoProceed: false,
    allowMultipleUploadBatches: true,
    restrictions: {
      maxFileSize: runtimeConfig.maxUploadBytes,
      allowedFileTypes: [...ACCEPTED_EXTENSIONS, ...ACCEPTED_TYPES],
      maxNumberOfFiles: null,
      minFileSize: null,
      maxTotalFileSize: null,
      minNumberOfFiles: null,
      requiredMetaFields: [],
    },
  });

  let transport: UploadTransport | null = null;
  let transportReady: Promise<void> = installTransport();

  async function installTransport(): Promise<void> {
    const next = await createUploadTransport(runtimeConfig);
    if (transport) transport.uninstall(uppy);
    transport = next;
    transport.install(uppy);
  }

  const active = computed(() => entries.some((entry) => entry.state === "waiting" || entry.state === "uploading"));

  // Runtime config may arrive after mount: follow it, but never under a running upload.
  watch(
    () => runtimeConfig.maxUploadBytes,
    (maxFileSize) => uppy.setOptions({ restrictions: { ...uppy.opts.restrictions, maxFileSize } }),
  );
  watch(
    () => runtimeConfig.uploadTransport,
    (kind) => {
      const swap = () => {
        if (transport?.kind !== kind) transportReady = transportReady.then(installTransport);
      };
      if (!active.value) return swap();
      const stop = watch(active, (busy) => {
        if (!busy) {
          stop();
          swap();
        }
      });
    },
  );

  function byFileId(id: string | undefined): UploadEntry | undefined {
    return id === undefined ? undefined : entries.find((entry) => entry.fileId === id);
  }

  function measure(entry: UploadEntry, bytes: number): void {
    const now = performance.now();
    const list = samples.get(entry.key) ?? [];
    list.push([now, bytes]);
    while (list.length > 2 && now - list[0]![0] > SPEED_WINDOW_MS) list.shift();
    samples.set(entry.key, list);
    const first = list[0]!;
    const elapsed = (now - first[0]) / 1000;
    if (elapsed >= 0.5) entry.speed = Math.max(0, (bytes - first[1]) / elapsed);
  }

  uppy.on("upload-progress", (file, progress) => {
    const entry = byFileId(file?.id);
    if (!entry || entry.state === "canceled") return;
    entry.state = "uploading";
    entry.bytesUploaded = Math.min(progress.bytesUploaded || 0, entry.size);
    measure(entry, entry.bytesUploaded);
  });

  uppy.on("upload-success", (file, response) => {
    const entry = byFileId(file?.id);
    if (!entry) return;
    entry.state = "done";
    entry.bytesUploaded = entry.size;
    entry.speed = null;
    entry.message = null;
    const job = transport?.jobFromSuccess(response) ?? null;
    if (job) {
      jobs.upsert(job, null);
      entry.jobId = job.id;
    }
    void announce(`${entry.name} uploaded. Processing starts shortly.`);
  });

  uppy.on("upload-error", (file, error, response) => {
    const entry = byFileId(file?.id);
    if (!entry || entry.state === "canceled") return;
    const failure = transport?.describeFailure(error, response) ?? { message: "The upload failed.", status: 0, retryable: true };
    entry.state = "failed";
    entry.speed = null;
    entry.message = failure.message;
    entry.retryable = failure.retryable;
    void announce(`${entry.name} could not be uploaded: ${failure.message}`, "assertive");
  });

  // Uppy keeps files until removed; finished ones go, so the same file can be sent again.
  uppy.on("complete", () => {
    for (const entry of entries) {
      if (entry.state === "done" && entry.fileId && uppy.getFile(entry.fileId)) {
        uppy.removeFile(entry.fileId);
        entry.fileId = null;
      }
    }
  });

  /** Validates and queues files; refused ones are listed with the reason. */
  async function addFiles(files: Iterable<File>): Promise<void> {
    await transportReady;
    const refused: string[] = [];
    let added = 0;
    for (const file of files) {
      const entry: UploadEntry = {
        key: `u${++counter}`,
        fileId: null,
        name: file.name,
        size: file.size,
        state: "waiting",
        bytesUploaded: 0,
        speed: null,
        message: null,
        retryable: false,
        jobId: null,
      };
      const reason = refusalReason(file, runtimeConfig.maxUploadBytes);
      if (reason) {
        entry.state = "refused";
        entry.message = reason;
        refused.push(`${file.name}: ${reason}`);
      } else {
        try {
          entry.fileId = uppy.addFile({ name: file.name, type: file.type, data: file, source: "docflow" });
          added += 1;
        } catch (error) {
          entry.state = "refused";
          entry.message = error instanceof Error ? error.message : String(error);
          refused.push(`${file.name}: ${entry.message}`);
        }
      }
      entries.unshift(entry);
    }
    if (refused.length > 0) void announce(`Not uploaded. ${refused.join(". ")}`, "assertive");
    if (added > 0) {
      void announce(added === 1 ? "Uploading 1 file." : `Uploading ${added} files.`);
      void uppy.upload().catch(() => undefined);
    }
  }

  function find(key: string): UploadEntry | undefined {
    return entries.find((entry) => entry.key === key);
  }

  /** Stops an upload that is waiting or in progress. */
  function cancel(key: string): void {
    const entry = find(key);
    if (!entry || (entry.state !== "waiting" && entry.state !== "uploading")) return;
    entry.state = "canceled";
    entry.speed = null;
    entry.message = null;
    if (entry.fileId && uppy.getFile(entry.fileId)) uppy.removeFile(entry.fileId);
    entry.fileId = null;
    void announce(`Upload of ${entry.name} canceled.`);
  }

  /** Sends a failed upload again. */
  function retry(key: string): void {
    const entry = find(key);
    if (!entry || entry.state !== "failed" || !entry.fileId) return;
    entry.state = "waiting";
    entry.message = null;
    entry.bytesUploaded = 0;
    samples.delete(entry.key);
    void uppy.retryUpload(entry.fileId).catch(() => undefined);
  }

  /** Removes a finished, refused, failed or canceled row. */
  function dismiss(key: string): void {
    const index = entries.findIndex((entry) => entry.key === key);
    const entry = entries[index];
    if (!entry || entry.state === "waiting" || entry.state === "uploading") return;
    if (entry.fileId && uppy.getFile(entry.fileId)) uppy.removeFile(entry.fileId);
    samples.delete(entry.key);
    entries.splice(index, 1);
  }

  function clearFinished(): void {
    for (const entry of [...entries]) dismiss(entry.key);
  }

  onScopeDispose(() => {
    uppy.cancelAll();
    uppy.destroy();
  });

  return {
    entries,
    active,
    addFiles,
    cancel,
    retry,
    dismiss,
    clearFinished,
    /** The limit people are told about. */
    limitText: computed(() => formatBytes(runtimeConfig.maxUploadBytes)),
    /** For tests and diagnostics. */
    uppy,
  };
}

