import type { Job } from "@docflow/contracts";
import type { Body, Meta, Uppy } from "@uppy/core";
import XHRUpload from "@uppy/xhr-upload";
import { API_BASE, authorizationHeader, errorFromResponse, reportUnauthorized } from "@/api/client";
import type { RuntimeConfig, UploadTransportKind } from "@/config";
import { UploadSpans } from "@/telemetry/uploadSpans";

export type UploadUppy = Uppy<Meta, Body>;

/** What went wrong with one upload, for people; `retryable` when trying again may help. */
export interface UploadFailure {
  message: string;
  status: number;
  retryable: boolean;
}

/** What a transport tells the uploader beyond Uppy's own events. */
export interface UploadTransportEvents {
  /**
   * The upload of `fileId` goes on from `offset` bytes the server already has: after a page
   * reload (the same file picked again), a dropped connection or a retry.
   */
  resumed?(fileId: string, offset: number): void;
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
  install(uppy: UploadUppy, events?: UploadTransportEvents): void;
  /** Removes it again. */
  uninstall(uppy: UploadUppy): void;
  /**
   * Stops the uploads in flight without ending them on the server, before `uppy` is destroyed
   * (the upload panel goes away): a resumable upload can then go on when the file is picked again.
   */
  detach(uppy: UploadUppy): void;
  /** The job a finished upload created, when the answer carries it (otherwise live events bring it). */
  jobFromSuccess(response: { body?: unknown }): Job | null;
  /** The id of that job, also when the answer carries only the id (a tus upload found finished on resuming). */
  jobIdFromSuccess(response: { body?: unknown }): string | null;
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
    detach() {
      // Nothing to keep: a POST cannot go on later.
    },
    jobFromSuccess(response) {
      return looksLikeJob(response.body) ? response.body : null;
    },
    jobIdFromSuccess(response) {
      return looksLikeJob(response.body) ? response.body.id : null;
    },
    describeFailure(error, response) {
      const fallback = error instanceof Error ? error.message : "The upload failed.";
      const xhr = isXhr(response) ? response : isXhr((error as { request?: unknown })?.request) ? (error as { request: XMLHttpRequest }).request : null;
      return failureFromXhr(xhr, fallback);
    },
  };
}

/**
 * Waits between retries of a failed tus request (ms). tus-js-client starts again from the first
 * delay once a retry has made progress, so these add up only while nothing gets through: about
 * 2 minutes before an upload is reported failed (when the browser knows it is offline, the
 * upload waits for the connection instead and does not use them up). A failed upload can then be
 * retried by hand, and it resumes too.
 */
export const TUS_RETRY_DELAYS: readonly number[] = [0, 1_000, 3_000, 5_000, 10_000, 20_000, 30_000, 60_000];

/**
 * How long to wait after a 429: the `Retry-After` seconds (at most a minute), else the
 * retry delay for this attempt.
 */
export function retryAfterMs(header: string | undefined, retryAttempt: number): number {
  const seconds = Number(header);
  if (header && Number.isFinite(seconds) && seconds > 0) return Math.min(seconds, 60) * 1000;
  return TUS_RETRY_DELAYS[Math.min(retryAttempt, TUS_RETRY_DELAYS.length - 1)] ?? 1000;
}

/** `Upload-Metadata` (`key base64value,...`) as a record. */
function parseUploadMetadata(header: string | null): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const pair of (header ?? "").split(",")) {
    const [key, value] = pair.trim().split(" ");
    if (!key) continue;
    try {
      metadata[key] = value ? new TextDecoder().decode(Uint8Array.from(atob(value), (c) => c.charCodeAt(0))) : "";
    } catch {
      // Not base64: not ours.
    }
  }
  return metadata;
}

/** The job id in the answer that finished a tus upload. */
function tusJobId(response: { body?: unknown }): string | null {
  const xhr = (response.body as { xhr?: unknown } | undefined)?.xhr;
  if (!isXhr(xhr)) return null;
  const body = parseJson(xhr.responseText);
  if (looksLikeJob(body)) return body.id;
  // The final PATCH names it in a header; a HEAD that found the upload finished (the
  // final answer was lost) in the upload's metadata.
  const id = xhr.getResponseHeader("Docflow-Job-Id") ?? parseUploadMetadata(xhr.getResponseHeader("Upload-Metadata")).jobId;
  return id || null;
}

