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
  /** Where the upload went on from (bytes the server already had), when it resumed. */
  resumedFrom: number | null;
  /** The browser is offline: the upload waits for the connection and then goes on by itself. */
  waitingForNetwork: boolean;
}

/** Speed is measured over this window (ms). */
const SPEED_WINDOW_MS = 4_000;

/**
 * Uppy's id, part of every file id and so of the fingerprint under which a tus upload is kept
 * for resuming: the same on every page load and every mount of the upload panel, so that a file
 * picked again after a reload (or after visiting another screen) continues its upload.
 */
export const UPPY_ID = "docflow-upload";

function browserOnline(): boolean {
  return typeof navigator === "undefined" || navigator.onLine !== false;
}

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
    id: UPPY_ID,
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
    transport.install(uppy, { resumed: onResumed });
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

  function onResumed(fileId: string, offset: number): void {
    const entry = byFileId(fileId);
    if (!entry || entry.state === "canceled" || offset >= entry.size) return;
    const first = entry.resumedFrom === null;
    entry.resumedFrom = offset;
    entry.bytesUploaded = offset;
    entry.waitingForNetwork = false;
    samples.delete(entry.key);
    if (first) void announce(`Resuming ${entry.name} from ${formatBytes(offset)} already uploaded.`);
  }

  // Offline, tus uploads wait for the connection (and then go on by themselves): say so. (A
  // multipart POST just fails, and says so.)
  const resumable = () => transport?.kind === "tus";
  function onOffline(): void {
    if (!resumable()) return;
    const waiting = entries.filter((entry) => entry.state === "waiting" || entry.state === "uploading");
    for (const entry of waiting) {
      entry.waitingForNetwork = true;
      entry.speed = null;
      samples.delete(entry.key);
    }
    if (waiting.length > 0) void announce("Connection lost. Uploads go on when you are back online.", "assertive");
  }
  function onOnline(): void {
    for (const entry of entries) entry.waitingForNetwork = false;
  }
  if (typeof window !== "undefined") {
    window.addEventListener("offline", onOffline);
    window.addEventListener("online", onOnline);
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
    if (browserOnline()) entry.waitingForNetwork = false;
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
    entry.waitingForNetwork = false;
    const job = transport?.jobFromSuccess(response) ?? null;
    if (job) jobs.upsert(job, null);
    // Without the job itself (the answer to the last chunk was lost), its id still links to it.
    entry.jobId = job?.id ?? transport?.jobIdFromSuccess(response) ?? null;
    void announce(`${entry.name} uploaded. Processing starts shortly.`);
  });

  uppy.on("upload-error", (file, error, response) => {
    const entry = byFileId(file?.id);
    if (!entry || entry.state === "canceled") return;
    const failure = transport?.describeFailure(error, response) ?? { message: "The upload failed.", status: 0, retryable: true };
    entry.state = "failed";
    entry.speed = null;
    entry.waitingForNetwork = false;
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
        resumedFrom: null,
        waitingForNetwork: false,
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
    entry.waitingForNetwork = resumable() && !browserOnline();
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
    if (typeof window !== "undefined") {
      window.removeEventListener("offline", onOffline);
      window.removeEventListener("online", onOnline);
    }
    // Leaving the screen is not canceling: a resumable upload stays resumable.
    transport?.detach(uppy);
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

