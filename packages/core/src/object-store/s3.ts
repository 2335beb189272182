import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Readable } from "node:stream";
import { assertValidKey, type ObjectStore, type PutOptions, type StoredObject } from "./types.ts";

export interface S3StoreOptions {
  bucket: string;
  /** Custom endpoint for S3-compatible servers (path-style addressing is used then). */
  endpoint?: string | undefined;
  region: string;
  /** Explicit credentials; otherwise the SDK's default chain (env, web identity, IMDS...). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Multipart part size in bytes; memory per upload is about partSize * queueSize. */
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
    this.#partSize = options.partSize ?? 8 * 1024 * 1024;
    this.#queueSize = options.queueSize ?? 2;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: 3,
    });
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<{ size: number }> {
    assertValidKey(key);
    let size = 0;
    let input: Readable | Buffer = body;
    if (Buffer.isBuffer(body)) {
      size = body.length;
    } else {
      input = body.map((chunk: Buffer) => {
        size += chunk.length;
        return chunk;
      }, { concurrency: 1 });
    }
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: input, ContentType: options.contentType },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort().catch(() => {});
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      options.signal?.throwIfAborted();
      await upload.done();
    } catch (err) {
      if (!Buffer.isBuffer(input)) input.destroy();
      throw options.signal?.aborted ? options.signal.reason : err;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    return { size };
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
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) {
        const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }));
        if (out.Errors && out.Errors.length > 0) {
          throw new Error(`S3 refused to delete ${out.Errors.length} objects under ${prefix}: ${out.Errors[0]?.Code}`);
        }
        count += keys.length;
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
