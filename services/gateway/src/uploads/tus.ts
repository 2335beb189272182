import type { IncomingMessage, ServerResponse } from "node:http";
import { join, resolve } from "node:path";
import { Readable, Transform, pipeline } from "node:stream";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";
import type { DataStore, Locker, Upload } from "@tus/utils";
import { v7 as uuidv7 } from "uuid";
import { JobId, objectKeys, toPublicJob, type Job, type ProblemCode, type TenantId } from "@docflow/contracts";
import { SNIFF_BYTES, refusalDetail, s3ClientConfig, sniffAhead, sniffContentType, type ObjectStore } from "@docflow/infra";
import type { TokenRegistry } from "../auth.ts";
import type { GatewayConfig } from "../config.ts";
import { defaultFilename, enqueueJob, type EnqueueDependencies } from "../enqueue.ts";
import { cleanFilename } from "../ingest.ts";
import { problemDocument } from "../problem.ts";
import { answerAs, inUploadRequest } from "./request-scope.ts";
import { StreamingS3Store } from "./s3-store.ts";

/*
 * The gateway's resumable uploads, behind one seam: the rest of the gateway sees `Uploads`. This
 * module is the only one that knows @tus/server (its hooks, how it writes its answers) and builds
 * the tus data stores; ./s3-store.ts is the only one that knows @tus/s3-store's internals. What
 * they rely on is pinned by tus-internals.test.ts (code) and tus.test.ts / s3-store.test.ts (behaviour).
 */

export const TUS_PATH = "/v1/uploads";

/** Response header carrying the job id on the final PATCH (its body is the Job). */
export const JOB_ID_HEADER = "Docflow-Job-Id";

/** Resumable uploads (tus 1.0.0) at `TUS_PATH`, as the rest of the gateway uses them. */
export interface Uploads {
  /**
   * Answers one request under `TUS_PATH` (creation, HEAD, PATCH, DELETE, OPTIONS), scoped to the
   * caller's tenant; every refusal is a docflow problem document. Resolves once the answer is
   * written; never rejects.
   */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Removes the uploads that expired unfinished; resolves with how many. */
  cleanUpExpired(): Promise<number>;
}

export interface UploadDependencies extends EnqueueDependencies {
  config: GatewayConfig;
  tokens: TokenRegistry;
  store: ObjectStore;
  /** Upload locks, shared by every replica that serves the uploads. */
  locker: Locker;
}

/**
 * The tus 1.0.0 server at `/v1/uploads` (creation, creation-with-upload,
 * termination, expiration). Upload ids are the source's object key, so a
 * finished upload is already where the processor reads it; in URLs the key is
 * base64url-encoded. Every request is scoped to the caller's tenant; the
 * first bytes are sniffed as they arrive and again when the upload completes;
 * completion creates the job exactly once and answers with it (its sha256 is
 * null until the processor has read the source).
 */
export function createUploads(deps: UploadDependencies): Uploads {
  const datastore = createDatastore(deps);
  const server = createTusServer(deps, datastore);
  return {
    handle: (req, res) =>
      inUploadRequest(req, async (request) => {
        reviseAnswer(res, (status) => {
          if (request.answerType) return { contentType: request.answerType };
          // An error tus answered by itself, in plain text, before any hook ran (412 without
          // Tus-Resumable, 400 for an invalid header, 404 for a method it has no handler for).
          if (status >= 400) return { contentType: PROBLEM_JSON, body: (text) => tusTextAsProblem(status, text) };
          return undefined;
        });
        try {
          await server.handle(req, res);
        } catch (err) {
          // Only a failure to send the answer gets here (tus answers every other error itself).
          deps.log.error({ err }, "upload request failed");
          res.destroy();
        }
      }),
    cleanUpExpired: () => server.cleanUpExpiredUploads(),
  };
}

const PROBLEM_JSON = "application/problem+json";

/** docflow codes for the statuses tus answers by itself. */
const TUS_STATUS_CODES: Record<number, ProblemCode> = {
  401: "unauthorized",
  404: "not_found",
  409: "upload_offset_mismatch",
  410: "upload_expired",
  412: "tus_version_required",
  413: "file_too_large",
  415: "unsupported_media_type",
};

