import { Uppy, type Body, type Meta } from "@uppy/core";
import { onScopeDispose, watch } from "vue";
import { runtimeConfig } from "@/config";
import { createTusTransport, type UploadTransport, type UploadTransportEvents, type UploadUppy } from "@/upload/uploadTransport";
import { ACCEPTED_EXTENSIONS, ACCEPTED_TYPES } from "@/upload/validate";

/**
 * Uppy's id, part of every file id and so of the fingerprint under which a tus upload is kept
 * for resuming: the same on every page load and every mount of the upload panel, so that a file
 * picked again after a reload (or after visiting another screen) continues its upload.
 */
export const UPPY_ID = "docflow-upload";

/**
 * The Uppy instance that uploads, with the tus transport installed, for as long as the calling
 * scope lives. It follows the runtime config (the size limit, the chunk size), which may arrive
 * after it was made. When the scope ends, the uploads in flight stop but stay resumable: the
 * transport lets go of them before Uppy is destroyed (which would end them on the server).
 */
export function useUploadUppy(events: UploadTransportEvents) {
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
  let disposed = false;
  /** Resolves once the transport (loaded on first use) is installed: files can be added then. */
  const ready: Promise<void> = createTusTransport(runtimeConfig).then((created) => {
    if (disposed) return;
    transport = created;
    // Reads the chunk size now: a config that arrived while the plugin loaded is in force.
    created.install(uppy, events);
  });

  watch(
    () => runtimeConfig.maxUploadBytes,
    (maxFileSize) => uppy.setOptions({ restrictions: { ...uppy.opts.restrictions, maxFileSize } }),
  );
  watch(
    () => runtimeConfig.tusChunkBytes,
    (bytes) => transport?.setChunkBytes(uppy, bytes),
  );

  onScopeDispose(() => {
    disposed = true;
    // Leaving the screen is not canceling: a resumable upload stays resumable.
    transport?.detach(uppy);
    uppy.cancelAll();
    uppy.destroy();
  });

  return {
    uppy,
    ready,
    /** The installed transport, null until `ready`. */
    transport: (): UploadTransport | null => transport,
  };
}
