import type { Job } from "@docflow/contracts";
import type { Body, Meta, Uppy } from "@uppy/core";
import XHRUpload from "@uppy/xhr-upload";
import { API_BASE, authorizationHeader, errorFromResponse, reportUnauthorized } from "@/api/client";
import type { RuntimeConfig, UploadTransportKind } from "@/config";

export type UploadUppy = Uppy<Meta, Body>;

/** What went wrong with one upload, for people; `retryable` when trying again may help. */
export interface UploadFailure {
  message: string;
  status: number;
  retryable: boolean;
}

/**
 * How files travel to the gateway. The upload panel talks to Uppy only; which
 * Uppy uploader plugin does the work (and how its answers are read) lives here,
 * so moving from one multipart POST to resumable tus is the runtime config's
 * `uploadTransport`, not a change to any component.
 */
export interface UploadTransport {
  readonly kind: UploadTransportKind;
  /** Adds the uploader plugin to `uppy`. */
  install(uppy: UploadUppy): void;
  /** Removes it again. */
  uninstall(uppy: UploadUppy): void;
  /** The job a finished upload created, when the answer carries it (otherwise live events bring it). */
  jobFromSuccess(response: { body?: unknown }): Job | null;
  /** Turns Uppy's `upload-error` arguments into a message for people. */
  describeFailure(error: unknown, response: unknown): UploadFailure;
}

const XHR_PLUGIN_ID = "docflow-xhr";
const TUS_PLUGIN_ID = "docflow-tus";

function looksLikeJob(value: unknown): value is Job {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Job).id === "string" &&
    typeof (value as Job).status === "string" &&
    typeof (value as Job).filename === "string"
  );
}

function parseJson(text: string | undefined | null): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Reads the answer of a failed request (an XMLHttpRequest) as problem+json. */
function failureFromXhr(xhr: XMLHttpRequest | null | undefined, fallback: string): UploadFailure {
  const status = xhr?.status ?? 0;
  if (!status) {
    return { status: 0, retryable: true, message: "The upload was interrupted. Check your connection and try again." };
  }
  const error = errorFromResponse(status, xhr?.statusText ?? "", parseJson(xhr?.responseText));
  if (status === 401) reportUnauthorized(error);
  return { status, message: error.message || fallback, retryable: status >= 500 || status === 408 || status === 429 };
}

function isXhr(value: unknown): value is XMLHttpRequest {
  return typeof XMLHttpRequest !== "undefined" && value instanceof XMLHttpRequest;
}

/** One multipart `POST /v1/documents` per file, field `file`; the answer is `202` with the Job. */
export function createXhrTransport(): UploadTransport {
  return {
    kind: "xhr",
    install(uppy) {
      uppy.use(XHRUpload, {
        id: XHR_PLUGIN_ID,
        endpoint: `${API_BASE}/documents`,
        method: "POST",
        formData: true,
        fieldName: "file",
        // Only the file part: the gateway takes the name from the part's filename.
        allowedMetaFields: [],
        limit: 3,
        // Give up when no progress for this long (ms).
        timeout: 120_000,
        // A POST is not idempotent (the document may be stored already): people retry on purpose.
        shouldRetry: () => false,
        async onBeforeRequest(xhr) {
          for (const [name, value] of Object.entries(await authorizationHeader())) xhr.setRequestHeader(name, value);
        },
      });
    },
    uninstall(uppy) {
      const plugin = uppy.getPlugin(XHR_PLUGIN_ID);
      if (plugin) uppy.removePlugin(plugin);
    },
    jobFromSuccess(response) {
      return looksLikeJob(response.body) ? response.body : null;
    },
    describeFailure(error, response) {
      const fallback = error instanceof Error ? error.message : "The upload failed.";
      const xhr = isXhr(response) ? response : isXhr((error as { request?: unknown })?.request) ? (error as { request: XMLHttpRequest }).request : null;
      return failureFromXhr(xhr, fallback);
    },
  };
}

/**
 * Resumable tus 1.0.0 uploads to `/v1/uploads`, in chunks of `tusChunkBytes`.
 * The plugin is loaded only when this transport is chosen.
 */
export async function createTusTransport(config: Pick<RuntimeConfig, "tusChunkBytes">): Promise<UploadTransport> {
  const { default: Tus } = await import("@uppy/tus");
  return {
    kind: "tus",
    install(uppy) {
      uppy.use(Tus, {
        id: TUS_PLUGIN_ID,
        endpoint: `${API_BASE}/uploads`,
        chunkSize: config.tusChunkBytes,
        limit: 3,
        retryDelays: [0, 1_000, 3_000, 5_000, 10_000],
        removeFingerprintOnSuccess: true,
        allowedMetaFields: ["name", "type"],
        async onBeforeRequest(request) {
          for (const [name, value] of Object.entries(await authorizationHeader())) request.setHeader(name, value);
        },
      });
    },
    uninstall(uppy) {
      const plugin = uppy.getPlugin(TUS_PLUGIN_ID);
      if (plugin) uppy.removePlugin(plugin);
    },
    jobFromSuccess(response) {
      // The final PATCH may answer with the Job as JSON.
      const xhr = (response.body as { xhr?: unknown } | undefined)?.xhr;
      const body = isXhr(xhr) ? parseJson(xhr.responseText) : null;
      return looksLikeJob(body) ? body : null;
    },
    describeFailure(error) {
      const original = (error as { originalResponse?: { getStatus(): number; getBody(): string } | null })?.originalResponse;
      if (!original) return failureFromXhr(null, "The upload failed.");
      const status = original.getStatus();
      const apiError = errorFromResponse(status, "", parseJson(original.getBody()));
      if (status === 401) reportUnauthorized(apiError);
      return { status, message: apiError.message, retryable: status >= 500 || status === 409 || status === 423 || status === 429 };
    },
  };
}

/** The transport the runtime config asks for. */
export async function createUploadTransport(config: Pick<RuntimeConfig, "uploadTransport" | "tusChunkBytes">): Promise<UploadTransport> {
  return config.uploadTransport === "tus" ? createTusTransport(config) : createXhrTransport();
}