const KEY_PATTERN = /^tenants\/([a-z0-9][a-z0-9_-]{0,62})\/jobs\/([0-9a-f-]{36})\/source$/;

/**
 * An answer a hook gives instead of tus's. A hook that throws `{status_code, body}` has tus
 * answer with exactly that (@tus/server's documented contract for its hooks; `onResponseError`
 * sees it first). The body is JSON docflow wrote: a problem document, or a Job.
 */
class HookAnswer {
  readonly status_code: number;
  readonly body: string;

  constructor(status: number, body: string) {
    this.status_code = status;
    this.body = body;
  }
}

/** A refusal, as docflow's problem document. */
function problem(code: ProblemCode, detail?: string, status?: number): HookAnswer {
  const document = problemDocument(code, detail, status);
  return new HookAnswer(document.status, JSON.stringify(document));
}

/** docflow's code for a status tus answers with. */
const tusCode = (status: number): ProblemCode => TUS_STATUS_CODES[status] ?? (status >= 500 ? "internal" : "validation_failed");

/** A plain-text answer of tus as docflow's problem document: tus's words become the detail. */
function tusTextAsProblem(status: number, text: string): string {
  return problem(tusCode(status), text.trim() || undefined, status).body;
}

function createDatastore(deps: UploadDependencies): DataStore {
  const { config } = deps;
  const datastore: DataStore =
    config.DOCFLOW_STORAGE === "s3"
      ? new StreamingS3Store(
          {
            partSize: 8 * 1024 * 1024,
            // A streamed PATCH holds a part slot for as long as its body arrives: one per upload the replica admits.
            maxConcurrentPartUploads: config.DOCFLOW_MAX_UPLOADS,
            expirationPeriodInMilliseconds: config.DOCFLOW_UPLOAD_EXPIRATION_MS,
            s3ClientConfig: {
              bucket: config.DOCFLOW_S3_BUCKET,
              ...s3ClientConfig({
                region: config.AWS_REGION,
                endpoint: config.DOCFLOW_S3_ENDPOINT,
                credentials: config.AWS_ACCESS_KEY_ID && config.AWS_SECRET_ACCESS_KEY ? { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY } : undefined,
              }),
            },
          },
          (message) => deps.log.debug({ message }, "object storage client warning"),
        )
      : new FileStore({ directory: join(resolve(config.DOCFLOW_DATA_DIR), "objects"), expirationPeriodInMilliseconds: config.DOCFLOW_UPLOAD_EXPIRATION_MS });
  watchWrites(datastore, (n) => deps.metrics.uploadBytes.inc(n));
  return datastore;
}

