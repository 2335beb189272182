import type { Job } from "@docflow/contracts";
import type { Body, Meta, Uppy } from "@uppy/core";
import { API_BASE, authorizationHeader, errorFromResponse, reportUnauthorized } from "@/api/client";
import type { RuntimeConfig } from "@/config";
import { UploadSpans } from "@/telemetry/uploadSpans";

export type UploadUppy = Uppy<Meta, Body>;

/** What went wrong with one upload, for people; `retryable` when trying again may help. */
export interface UploadFailure {
  message: string;
  status: number;
  retryable: boolean;
}

/** What the transport tells the uploader beyond Uppy's own events. */
export interface UploadTransportEvents {
  /**
   * The upload of `fileId` goes on from `offset` bytes the server already has: after a page
   * reload (the same file picked again), a dropped connection or a retry.
   */
  resumed?(fileId: string, offset: number): void;
}

/**
 * How files travel to the gateway: resumable tus uploads. The upload panel talks to Uppy only;
 * the Uppy uploader plugin that does the work, and how its answers are read, live here.
 */
export interface UploadTransport {
  /** Adds the uploader plugin to `uppy`. */
  install(uppy: UploadUppy, events?: UploadTransportEvents): void;
  /** Sends the uploads that start from now on in chunks of `bytes` (those in flight keep theirs). */
  setChunkBytes(uppy: UploadUppy, bytes: number): void;
  /**
   * Stops the uploads in flight without ending them on the server, before `uppy` is destroyed
   * (the upload panel goes away): a resumable upload can then go on when the file is picked again.
   */
  detach(uppy: UploadUppy): void;
  /** The job a finished upload created, when the answer carries it (otherwise live events bring it). */
  jobFromSuccess(response: { body?: unknown }): Job | null;
  /** The id of that job, also when the answer carries only the id (an upload found finished on resuming). */
  jobIdFromSuccess(response: { body?: unknown }): string | null;
  /** Turns the error of Uppy's `upload-error` into a message for people. */
  describeFailure(error: unknown): UploadFailure;
}

const TUS_PLUGIN_ID = "docflow-tus";

function looksLikeJob(value: unknown): value is Job {
  return typeof value === "object" && value !== null && typeof (value as Job).id === "string" && typeof (value as Job).status === "string" && typeof (value as Job).filename === "string";
}

function parseJson(text: string | undefined | null): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function isXhr(value: unknown): value is XMLHttpRequest {
  return typeof XMLHttpRequest !== "undefined" && value instanceof XMLHttpRequest;
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
 * Resumable tus 1.0.0 uploads to `/v1/uploads`, in chunks of `tusChunkBytes` (read when the
 * plugin is installed; `setChunkBytes` follows later changes). The plugin is loaded on first use,
 * so it is not in the first bundle.
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
    setChunkBytes(uppy, bytes) {
      // The plugin reads its options each time an upload starts.
      uppy.getPlugin(TUS_PLUGIN_ID)?.setOptions({ chunkSize: bytes });
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
      // No answer at all: the request never reached the gateway, or its answer never came back.
      if (!original) return { status: 0, retryable: true, message: "The upload was interrupted. Check your connection and try again." };
      const status = original.getStatus();
      const apiError = errorFromResponse(status, "", parseJson(original.getBody()));
      if (status === 401) reportUnauthorized(apiError);
      return { status, message: apiError.message, retryable: status >= 500 || status === 409 || status === 423 || status === 429 };
    },
  };
}
