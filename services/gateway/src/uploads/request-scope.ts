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
export function inUploadRequest<T>(req: IncomingMessage, res: ServerResponse, handle: () => T, textAsProblem?: (status: number, text: string) => string): T {
  const header = req.headers["content-length"];
  const length = header === undefined ? Number.NaN : Number(header);
  const state: RequestScope = { contentLength: Number.isSafeInteger(length) && length >= 0 ? length : undefined, memo: new Map() };
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    const headers = args.at(-1);
    const status = Number(args[0]);
    if (textAsProblem && state.answerType === undefined && status >= 400 && Array.isArray(headers)) {
      // An error tus answered by itself, in plain text: the same words, as a problem document.
      state.answerType = "application/problem+json";
      for (let i = headers.length - 2; i >= 0; i -= 2) if (String(headers[i]).toLowerCase() === "content-length") headers.splice(i, 2);
      rewriteBody(res, (text) => textAsProblem(status, text));
    }
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

/** Collects what is written to `res` and sends `rewrite(text)` instead, when it ends. */
function rewriteBody(res: ServerResponse, rewrite: (text: string) => string): void {
  const chunks: Buffer[] = [];
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  const take = (chunk: unknown) => {
    if (typeof chunk === "string") chunks.push(Buffer.from(chunk));
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    take(chunk);
    const done = rest.find((a) => typeof a === "function") as (() => void) | undefined;
    if (done) queueMicrotask(done);
    return true;
  }) as typeof res.write;
  res.end = ((...args: unknown[]) => {
    if (typeof args[0] !== "function") take(args[0]);
    const done = args.find((a) => typeof a === "function");
    const body = rewrite(Buffer.concat(chunks).toString("utf8"));
    return done ? end(body, done) : end(body);
  }) as typeof res.end;
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
