import { join, resolve } from "node:path";
import { Readable, Transform, pipeline } from "node:stream";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";
import type { DataStore, Locker, Upload } from "@tus/utils";
import { v7 as uuidv7 } from "uuid";
import { ERRORS, JobId, objectKeys, toPublicJob, type ErrorCode, type TenantId } from "@docflow/contracts";
import { SNIFF_BYTES, refusalDetail, s3ClientConfig, sniffAhead, sniffContentType, type ObjectStore } from "@docflow/core";
import type { TokenRegistry } from "../auth.ts";
import type { GatewayConfig } from "../config.ts";
import { defaultFilename, enqueueJob, type EnqueueDependencies } from "../enqueue.ts";
import { cleanFilename } from "../ingest.ts";
import { answerAs } from "./request-scope.ts";
import { StreamingS3Store } from "./s3-store.ts";

export const TUS_PATH = "/v1/uploads";

/** Response header carrying the job id on the final PATCH (its body is the Job). */
export const JOB_ID_HEADER = "Docflow-Job-Id";

export interface TusDependencies extends EnqueueDependencies {
  config: GatewayConfig;
  tokens: TokenRegistry;
  store: ObjectStore;
  locker: Locker;
}

/** docflow codes for the statuses tus answers by itself. */
const TUS_STATUS_CODES: Record<number, ErrorCode> = {
  401: "unauthorized",
  404: "not_found",
  409: "upload_offset_mismatch",
  410: "upload_expired",
  412: "tus_version_required",
  413: "file_too_large",
  415: "unsupported_media_type",
};

const KEY_PATTERN = /^tenants\/([a-z0-9][a-z0-9_-]{0,62})\/jobs\/([0-9a-f-]{36})\/source$/;

/** tus error: thrown from hooks, written by @tus/server as the response. */
function problem(code: ErrorCode, detail?: string, status: number = ERRORS[code].status): { status_code: number; body: string } {
  const { title } = ERRORS[code];
  return { status_code: status, body: JSON.stringify({ type: `urn:docflow:problem:${code}`, title, status, detail: detail ?? title, code }) };
}

/** docflow's code for a status tus answers with. */
const tusCode = (status: number): ErrorCode => TUS_STATUS_CODES[status] ?? (status >= 500 ? "internal" : "validation_failed");

/**
 * A plain-text answer tus wrote by itself, before any hook ran (412 without
 * `Tus-Resumable`, 400 for an invalid header, 404 for a method it has no
 * handler for), as docflow's problem document: tus's words become the detail.
 */
export function tusTextAsProblem(status: number, text: string): string {
  return problem(tusCode(status), text.trim() || undefined, status).body;
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
export function createTusServer(deps: TusDependencies): Server {
  const { config } = deps;
  const datastore: DataStore =
    config.DOCFLOW_STORAGE === "s3"
      ? new StreamingS3Store({
          partSize: 8 * 1024 * 1024,
          // A streamed PATCH holds a part slot for as long as its body arrives: one per upload the replica admits.
          maxConcurrentPartUploads: config.DOCFLOW_MAX_UPLOADS,
          expirationPeriodInMilliseconds: config.DOCFLOW_UPLOAD_EXPIRATION_MS,
          s3ClientConfig: {
            bucket: config.DOCFLOW_S3_BUCKET,
            ...s3ClientConfig({
              region: config.AWS_REGION,
              endpoint: config.DOCFLOW_S3_ENDPOINT,
              credentials:
                config.AWS_ACCESS_KEY_ID && config.AWS_SECRET_ACCESS_KEY ? { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY } : undefined,
            }),
          },
        }, (message) => deps.log.debug({ message }, "object storage client warning"))
      : new FileStore({ directory: join(resolve(config.DOCFLOW_DATA_DIR), "objects"), expirationPeriodInMilliseconds: config.DOCFLOW_UPLOAD_EXPIRATION_MS });
  watchWrites(datastore, (n) => deps.metrics.uploadBytes.inc(n));

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
        // A retried final chunk (its answer was lost) gets the job again, as the first one did.
        const job = await deps.jobs.get(tenant, jobId!);
        if (job) throw { status_code: 200, body: JSON.stringify(toPublicJob(job.record)) };
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
        answerAs("application/problem+json");
        return problem("internal", "The upload could not be stored; retry it from the offset a HEAD request reports.");
      }
      // A 5xx is the gateway's or storage's fault, whoever phrased it: always in the log.
      if (err.status_code >= 500) deps.log.error({ status: err.status_code, detail: err.body.slice(0, 500) }, "upload request failed");
      // docflow's own answers (a problem, or the Job of a retried final PATCH) are JSON already.
      if (err.body.startsWith("{")) {
        answerAs(err.status_code < 400 ? "application/json" : "application/problem+json");
        return err;
      }
      // tus's own errors are plain text: give them docflow's problem shape and codes.
      answerAs("application/problem+json");
      return { status_code: err.status_code, body: problem(tusCode(err.status_code), err.body.trim()).body };
    },
  });
}

/**
 * Creates the job of a completed upload, exactly once: a retried final PATCH
 * finds the job already there and gets it back. The stored bytes are read once
 * to hash them and to judge their type again.
 */
async function finishUpload(deps: TusDependencies, upload: Upload) {
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
  datastore.write = (stream: Readable, id: string, offset: number) => {
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        onBytes(chunk.length);
        done(null, chunk);
      },
    });
    // The first bytes go through the sniffer; a refusal fails the write with its problem.
    const source = offset === 0 ? Readable.from(sniffAhead(stream, judge)) : stream;
    return write(pipeline(source, counted, () => {}), id, offset);
  };
}

function judge(head: Buffer): void {
  if (!sniffContentType(head)) throw problem("unsupported_media_type", refusalDetail(head));
}
