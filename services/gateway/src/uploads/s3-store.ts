import { Transform, type Readable } from "node:stream";
import { S3Store } from "@tus/s3-store";
import type { KvStore } from "@tus/utils";
import { closeAfterChunkedBodies, lightenPayloads } from "@docflow/infra";
import { requestContentLength, requestMemo } from "./request-scope.ts";

/** The S3 store's metadata cache, for the length of one request. */
const requestCache: KvStore<never> = {
  get: async (key) => requestMemo()?.get(`info:${key}`) as never,
  set: async (key, value) => void requestMemo()?.set(`info:${key}`, value),
  delete: async (key) => void requestMemo()?.delete(`info:${key}`),
};

type Part = { PartNumber?: number; ETag?: string; ChecksumCRC32?: string };
/** aws-chunked: the smallest chunk S3 accepts but the last; small reads are gathered to this. */
const MIN_CHUNK = 8 * 1024;
const GATHER_CHUNK = 64 * 1024;
const PART_CHECKSUM = "CRC32";
type Options = Omit<ConstructorParameters<typeof S3Store>[0], "cache">;

/**
 * @tus/s3-store, with whole parts streamed straight from the request into
 * `UploadPart`.
 *
 * The stock store stages every request body on local disk (one `appendFile`
 * per socket read, then read back) before sending parts: about 5x the CPU of
 * a plain streamed upload, and 2 bytes written to the gateway's disk per byte
 * uploaded. Here a PATCH that is a valid S3 part by itself (at least S3's
 * 5 MiB minimum, or the rest of the file), with a declared length and no
 * staged incomplete part before it, goes to S3 as one part as it arrives:
 * nothing touches the disk and memory is the streams' buffers.
 *
 * Every part carries a CRC32 that the server checks (sent as an aws-chunked
 * trailer, computed as the bytes pass): a PATCH cut short is aborted before
 * its trailer, so no server can keep it as a part. (Without it versitygw
 * stores a part of the declared length from a truncated body, and the upload
 * would silently hold zeros.) The client resumes from the unchanged offset.
 * Any other PATCH (smaller chunks, chunked transfer encoding) takes the stock
 * path, so every tus client works.
 *
 * Lookups (metadata, part list, staged part size) are made once per request
 * instead of once per step; the stock store would list the parts twice and
 * read the metadata three times for each PATCH. Bodies are signed with
 * UNSIGNED-PAYLOAD (see lightenPayloads).
 */
