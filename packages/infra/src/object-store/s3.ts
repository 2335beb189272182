import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { Readable } from "node:stream";
import { assertValidKey, type ObjectStore, type PutOptions, type StoredObject } from "./types.ts";

export interface S3StoreOptions {
  bucket: string;
  /** Custom endpoint for S3-compatible servers (path-style addressing is used then). */
  endpoint?: string | undefined;
  region: string;
  /** Explicit credentials; otherwise the SDK's default chain (env, web identity, IMDS...). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Multipart part size in bytes (S3's minimum, 5 MiB, by default); memory per upload is about partSize * (queueSize + 1). */
  partSize?: number;
  queueSize?: number;
}

/** S3 and S3-compatible servers, through the official AWS SDK. */
export class S3ObjectStore implements ObjectStore {
  readonly kind = "s3";
  readonly client: S3Client;
  readonly bucket: string;
  readonly #partSize: number;
  readonly #queueSize: number;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.#partSize = Math.max(5 * 1024 * 1024, options.partSize ?? 5 * 1024 * 1024);
    this.#queueSize = options.queueSize ?? 2;
    this.client = new S3Client(s3ClientConfig(options));
    lightenPayloads(this.client);
    closeAfterChunkedBodies(this.client);
  }

  /**
   * Streams `body` to `key`: one PutObject for what fits in a part, else a
   * multipart upload. Parts are sent as the list of chunks that arrived (no
   * concatenation into one buffer) with at most `queueSize` in flight, and the
   * source is not read while the queue is full: memory per upload stays about
   * `partSize x (queueSize + 1)`, and no step holds the event loop for long.
   * (lib-storage's Upload concatenates each part into one buffer and hashes
   * it: tens of milliseconds of blocked event loop per 8 MiB part.)
   */
  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<{ size: number }> {
    assertValidKey(key);
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const common = { Bucket: this.bucket, Key: key, ContentType: options.contentType };
    const send = { abortSignal: abort.signal };
    let uploadId: string | undefined;
    const inflight = new Set<Promise<unknown>>();
    try {
      options.signal?.throwIfAborted();
      if (Buffer.isBuffer(body)) {
        await this.client.send(new PutObjectCommand({ ...common, Body: body, ContentLength: body.length }), send);
        return { size: body.length };
      }
      const parts: { PartNumber: number; ETag: string }[] = [];
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let size = 0;
      const sendPart = async (chunks: Buffer[], bytes: number) => {
        uploadId ??= (await this.client.send(new CreateMultipartUploadCommand(common), send)).UploadId;
        const PartNumber = parts.length + inflight.size + 1;
        const part = this.client
          .send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber, Body: Readable.from(chunks), ContentLength: bytes }), send)
          .then((out) => void parts.push({ PartNumber, ETag: out.ETag ?? "" }));
        inflight.add(part);
        part.then(
          () => inflight.delete(part),
          () => {},
        );
        if (inflight.size >= this.#queueSize) await Promise.race(inflight);
      };
      for await (const chunk of body as AsyncIterable<Buffer>) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        size += chunk.length;
        if (pendingBytes >= this.#partSize) {
          const [chunks, bytes] = [pending, pendingBytes];
          [pending, pendingBytes] = [[], 0];
          await sendPart(chunks, bytes);
        }
      }
      if (uploadId === undefined) {
        await this.client.send(new PutObjectCommand({ ...common, Body: Readable.from(pending), ContentLength: pendingBytes }), send);
        return { size };
      }
      if (pendingBytes > 0) await sendPart(pending, pendingBytes);
      await Promise.all(inflight);
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }), send);
      return { size };
    } catch (err) {
      abort.abort(err);
      await Promise.allSettled(inflight);
      if (uploadId) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => {});
      if (!Buffer.isBuffer(body)) body.destroy();
      throw options.signal?.aborted ? options.signal.reason : err;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  async get(key: string): Promise<StoredObject | null> {
    assertValidKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!(out.Body instanceof Readable)) throw new Error("S3 GetObject returned no stream body");
      return { body: out.Body, size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    assertValidKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async deletePrefix(prefix: string): Promise<number> {
    let count = 0;
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) {
        const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }));
        // A key removed between the listing and the delete (another remover, such as a processor
        // cleaning up a canceled job) is what this call wants: gone.
        const gone = (out.Errors ?? []).filter((e) => e.Code === "NoSuchKey").length;
        const refused = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
        if (refused.length > 0) {
          throw new Error(`S3 refused to delete ${refused.length} objects under ${prefix}: ${refused[0]?.Code} (${refused[0]?.Key})`);
        }
        count += keys.length - gone;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return count;
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  /** Creates the bucket if it does not exist (local and test setups; production buckets are provisioned). */
  async ensureBucket(): Promise<void> {
    try {
      await this.check();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (createErr) {
        // Another process (the gateway and a processor start together) won the race.
        if ((createErr as Error).name !== "BucketAlreadyOwnedByYou") throw createErr;
      }
    }
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === "NoSuchKey" || err.name === "NotFound" || err.name === "NoSuchBucket");
}

/** S3 client settings shared by the object store and the tus S3 store. */
export function s3ClientConfig(options: Pick<S3StoreOptions, "region" | "endpoint" | "credentials">) {
  return {
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 3,
    // No whole-body CRC32 per request: computing it blocks the event loop for
    // every part; integrity rides on TLS and S3's own MD5/ETag checks.
    requestChecksumCalculation: "WHEN_REQUIRED" as const,
    responseChecksumValidation: "WHEN_REQUIRED" as const,
  };
}

/**
 * Signs requests with `UNSIGNED-PAYLOAD` instead of hashing each body (SigV4's
 * payload hash is one synchronous SHA-256 over the whole part on the event
 * loop). The headers, and so the request, stay signed.
 */
export function lightenPayloads(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (request.headers && request.body !== undefined && !Buffer.isBuffer(request.body) && typeof request.body !== "string") {
        request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
      }
      return next(args);
    },
    { step: "build", name: "docflowUnsignedPayload" },
  );
}

/**
 * Sends `Connection: close` with every request whose body goes out with
 * `Transfer-Encoding: chunked` (a stream of unknown length, or a part with a
 * trailing checksum, which the SDK frames as aws-chunked inside HTTP chunks),
 * so its connection is not reused. An S3 server may answer such a request once
 * it has read the aws-chunked trailer, before the HTTP chunked terminator that
 * follows: versitygw 1.8 does, and leaves those bytes unread, so the next
 * request on the kept-alive connection failed with 400 "An error occurred when
 * parsing the HTTP request" (a streamed tus PATCH, then the final PATCH's
 * request, in 2 of 80 tries against the container). A new connection per
 * streamed part costs nothing next to the part; every other request keeps its
 * connection.
 */
export function closeAfterChunkedBodies(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      const headers = request.headers;
      if (headers && isStream(request.body)) {
        const chunked = /chunked/i.test(headerValue(headers, "transfer-encoding") ?? "") || headerValue(headers, "content-length") === undefined;
        if (chunked) headers["connection"] = "close";
      }
      return next(args);
    },
    // After the checksum middleware (build step) has chosen the framing.
    { step: "finalizeRequest", name: "docflowCloseAfterChunkedBodies" },
  );
}

function isStream(body: unknown): boolean {
  return typeof body === "object" && body !== null && typeof (body as { pipe?: unknown }).pipe === "function";
}

function headerValue(headers: Record<string, string>, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}
