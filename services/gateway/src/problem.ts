import type { ErrorRequestHandler, Request, RequestHandler, Response } from "express";
import { ZodError } from "zod";
import { DocflowError, ERRORS, isProblemCode, type Problem, type ProblemCode } from "@docflow/contracts";
import type { Logger } from "@docflow/telemetry";

/**
 * The problem document of `code`: its title from the catalog, `detail` (else the title) and the
 * catalog's status unless the answer has another (tus answers some statuses by itself).
 */
export function problemDocument(code: ProblemCode, detail?: string, status: number = ERRORS[code].status): Problem {
  const { title } = ERRORS[code];
  return { type: `urn:docflow:problem:${code}`, title, status, detail: detail ?? title, code };
}

/** Writes an RFC 9457 problem document with docflow's stable `code`, the request as its `instance`, then `extra`. */
export function sendProblem(res: Response, code: ProblemCode, detail?: string, extra?: Record<string, unknown>): void {
  const problem: Problem = { ...problemDocument(code, detail), instance: res.req.originalUrl, ...extra };
  res.status(ERRORS[code].status).type("application/problem+json").json(problem);
}

/** The one error middleware: catalog errors as they are, validation as 400, anything else as a logged 500. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) {
      // The answer was already under way (a page image or source being streamed): it cannot
      // become a problem document. A client that went away mid-download is routine; anything else
      // is logged. Either way the connection is cut, so the client sees a short body, not a whole one.
      const gone = (err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE" || req.destroyed;
      if (gone) log.debug({ path: req.path, method: req.method }, "client went away during the answer");
      else log.error({ err, path: req.path, method: req.method }, "error while answering");
      res.destroy();
      return;
    }
    // A refused upload: answer, and read (and drop) a bounded rest of the body so
    // the client gets to read the answer rather than a reset; past the bound the
    // connection is cut.
    if (!req.complete) discardRest(req);
    // A job-failure reason is never an HTTP answer: one thrown here is a bug, answered as below.
    if (err instanceof DocflowError && isProblemCode(err.code)) {
      if (ERRORS[err.code].status >= 500) log.warn({ err, path: req.path }, err.message);
      return sendProblem(res, err.code, err.message, err.extra);
    }
    if (err instanceof ZodError) {
      return sendProblem(res, "validation_failed", err.issues.map((i) => `${i.path.join(".") || "value"}: ${i.message}`).join("; "));
    }
    const status = (err as { status?: number; statusCode?: number }).status ?? (err as { statusCode?: number }).statusCode;
    if (status === 400 || status === 413) {
      return sendProblem(res, status === 413 ? "file_too_large" : "validation_failed", (err as Error).message);
    }
    log.error({ err, path: req.path, method: req.method }, "unhandled error");
    sendProblem(res, "internal");
  };
}

/**
 * Ends any request still running after `ms` with 408 `request_timeout`, so no
 * request outlives the edge's origin timeout whatever the file size. The
 * connection is closed, which also aborts an upload still streaming.
 */
export function requestDeadline(ms: number): RequestHandler {
  return (req, res, next) => {
    const timer = setTimeout(() => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.set("Connection", "close");
      sendProblem(res, "request_timeout", `The request did not finish within ${Math.round(ms / 1000)} s.`);
      res.once("finish", () => req.destroy());
    }, ms);
    timer.unref();
    res.once("close", () => clearTimeout(timer));
    next();
  };
}

/** Bytes and time a refused upload may still send before its connection is cut. */
const DISCARD_MAX_BYTES = 16 * 1024 * 1024;
const DISCARD_MAX_MS = 5000;

function discardRest(req: Request): void {
  let seen = 0;
  const timer = setTimeout(() => req.destroy(), DISCARD_MAX_MS);
  timer.unref();
  req.unpipe();
  req.on("data", (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > DISCARD_MAX_BYTES) req.destroy();
  });
  req.once("close", () => clearTimeout(timer));
  req.resume();
}