export class StreamingS3Store extends S3Store {
  constructor(options: Options, onWarning: (message: string) => void = () => {}) {
    super({
      ...options,
      cache: requestCache,
      s3ClientConfig: {
        ...options.s3ClientConfig,
        // The SDK warns on the console when a streamed part fails (a client went away).
        logger: { debug: () => {}, info: () => {}, warn: (...args: unknown[]) => onWarning(args.join(" ")), error: (...args: unknown[]) => onWarning(args.join(" ")) },
      },
    });
    lightenPayloads(this.client);
    closeAfterChunkedBodies(this.client);
    // New multipart uploads are checksummed, and so are all their parts, on either path. Parts
    // of an upload created without a checksum (by an earlier version) carry none: S3 wants
    // every part to use the algorithm the upload was created with.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { ChecksumAlgorithm?: string; Key?: string };
        if (context.commandName === "CreateMultipartUploadCommand") input.ChecksumAlgorithm ??= PART_CHECKSUM;
        if (context.commandName === "UploadPartCommand" && input.Key && this.checksummed(input.Key)) input.ChecksumAlgorithm ??= PART_CHECKSUM;
        return next(args);
      },
      { step: "initialize", name: "docflowPartChecksums" },
    );
  }

  override async write(src: Readable, id: string, offset: number): Promise<number> {
    const length = requestContentLength();
    const metadata = await this.getMetadata(id);
    const size = metadata.file.size;
    const wholePart = length !== undefined && length > 0 && size !== undefined && (length >= this.minPartSize || offset + length === size);
    if (!wholePart || (await this.getIncompletePartSize(id)) !== undefined) return super.write(src, id, offset);

    const parts = await this.retrieveParts(id);
    const partNumber = (parts.at(-1)?.PartNumber ?? 0) + 1;
    // Without the checked checksum a cut-short body could be kept as a part: stage it instead.
    if (partNumber > this.maxMultipartParts || !this.checksummed(id)) return super.write(src, id, offset);

    const sent = await this.streamPart(src, id, metadata["upload-id"], partNumber, length);
    if (sent === undefined) return offset;
    const stored = [...parts, { PartNumber: partNumber, ETag: sent.ETag, ChecksumCRC32: sent.ChecksumCRC32 }];
    this.remember(`parts:${id}`, stored);
    if (offset + length === size) {
      await this.finishMultipartUpload(metadata, stored);
      await this.completeMetadata(metadata.file);
      await this.clearCache(id);
    }
    return offset + length;
  }

  /**
   * Sends `src` as part `partNumber`; its ETag and checksum, or undefined when
   * the body ended before `length` bytes (the client went away: nothing is stored).
   */
  private async streamPart(src: Readable, key: string, uploadId: string, partNumber: number, length: number): Promise<Part | undefined> {
    const abort = new AbortController();
    let received = 0;
    let failure: unknown;
    const fail = (err: unknown) => {
      failure ??= err;
      abort.abort(err);
    };
    // aws-chunked bodies (those with a trailing checksum) may not have a chunk
    // under 8 KiB but the last, and socket reads come in any size: small reads
    // are gathered. (The SDK's requestStreamBufferSize would do it, but reads
    // its source without backpressure.)
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        if (pendingBytes === 0 && chunk.length >= MIN_CHUNK) return done(null, chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= GATHER_CHUNK) {
          this.push(Buffer.concat(pending, pendingBytes));
          pending = [];
          pendingBytes = 0;
        }
        done();
      },
      // A short body never ends the part: it is aborted before the trailer.
      flush(done) {
        if (received !== length) return fail(new ShortBodyError(received, length));
        done(null, pendingBytes > 0 ? Buffer.concat(pending, pendingBytes) : undefined);
      },
    });
    // A failing body aborts the part upload, and `counted` is never destroyed
    // with an error: the SDK wraps it in streams of its own that nobody
    // listens to for errors while it waits for 100-continue (an unhandled
    // 'error' event ends the process).
    src.once("error", fail);
    src.pipe(counted);
    const permit = await this.partUploadSemaphore.acquire();
    try {
      return await this.client.uploadPart({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: counted, ContentLength: length }, { abortSignal: abort.signal });
    } catch (err) {
      counted.destroy();
      if (failure instanceof ShortBodyError) return undefined;
      throw failure ?? err;
    } finally {
      await permit.release();
    }
  }

  /** Completes with each part's checksum, which the stock store leaves out (the server requires them). */
  protected override async finishMultipartUpload(metadata: Parameters<S3Store["finishMultipartUpload"]>[0], parts: Part[]): Promise<string | undefined> {
    if (parts.length === 0) return super.finishMultipartUpload(metadata, parts);
    const { Location } = await this.client.completeMultipartUpload({
      Bucket: this.bucket,
      Key: metadata.file.id,
      UploadId: metadata["upload-id"],
      MultipartUpload: { Parts: parts.map(({ PartNumber, ETag, ChecksumCRC32 }) => ({ PartNumber, ETag, ChecksumCRC32 })) },
    });
    return Location;
  }

  /** The upload's parts, in order; also notes the checksum algorithm it was created with. */
  protected override async retrieveParts(id: string): Promise<Part[]> {
    return this.memoized(`parts:${id}`, async () => {
      const uploadId = (await this.getMetadata(id))["upload-id"];
      const parts: Part[] = [];
      let marker: string | undefined;
      do {
        const page = await this.client.listParts({ Bucket: this.bucket, Key: id, UploadId: uploadId, PartNumberMarker: marker });
        parts.push(...(page.Parts ?? []));
        this.remember(`checksum:${id}`, page.ChecksumAlgorithm ?? null);
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker);
      return parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    });
  }

  /** Whether the upload's parts carry the checked checksum (known once its parts were listed in this request). */
  private checksummed(id: string): boolean {
    return requestMemo()?.get(`checksum:${id}`) === PART_CHECKSUM;
  }

  protected override async getIncompletePartSize(id: string): Promise<number | undefined> {
    return this.memoized(`staged:${id}`, () => super.getIncompletePartSize(id));
  }

  // The stock path changes what the memo holds: forget it.
  protected override async uploadPart(...args: Parameters<S3Store["uploadPart"]>): Promise<string> {
    this.forget(args[0].file.id);
    return super.uploadPart(...args);
  }

  protected override async uploadIncompletePart(id: string, readStream: Parameters<S3Store["uploadIncompletePart"]>[1]): Promise<string> {
    this.forget(id);
    return super.uploadIncompletePart(id, readStream);
  }

  protected override async deleteIncompletePart(id: string): Promise<void> {
    this.forget(id);
    return super.deleteIncompletePart(id);
  }

  private async memoized<T>(key: string, lookup: () => Promise<T>): Promise<T> {
    const memo = requestMemo();
    if (memo?.has(key)) return memo.get(key) as T;
    const value = await lookup();
    memo?.set(key, value);
    return value;
  }

  private remember(key: string, value: unknown): void {
    requestMemo()?.set(key, value);
  }

  private forget(id: string): void {
    const memo = requestMemo();
    memo?.delete(`parts:${id}`);
    memo?.delete(`staged:${id}`);
  }
}

class ShortBodyError extends Error {
  constructor(received: number, expected: number) {
    super(`request body ended after ${received} of ${expected} bytes`);
    this.name = "ShortBodyError";
  }
}
