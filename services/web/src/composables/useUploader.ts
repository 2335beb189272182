import { computed } from "vue";
import { runtimeConfig } from "@/config";
import { formatBytes } from "@/lib/format";
import { useJobsStore } from "@/stores/jobs";
import { refusalReason } from "@/upload/validate";
import { useAnnouncer } from "./useAnnouncer";
import { useConnectivity } from "./useConnectivity";
import { useUploadList } from "./useUploadList";
import { useUploadUppy } from "./useUploadUppy";

/**
 * Uploads for the upload panel: validation before anything is sent, per-file progress and
 * speed, cancel and retry, resuming, and the server's reason when it refuses a file. Joins the
 * upload list (`useUploadList`, the rows) to Uppy and its tus transport (`useUploadUppy`):
 * Uppy's events move the rows, and people's actions on the rows go to Uppy.
 */
export function useUploader() {
  const jobs = useJobsStore();
  const { announce } = useAnnouncer();
  const list = useUploadList();
  const { uppy, ready, transport } = useUploadUppy({ resumed: list.resumed });
  useConnectivity({ offline: list.offline, online: list.online });

  uppy.on("upload-progress", (file, progress) => list.progress(file?.id, progress.bytesUploaded));

  uppy.on("upload-success", (file, response) => {
    if (!list.byFileId(file?.id)) return;
    const job = transport()?.jobFromSuccess(response) ?? null;
    if (job) jobs.upsert(job, null);
    // Without the job itself (the answer to the last chunk was lost), its id still links to it.
    list.succeeded(file?.id, job?.id ?? transport()?.jobIdFromSuccess(response) ?? null);
  });

  uppy.on("upload-error", (file, error) => {
    list.failed(file?.id, transport()?.describeFailure(error) ?? { message: "The upload failed.", status: 0, retryable: true });
  });

  // Uppy keeps files until removed; finished ones go, so the same file can be sent again.
  uppy.on("complete", () => {
    for (const entry of list.entries) {
      if (entry.state === "done" && entry.fileId && uppy.getFile(entry.fileId)) {
        uppy.removeFile(entry.fileId);
        entry.fileId = null;
      }
    }
  });

  function release(fileId: string | null): void {
    if (fileId && uppy.getFile(fileId)) uppy.removeFile(fileId);
  }

  /** Validates and queues files; refused ones are listed with the reason. */
  async function addFiles(files: Iterable<File>): Promise<void> {
    await ready;
    const refused: string[] = [];
    let added = 0;
    for (const file of files) {
      let refusal = refusalReason(file, runtimeConfig.maxUploadBytes);
      if (!refusal) {
        try {
          list.add(file, { fileId: uppy.addFile({ name: file.name, type: file.type, data: file, source: "docflow" }) });
          added += 1;
          continue;
        } catch (error) {
          // Uppy refused it: its restrictions, or the same file already in the list.
          refusal = error instanceof Error ? error.message : String(error);
        }
      }
      list.add(file, { refusal });
      refused.push(`${file.name}: ${refusal}`);
    }
    if (refused.length > 0) void announce(`Not uploaded. ${refused.join(". ")}`, "assertive");
    if (added > 0) {
      void announce(added === 1 ? "Uploading 1 file." : `Uploading ${added} files.`);
      void uppy.upload().catch(() => undefined);
    }
  }

  /** Stops an upload that is waiting or in progress. Removing the file from Uppy is what aborts its requests. */
  function cancel(key: string): void {
    release(list.cancel(key));
  }

  /** Sends a failed upload again. */
  function retry(key: string): void {
    const fileId = list.retry(key);
    if (fileId) void uppy.retryUpload(fileId).catch(() => undefined);
  }

  /** Removes a finished, refused, failed or canceled row. */
  function dismiss(key: string): void {
    release(list.remove(key)?.fileId ?? null);
  }

  function clearFinished(): void {
    for (const entry of [...list.entries]) dismiss(entry.key);
  }

  return {
    entries: list.entries,
    active: list.active,
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