function createTusServer(deps: UploadDependencies, datastore: DataStore): Server {
  const { config } = deps;
  const callerTenant = (req: Request): TenantId => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
    const tenant = match?.[1] ? deps.tokens.tenantFor(match[1]) : undefined;
    if (!tenant) throw problem("unauthorized");
    return tenant;
  };

  return new Server({
    path: TUS_PATH,
    datastore,
    locker: deps.locker,
    maxSize: config.DOCFLOW_MAX_UPLOAD_BYTES,
    relativeLocation: true,
    // Same-origin only: the web app is served with the API.
    allowedOrigins: [],
    disableTerminationForFinishedUploads: true,
    namingFunction: (req) => objectKeys.source(callerTenant(req), uuidv7()),
    generateUrl: (_req, { path, id }) => `${path}/${Buffer.from(id).toString("base64url")}`,
    getFileIdFromRequest: (_req, lastPath) => {
      const key = lastPath ? Buffer.from(lastPath, "base64url").toString("utf8") : "";
      return KEY_PATTERN.test(key) ? key : undefined;
    },
    onIncomingRequest: async (req, id) => {
      const [, tenant, jobId] = KEY_PATTERN.exec(id) ?? [];
      // Another tenant's upload does not exist, as far as this caller can tell.
      if (tenant !== callerTenant(req)) throw problem("not_found", "No such upload.");
      if (req.method === "PATCH") {
        // A retried final chunk (its answer was lost) gets the job again, as the first one did:
        // answered here, before tus would refuse its offset.
        const job = await deps.jobs.get(tenant, jobId!);
        if (job) throw new HookAnswer(200, JSON.stringify(toPublicJob(job.record)));
      }
      if (req.method === "HEAD" && !(await deps.jobs.get(tenant, jobId!))) {
        // The final PATCH stored the last bytes, then failed before the job existed (the job store
        // or storage refused), or its answer was lost: clients resume with a HEAD, and one that
        // finds every byte there takes the upload as done. So the HEAD makes the job, as the final
        // PATCH would have (exactly once; the client finds its id in the upload's metadata).
        const upload = await datastore.getUpload(id).catch(() => undefined);
        if (upload?.size !== undefined && upload.offset === upload.size) await finishUpload(deps, upload);
      }
    },
    onUploadCreate: async (_req, upload) => {
      if (upload.size === undefined) throw problem("validation_failed", "Upload-Length is required (deferred length is not supported).");
      if (upload.size === 0) throw problem("empty_body", "The upload is empty.");
      // tus-js-client sends filename/filetype; Uppy also name/type.
      const type = upload.metadata?.filetype ?? upload.metadata?.type ?? "";
      if (type && !/^application\/(pdf|vnd\.openxmlformats-officedocument\.presentationml\.presentation|octet-stream)$/.test(type)) {
        throw problem("unsupported_media_type", `Files of type ${type} are not accepted: only PDF and PowerPoint (PPTX).`);
      }
      const jobId = KEY_PATTERN.exec(upload.id)?.[2] ?? "";
      return { metadata: { ...upload.metadata, jobId } };
    },
    onUploadFinish: async (req, upload) => {
      const job = await finishUpload(deps, upload);
      return {
        // 201 stays for creation-with-upload; a final PATCH carries the job as 200.
        status_code: req.method === "POST" ? 201 : 200,
        headers: { "Content-Type": "application/json", [JOB_ID_HEADER]: job.id, "Docflow-Job-Location": `/v1/jobs/${job.id}` },
        body: JSON.stringify(job),
      };
    },
    onResponseError: (_req, err) => {
      if (!("status_code" in err)) {
        deps.log.error({ err }, "upload request failed");
        answerAs(PROBLEM_JSON);
        return problem("internal", "The upload could not be stored; retry it from the offset a HEAD request reports.");
      }
      // A 5xx is the gateway's or storage's fault, whoever phrased it: always in the log.
      if (err.status_code >= 500) deps.log.error({ status: err.status_code, detail: err.body.slice(0, 500) }, "upload request failed");
      // docflow's own answers (a refusal, or the Job of a retried final PATCH) are JSON already.
      if (err instanceof HookAnswer) {
        answerAs(err.status_code < 400 ? "application/json" : PROBLEM_JSON);
        return err;
      }
      // tus's own errors are plain text: give them docflow's problem shape and codes.
      answerAs(PROBLEM_JSON);
      return { status_code: err.status_code, body: tusTextAsProblem(err.status_code, err.body) };
    },
  });
}

/**
 * Creates the job of a completed upload, exactly once: a retried final PATCH
 * finds the job already there and gets it back. Only the head of the stored
 * bytes is read back, to judge their type again.
 */
async function finishUpload(deps: UploadDependencies, upload: Upload): Promise<Job> {
  const [, tenant, jobId] = KEY_PATTERN.exec(upload.id) ?? [];
  if (!tenant || !JobId.safeParse(jobId).success) throw problem("not_found");
  const existing = await deps.jobs.get(tenant, jobId!);
  if (existing) return toPublicJob(existing.record);

  // Only the head is read back (to judge the type again): reading or hashing
  // the whole object here would make the final PATCH as slow as the file is big.
  // The processor records the SHA-256 as it reads the source.
  const object = await deps.store.get(upload.id);
  if (!object) throw problem("internal", "The finished upload could not be read back.");
  let head = Buffer.alloc(0);
  for await (const chunk of object.body as AsyncIterable<Buffer>) {
    head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)]);
    if (head.length >= SNIFF_BYTES) break;
  }
  object.body.destroy();
  const contentType = sniffContentType(head);
  if (!contentType) {
    await deps.store.delete(upload.id).catch(() => {});
    throw problem("unsupported_media_type", refusalDetail(head));
  }
  try {
    const created = await enqueueJob(deps, {
      id: jobId!,
      tenant,
      sourceKey: upload.id,
      filename: cleanFilename(upload.metadata?.filename ?? upload.metadata?.name ?? undefined, defaultFilename(contentType)),
      contentType,
      size: upload.size ?? object.size,
      sha256: null,
    });
    return toPublicJob(created.record);
  } catch (err) {
    // A concurrent final PATCH created it first.
    const raced = await deps.jobs.get(tenant, jobId!);
    if (raced) return toPublicJob(raced.record);
    throw err;
  }
}

