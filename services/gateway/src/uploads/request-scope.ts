import { AsyncLocalStorage } from "node:async_hooks";
import type { IncomingMessage, ServerResponse } from "node:http";

/** What the tus server's parts need to know of the request they serve. */
interface RequestScope {
  /** The body's declared length (undefined: chunked or absent). */
  contentLength: number | undefined;
  /** Lookups made during this request (metadata, parts, staged part size). */
  memo: Map<string, unknown>;
  /** The media type of a JSON body docflow gave this request's answer (tus labels every body text/plain). */
  answerType?: string;
}

const scope = new AsyncLocalStorage<RequestScope>();

/**
 * Runs one tus request with its declared length and a lookup memo in scope.
 * The memo never outlives the request: another replica may finish, terminate
 * or expire the upload between two requests. A body docflow wrote (a problem
 * document, a Job) is answered with its JSON media type, not tus's text/plain.
 */
export function inUploadRequest<T>(req: IncomingMessage, res: ServerResponse, handle: () => T): T {
  const header = req.headers["content-length"];
  const length = header === undefined ? Number.NaN : Number(header);
  const state: RequestScope = { contentLength: Number.isSafeInteger(length) && length >= 0 ? length : undefined, memo: new Map() };
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    const headers = args.at(-1);
    // srvx passes raw [name, value, ...] headers as the last argument.
    if (state.answerType && Array.isArray(headers)) {
      const at = headers.findIndex((h, i) => i % 2 === 0 && String(h).toLowerCase() === "content-type");
      if (at >= 0) headers[at + 1] = state.answerType;
      else headers.push("Content-Type", state.answerType);
    }
    return writeHead(...args);
  }) as typeof res.writeHead;
  return scope.run(state, handle);
}

/** The current request's memo (undefined outside a tus request: cleanup timers). */
export function requestMemo(): Map<string, unknown> | undefined {
  return scope.getStore()?.memo;
}

/** The current request's declared body length. */
export function requestContentLength(): number | undefined {
  return scope.getStore()?.contentLength;
}

/** Labels the current request's answer, whose body docflow wrote, with its JSON media type. */
export function answerAs(type: "application/problem+json" | "application/json"): void {
  const state = scope.getStore();
  if (state) state.answerType = type;
}