/**
 * Resumable tus 1.0.0 uploads to `/v1/uploads`, in chunks of `tusChunkBytes`.
 * The plugin is loaded only when this transport is chosen.
 *
 * Resuming: tus-js-client keeps each upload's URL in localStorage under a fingerprint of the
 * file (Uppy's file id, made of the Uppy instance id, the file's name, type, size and
 * modification time, and the endpoint), until the upload succeeds or is canceled. The same file
 * picked again, after a reload too, continues where the server is (a `HEAD` for its offset, then
 * `PATCH` from there). So the endpoint and the Uppy id must stay the same from page to page.
 */
export async function createTusTransport(config: Pick<RuntimeConfig, "tusChunkBytes">): Promise<UploadTransport> {
  const { default: Tus } = await import("@uppy/tus");
  return {
    kind: "tus",
    install(uppy, events = {}) {
      // Which file each request is for: tus-js-client's own callbacks do not say.
      const fileOfRequest = new WeakMap<object, string>();
      // Every request of one upload in one trace, under the upload's span.
      const spans = new UploadSpans();
      uppy.on("upload-success", (file, response) => file && spans.end(file.id, { jobId: tusJobId(response) }));
      uppy.on("upload-error", (file, error) => file && spans.end(file.id, { error: error.message }));
      uppy.on("file-removed", (file) => spans.end(file.id, { error: "canceled" }));
      uppy.use(Tus, {
        id: TUS_PLUGIN_ID,
        endpoint: `${API_BASE}/uploads`,
        chunkSize: config.tusChunkBytes,
        limit: 3,
        retryDelays: [...TUS_RETRY_DELAYS],
        removeFingerprintOnSuccess: true,
        allowedMetaFields: ["name", "type"],
        onShouldRetry(error, retryAttempt, _options, next) {
          const response = error.originalResponse;
          // Too many uploads at once: the queue pauses for as long as the gateway's Retry-After
          // says (and lowers its concurrency), before Uppy's own handling sees the error. Uppy's
          // would ignore the header and pause by the next of its retry delays, an iterator
          // shared by the whole plugin: after the 8th 429 of a session it failed every upload.
          // Paused already, Uppy takes nothing from it and only queues the request again.
          if (response?.getStatus() === 429) {
            const plugin = uppy.getPlugin(TUS_PLUGIN_ID) as InstanceType<typeof Tus> | undefined;
            if (plugin && !plugin.requests.isPaused) plugin.requests.rateLimit(retryAfterMs(response.getHeader("Retry-After"), retryAttempt));
          }
          return next(error);
        },
        async onBeforeRequest(request, file) {
          fileOfRequest.set(request, file.id);
          const headers = { ...(await authorizationHeader()), ...spans.headersFor(file.id, file.name ?? "file", file.size ?? null) };
          for (const [name, value] of Object.entries(headers)) request.setHeader(name, value);
        },
        onAfterResponse(request, response) {
          // A HEAD is how tus-js-client asks where to go on (a stored upload, a retry).
          if (request.getMethod() !== "HEAD" || response.getStatus() < 200 || response.getStatus() >= 300) return;
          const fileId = fileOfRequest.get(request);
          const offset = Number(response.getHeader("Upload-Offset"));
          if (fileId && Number.isSafeInteger(offset) && offset > 0) events.resumed?.(fileId, offset);
        },
      });
    },
    uninstall(uppy) {
      const plugin = uppy.getPlugin(TUS_PLUGIN_ID);
      if (plugin) uppy.removePlugin(plugin);
    },
    detach(uppy) {
      // Destroying Uppy cancels every file, and the tus plugin ends (DELETE) a canceled upload
      // and forgets it. Dropping its references first only aborts the requests: the upload
      // stays on the server (until it expires) and in localStorage, ready to resume.
      const plugin = uppy.getPlugin(TUS_PLUGIN_ID) as InstanceType<typeof Tus> | undefined;
      if (!plugin) return;
      for (const fileId of Object.keys(plugin.uploaders)) plugin.resetUploaderReferences(fileId);
    },
    jobFromSuccess(response) {
      // The final PATCH may answer with the Job as JSON.
      const xhr = (response.body as { xhr?: unknown } | undefined)?.xhr;
      const body = isXhr(xhr) ? parseJson(xhr.responseText) : null;
      return looksLikeJob(body) ? body : null;
    },
    jobIdFromSuccess: tusJobId,
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