/**
 * Judges the first bytes of an upload as they arrive (the first PATCH, or the
 * body of creation-with-upload), so a file that is not a PDF or PPTX is
 * refused before more of it is stored; counts every byte received.
 */
function watchWrites(datastore: DataStore, onBytes: (n: number) => void): void {
  const write = datastore.write.bind(datastore);
  datastore.write = async (stream: Readable, id: string, offset: number) => {
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        onBytes(chunk.length);
        done(null, chunk);
      },
    });
    let refusal: HookAnswer | undefined;
    const judge = (head: Buffer) => {
      if (!sniffContentType(head)) throw (refusal = problem("unsupported_media_type", refusalDetail(head)));
    };
    // The first bytes go through the sniffer; a refusal fails the write with its problem,
    // whatever error the store makes of it (the file store reports any failed write as its own 500).
    const source = offset === 0 ? Readable.from(sniffAhead(stream, judge)) : stream;
    try {
      return await write(
        pipeline(source, counted, () => {}),
        id,
        offset,
      );
    } catch (err) {
      throw refusal ?? err;
    }
  };
}

/** A revision of the answer tus writes: another media type and, optionally, another body made from tus's. */
export interface AnswerRevision {
  contentType: string;
  body?: (text: string) => string;
}

/**
 * Revises the one answer @tus/server writes to `res`: `revise(status)` may give it another
 * Content-Type and, optionally, a body made from the one tus wrote (Content-Length dropped, the
 * new body sent chunked).
 *
 * tus labels every body it writes text/plain, docflow's JSON included, and answers some errors
 * in plain text before any hook runs. Neither @tus/server nor Node offers a supported way to
 * change that: `onResponseError` may set a status and a body but no header, and those early
 * answers reach no hook at all; headers set on `res` beforehand lose to the ones tus passes to
 * `writeHead`, and 'finish' comes after the head is sent. So this one function wraps
 * `res.writeHead` (and, for a new body, `write` and `end`) of this response only.
 *
 * It relies on how @tus/server sends its web Response (srvx's sendNodeResponse): one
 * `writeHead(status, statusText, [name, value, ...])` call, then the body. A `writeHead` in any
 * other form passes untouched. tus.test.ts pins the answers that depend on it, and
 * tus-internals.test.ts fingerprints `Server.handle`.
 */
export function reviseAnswer(res: ServerResponse, revise: (status: number) => AnswerRevision | undefined): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    const headers = args.at(-1);
    const revision = Array.isArray(headers) ? revise(Number(args[0])) : undefined;
    if (revision && Array.isArray(headers)) {
      const named = (name: string) => (h: unknown, i: number) => i % 2 === 0 && String(h).toLowerCase() === name;
      const at = headers.findIndex(named("content-type"));
      if (at >= 0) headers[at + 1] = revision.contentType;
      else headers.push("Content-Type", revision.contentType);
      if (revision.body) {
        for (let i = headers.length - 2; i >= 0; i -= 2) if (named("content-length")(headers[i], i)) headers.splice(i, 2);
        rewriteBody(res, revision.body);
      }
    }
    return writeHead(...args);
  }) as typeof res.writeHead;
}

/** Collects what is written to `res` and sends `rewrite(text)` instead, when it ends (part of reviseAnswer). */
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
    if (done) process.nextTick(done);
    return true;
  }) as typeof res.write;
  res.end = ((...args: unknown[]) => {
    if (typeof args[0] !== "function") take(args[0]);
    const done = args.find((a) => typeof a === "function");
    const body = rewrite(Buffer.concat(chunks).toString("utf8"));
    return done ? end(body, done) : end(body);
  }) as typeof res.end;
}
