import { AsyncLocalStorage } from "node:async_hooks";
import type { IncomingMessage } from "node:http";

/** The media types of the JSON bodies docflow writes into tus's answers. */
export type AnswerType = "application/problem+json" | "application/json";

/** What the parts of the upload path (tus hooks, the S3 store) need to know of the request they serve. */
export interface UploadRequest {
  /** The body's declared length (undefined: chunked or absent). */
  readonly contentLength: number | undefined;
  /** Lookups made during this request (metadata, parts, staged part size). */
  readonly memo: Map<string, unknown>;
  /** Set when docflow wrote the answer's body itself (a problem document, a Job): its media type. */
  answerType?: AnswerType;
}

const scope = new AsyncLocalStorage<UploadRequest>();

/**
 * Runs `handle` with the upload request's scope: its declared length and a lookup memo that
 * never outlives the request (another replica may finish, terminate or expire the upload between
 * two requests).
 */
export function inUploadRequest<T>(req: Pick<IncomingMessage, "headers">, handle: (request: UploadRequest) => T): T {
  const header = req.headers["content-length"];
  const length = header === undefined ? Number.NaN : Number(header);
  const request: UploadRequest = { contentLength: Number.isSafeInteger(length) && length >= 0 ? length : undefined, memo: new Map() };
  return scope.run(request, () => handle(request));
}

/** The current request's memo (undefined outside an upload request: cleanup timers). */
export function requestMemo(): Map<string, unknown> | undefined {
  return scope.getStore()?.memo;
}

/** The current request's declared body length. */
export function requestContentLength(): number | undefined {
  return scope.getStore()?.contentLength;
}

/** Notes that the current request's answer carries a body docflow wrote, of this media type. */
export function answerAs(type: AnswerType): void {
  const request = scope.getStore();
  if (request) request.answerType = type;
}
