import { Router } from "express";
import { v7 as uuidv7 } from "uuid";
import { DocflowError, objectKeys } from "@docflow/contracts";
import type { AppContext } from "../context.ts";
import { defaultFilename, enqueueJob } from "../enqueue.ts";
import { cleanFilename, ingest, ingestMultipart, type Ingested } from "../ingest.ts";
import { jobLocation, sendJob } from "./jobs.ts";

/** Multipart framing allowance on top of the file limit when judging Content-Length. */
const MULTIPART_OVERHEAD = 1024 * 1024;

/**
 * `POST /v1/documents`: one streamed upload (raw body with `?filename=`, or the
 * multipart field `file`). Answers 202 with the queued Job.
 */
export function documentsRouter(ctx: AppContext): Router {
  const router = Router();

  router.post("/v1/documents", async (req, res) => {
    if (ctx.draining()) throw new DocflowError("not_ready", "The server is shutting down; retry on another instance.");
    const tenant = res.locals.tenant as string;
    const limit = ctx.config.DOCFLOW_MAX_UPLOAD_BYTES;
    const multipart = /^multipart\/form-data/i.test(req.headers["content-type"] ?? "");
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    if (declared > limit + (multipart ? MULTIPART_OVERHEAD : 0)) {
      throw new DocflowError("file_too_large", `The file is larger than the limit of ${limit} bytes.`, { extra: { limit } });
    }
    if (declared === 0) throw new DocflowError("empty_body", "The upload contained no bytes.");
    // A client that asked first (Expect: 100-continue) sends the body only now,
    // so an oversize upload above was refused before a byte of it travelled.
    if (req.headers.expect?.toLowerCase() === "100-continue") res.writeContinue();

    const id = uuidv7();
    const sourceKey = objectKeys.source(tenant, id);
    const aborted = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) aborted.abort(new DocflowError("upload_aborted"));
    });
    const options = {
      store: ctx.store,
      key: sourceKey,
      maxBytes: limit,
      signal: aborted.signal,
      onBytes: (n: number) => ctx.metrics.uploadBytes.inc(n),
    };
    const stored: Ingested & { filename?: string | undefined } = multipart ? await ingestMultipart(req, options) : await ingest(req, options);
    const filename = cleanFilename(multipart ? stored.filename : (req.query.filename as string | undefined), defaultFilename(stored.contentType));
    let created;
    try {
      created = await enqueueJob(ctx, { id, tenant, sourceKey, filename, contentType: stored.contentType, size: stored.size, sha256: stored.sha256 });
    } catch (err) {
      await ctx.store.delete(sourceKey).catch(() => {});
      throw new DocflowError("not_ready", "The job could not be recorded; nothing was kept. Retry shortly.", { cause: err });
    }
    res.status(202).location(jobLocation(id));
    sendJob(res, created);
  });

  return router;
}
