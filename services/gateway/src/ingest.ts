import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { IncomingHttpHeaders } from "node:http";
import busboy from "busboy";
import { DocflowError, type ContentType } from "@docflow/contracts";
import { refusalDetail, sniffAhead, sniffContentType, type ObjectStore } from "@docflow/infra";

export interface IngestOptions {
  store: ObjectStore;
  key: string;
  maxBytes: number;
  signal: AbortSignal;
  /** Called with the number of bytes of every chunk as it is stored (metrics). */
  onBytes?: (n: number) => void;
}

export interface Ingested {
  size: number;
  sha256: string;
  contentType: ContentType;
}

/**
 * Streams `source` into the object store while counting and hashing it. Only
 * the first `SNIFF_BYTES` are held back, until the type is known: a file that
 * is not a PDF or PPTX is refused before a byte is stored. Nothing else is
 * buffered, so memory per upload stays bounded whatever the file size. On any
 * failure no object is left behind and the error says why (empty, too large,
 * wrong type, aborted).
 */
export async function ingest(source: Readable, options: IngestOptions): Promise<Ingested> {
  const hash = createHash("sha256");
  let size = 0;
  let contentType: ContentType | null = null;
  let failure: unknown;

  async function* measured(): AsyncGenerator<Buffer> {
    // On a refusal the source stays open: the error handler drains it, so the
    // client can read the answer instead of failing on a closed socket.
    for await (const chunk of source.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > options.maxBytes) {
        throw new DocflowError("file_too_large", `The file is larger than the limit of ${options.maxBytes} bytes.`, { extra: { limit: options.maxBytes } });
      }
      hash.update(chunk);
      options.onBytes?.(chunk.length);
      yield chunk;
    }
    if (size === 0) throw new DocflowError("empty_body", "The upload contained no bytes.");
  }

  async function* inspect(): AsyncGenerator<Buffer> {
    try {
      yield* sniffAhead(measured(), (head) => {
        contentType = sniffContentType(head);
        if (!contentType) throw new DocflowError("unsupported_media_type", refusalDetail(head));
      });
    } catch (err) {
      failure = options.signal.aborted ? new DocflowError("upload_aborted") : err;
      throw failure;
    }
  }

  try {
    await options.store.put(options.key, Readable.from(inspect(), { objectMode: false }), { signal: options.signal });
  } catch (err) {
    await options.store.delete(options.key).catch(() => {});
    if (failure) throw failure;
    if (options.signal.aborted) throw new DocflowError("upload_aborted");
    throw err;
  }
  return { size, sha256: hash.digest("hex"), contentType: contentType! };
}

/**
 * Ingests the multipart field `file` (busboy): the first such field is stored,
 * other fields are skipped, and a form without it answers `missing_file`.
 */
export function ingestMultipart(req: Readable & { headers: IncomingHttpHeaders }, options: IngestOptions): Promise<Ingested & { filename: string | undefined }> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { files: 1, fileSize: options.maxBytes + 1, fields: 20, fieldSize: 64 * 1024, parts: 40, headerPairs: 100 },
      });
    } catch (err) {
      reject(new DocflowError("validation_failed", `Malformed multipart request: ${(err as Error).message}`));
      return;
    }
    let found = false;
    parser.on("file", (name, stream, info) => {
      if (name !== "file" || found) {
        stream.resume();
        return;
      }
      found = true;
      ingest(stream, options).then((r) => resolve({ ...r, filename: info.filename }), reject);
    });
    parser.on("close", () => {
      if (!found) reject(new DocflowError("missing_file"));
    });
    parser.on("error", (err: Error) => {
      if (!found) reject(new DocflowError("validation_failed", `Malformed multipart request: ${err.message}`));
    });
    req.on("error", () => {});
    req.pipe(parser);
  });
}

/** A display name: no path, no control characters, at most 255 characters. */
export function cleanFilename(raw: string | undefined, fallback: string): string {
  const base = (raw ?? "").split(/[\\/]/).pop() ?? "";
  // eslint-disable-next-line no-control-regex
  const controls = /[\u0000-\u001f\u007f]/g;
  const clean = base.replace(controls, "").trim().slice(0, 255);
  return clean || fallback;
}
