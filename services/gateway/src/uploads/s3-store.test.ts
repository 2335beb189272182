import { createHash, randomBytes } from "node:crypto";
import { PassThrough, Readable } from "node:stream";
import { crc32 } from "node:zlib";
import { Upload } from "@tus/utils";
import { describe, expect, it, vi } from "vitest";
import { s3ClientConfig } from "@docflow/infra";
import { inUploadRequest } from "./request-scope.ts";
import { StreamingS3Store } from "./s3-store.ts";

/** The smallest part, for the store and the fake S3 alike (S3's is 5 MiB; small keeps the tests fast). */
const PART = 64 * 1024;
/** S3's smallest aws-chunked chunk but the last. */
const MIN_AWS_CHUNK = 8 * 1024;
const BUCKET = "uploads";

const checksumOf = (data: Buffer) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(data));
  return out.toString("base64");
};
const etagOf = (data: Buffer) => `"${createHash("md5").update(data).digest("hex")}"`;

interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
}
interface FakeResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: Readable;
}
interface StoredPart {
  data: Buffer;
  etag: string;
  checksum: string | undefined;
}
/** One request as the fake S3 received it. */
interface Call {
  op: string;
  key: string;
  partNumber?: number;
  headers: Record<string, string>;
  /** For bodies sent aws-chunked: the size of every chunk. */
  awsChunks?: number[];
}

class S3Refusal extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message = code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * An S3 server in memory, behind the SDK's request handler: objects, multipart uploads and their
 * parts, with the rules docflow's store depends on. It checks a part's aws-chunked framing (no
 * chunk under 8 KiB but the last) and its trailing CRC32 against the bytes, refuses a part whose
 * checksum does not match the upload's algorithm (either way), requires each part's checksum on
 * completion and every part but the last to be at least `PART`, pages part lists, and honours the
 * abort signal of a request.
 */
class FakeS3 {
  readonly objects = new Map<string, { data: Buffer; metadata: Record<string, string>; tagging: string | undefined }>();
  readonly uploads = new Map<string, { key: string; algorithm: string | undefined; parts: Map<number, StoredPart> }>();
  readonly calls: Call[] = [];
  /** Parts listed per ListParts page. */
  listPageSize = 1000;
  /** Raw body bytes received so far by each UploadPart in flight, by upload key. */
  readonly arriving = new Map<string, number>();
  /** UploadParts aborted by their sender. */
  aborted = 0;
  #refusals: { op: string; refusal: S3Refusal }[] = [];
  #nextUpload = 0;

  /** The request handler to give the S3 client. */
  readonly requestHandler = {
    handle: (request: FakeRequest, options?: { abortSignal?: AbortSignal }) => this.#handle(request, options?.abortSignal).then((response) => ({ response })),
  };

  /** The next request of `op` is answered with this S3 error. */
  refuseNext(op: string, status: number, code: string): void {
    this.#refusals.push({ op, refusal: new S3Refusal(status, code) });
  }

  /** A multipart upload and `.info` as the stock store of an earlier version left them: no checksums. */
  legacyUpload(key: string, size: number): void {
    const uploadId = this.#newUpload(key, undefined);
    const upload = { id: key, size, offset: 0, metadata: {}, creation_date: new Date().toISOString(), storage: { type: "s3", path: key, bucket: BUCKET } };
    this.objects.set(`${key}.info`, { data: Buffer.from(JSON.stringify(upload)), metadata: { "upload-id": uploadId, "tus-version": "1.0.0" }, tagging: "Tus-Completed=false" });
  }

  uploadOf(key: string) {
    return [...this.uploads.values()].find((u) => u.key === key);
  }

  /** The ops of the calls made for `key` (and its `.info` and `.part` objects), in order. */
  opsFor(key: string): string[] {
    return this.calls.filter((c) => c.key.startsWith(key)).map((c) => `${c.op} ${c.key.slice(key.length) || "."}${c.partNumber ? ` #${c.partNumber}` : ""}`);
  }

  async #handle(request: FakeRequest, signal: AbortSignal | undefined): Promise<FakeResponse> {
    const key = request.path.split("/").slice(2).map(decodeURIComponent).join("/");
    const q = (name: string) => {
      const v = request.query[name];
      return Array.isArray(v) ? v[0] : (v ?? undefined);
    };
    const op = this.#operation(request.method, request.query);
    const call: Call = { op, key, headers: request.headers, ...(q("partNumber") ? { partNumber: Number(q("partNumber")) } : {}) };
    this.calls.push(call);
    try {
      const refused = this.#refusals.findIndex((r) => r.op === op);
      if (refused >= 0) {
        const { refusal } = this.#refusals.splice(refused, 1)[0]!;
        await readBody(request.body, signal).catch(() => {});
        throw refusal;
      }
      return await this.#serve(op, key, request, q, call, signal);
    } catch (err) {
      if (!(err instanceof S3Refusal)) throw err;
      const body = request.method === "HEAD" ? "" : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${err.code}</Code><Message>${err.message}</Message></Error>`;
      return { statusCode: err.status, headers: { "content-type": "application/xml" }, body: Readable.from([Buffer.from(body)]) };
    }
  }

  #operation(method: string, query: FakeRequest["query"]): string {
    const has = (name: string) => name in query;
    if (method === "POST") return has("uploads") ? "CreateMultipartUpload" : has("uploadId") ? "CompleteMultipartUpload" : "DeleteObjects";
    if (method === "PUT") return has("partNumber") ? "UploadPart" : "PutObject";
    if (method === "GET") return has("uploadId") ? "ListParts" : has("uploads") ? "ListMultipartUploads" : "GetObject";
    if (method === "HEAD") return "HeadObject";
    return has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
  }

  async #serve(op: string, key: string, request: FakeRequest, q: (name: string) => string | undefined, call: Call, signal: AbortSignal | undefined): Promise<FakeResponse> {
    const h = request.headers;
    switch (op) {
      case "CreateMultipartUpload": {
        const uploadId = this.#newUpload(key, h["x-amz-checksum-algorithm"]);
        return xml(`<InitiateMultipartUploadResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
      }
      case "PutObject": {
        const data = await readBody(request.body, signal);
        const metadata = Object.fromEntries(
          Object.entries(h)
            .filter(([k]) => k.startsWith("x-amz-meta-"))
            .map(([k, v]) => [k.slice(11), v]),
        );
        this.objects.set(key, { data, metadata, tagging: h["x-amz-tagging"] });
        return empty(200, { etag: etagOf(data) });
      }
      case "GetObject":
      case "HeadObject": {
        const object = this.objects.get(key);
        if (!object) throw new S3Refusal(404, op === "HeadObject" ? "NotFound" : "NoSuchKey");
        const headers = { "content-length": String(object.data.length), etag: etagOf(object.data), ...Object.fromEntries(Object.entries(object.metadata).map(([k, v]) => [`x-amz-meta-${k}`, v])) };
        return op === "HeadObject" ? empty(200, headers) : { statusCode: 200, headers, body: Readable.from([object.data]) };
      }
      case "DeleteObject":
        this.objects.delete(key);
        return empty(204);
      case "UploadPart": {
        const upload = this.uploads.get(q("uploadId") ?? "");
        if (!upload) throw new S3Refusal(404, "NoSuchUpload");
        this.arriving.set(key, 0);
        let raw: Buffer;
        try {
          raw = await readBody(request.body, signal, (n) => this.arriving.set(key, (this.arriving.get(key) ?? 0) + n));
        } catch (err) {
          this.aborted++;
          throw err;
        } finally {
          this.arriving.delete(key);
        }
        const { data, checksum, awsChunks } =
          h["content-encoding"] === "aws-chunked" ? decodeAwsChunked(raw, Number(h["x-amz-decoded-content-length"])) : { data: raw, checksum: h["x-amz-checksum-crc32"], awsChunks: undefined };
        if (awsChunks) call.awsChunks = awsChunks;
        if (checksum !== undefined && checksum !== checksumOf(data)) throw new S3Refusal(400, "BadDigest");
        const algorithm = checksum === undefined ? undefined : "CRC32";
        if (algorithm !== upload.algorithm)
          throw new S3Refusal(400, "InvalidRequest", `The upload was created using a ${upload.algorithm ?? "null"} checksum. The part was uploaded using a ${algorithm ?? "null"} checksum.`);
        const part = { data, etag: etagOf(data), checksum };
        upload.parts.set(Number(q("partNumber")), part);
        return empty(200, { etag: part.etag, ...(checksum ? { "x-amz-checksum-crc32": checksum } : {}) });
      }
      case "ListParts": {
        const upload = this.uploads.get(q("uploadId") ?? "");
        if (!upload) throw new S3Refusal(404, "NoSuchUpload");
        const marker = Number(q("part-number-marker") ?? 0);
        const numbers = [...upload.parts.keys()].sort((a, b) => a - b).filter((n) => n > marker);
        const page = numbers.slice(0, this.listPageSize);
        const truncated = numbers.length > page.length;
        const parts = page.map((n) => {
          const p = upload.parts.get(n)!;
          return `<Part><PartNumber>${n}</PartNumber><ETag>${escape(p.etag)}</ETag><Size>${p.data.length}</Size>${p.checksum ? `<ChecksumCRC32>${p.checksum}</ChecksumCRC32>` : ""}</Part>`;
        });
        return xml(
          `<ListPartsResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><UploadId>${q("uploadId")}</UploadId><PartNumberMarker>${marker}</PartNumberMarker>` +
            `<NextPartNumberMarker>${page.at(-1) ?? marker}</NextPartNumberMarker><MaxParts>${this.listPageSize}</MaxParts><IsTruncated>${truncated}</IsTruncated>` +
            `${upload.algorithm ? `<ChecksumAlgorithm>${upload.algorithm}</ChecksumAlgorithm>` : ""}${parts.join("")}</ListPartsResult>`,
        );
      }
      case "CompleteMultipartUpload": {
        const uploadId = q("uploadId") ?? "";
        const upload = this.uploads.get(uploadId);
        if (!upload) throw new S3Refusal(404, "NoSuchUpload");
        const listed = [...(await readBody(request.body, signal)).toString().matchAll(/<Part>(.*?)<\/Part>/g)].map(([, part]) => ({
          number: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(part!)?.[1]),
          etag: unescape(/<ETag>(.*?)<\/ETag>/.exec(part!)?.[1] ?? ""),
          checksum: /<ChecksumCRC32>(.*?)<\/ChecksumCRC32>/.exec(part!)?.[1],
        }));
        const parts = listed.map((l, i) => {
          const stored = upload.parts.get(l.number);
          if (!stored || stored.etag !== l.etag) throw new S3Refusal(400, "InvalidPart");
          if (stored.checksum !== l.checksum) throw new S3Refusal(400, "InvalidPart", `part ${l.number}: checksum ${l.checksum ?? "missing"}`);
          if (i < listed.length - 1 && stored.data.length < PART) throw new S3Refusal(400, "EntityTooSmall");
          return stored.data;
        });
        this.objects.set(key, { data: Buffer.concat(parts), metadata: {}, tagging: undefined });
        this.uploads.delete(uploadId);
        return xml(`<CompleteMultipartUploadResult><Location>http://s3.test/${BUCKET}/${key}</Location><Bucket>${BUCKET}</Bucket><Key>${key}</Key><ETag>"done"</ETag></CompleteMultipartUploadResult>`);
      }
      case "AbortMultipartUpload":
        this.uploads.delete(q("uploadId") ?? "");
        return empty(204);
      default:
        throw new S3Refusal(501, "NotImplemented", `${op} is not part of the fake`);
    }
  }

  #newUpload(key: string, algorithm: string | undefined): string {
    const uploadId = `upload-${++this.#nextUpload}`;
    this.uploads.set(uploadId, { key, algorithm, parts: new Map() });
    return uploadId;
  }
}

const xml = (body: string): FakeResponse => ({ statusCode: 200, headers: { "content-type": "application/xml" }, body: Readable.from([Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>${body}`)]) });
const empty = (statusCode: number, headers: Record<string, string> = {}): FakeResponse => ({ statusCode, headers, body: Readable.from([]) });
const escape = (s: string) => s.replaceAll('"', "&quot;");
const unescape = (s: string) => s.replaceAll("&quot;", '"');

/** Reads a request body (a Buffer, a string or a stream), failing as the socket would when the request is aborted. */
async function readBody(body: unknown, signal: AbortSignal | undefined, onData?: (n: number) => void): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === "string" || body instanceof Uint8Array) return Buffer.from(body);
  const chunks: Buffer[] = [];
  const read = (async () => {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(Buffer.from(chunk));
      onData?.(chunk.length);
    }
  })();
  read.catch(() => {});
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(Object.assign(new Error("The request was aborted"), { name: "AbortError" }));
    if (signal?.aborted) fail();
    signal?.addEventListener("abort", fail, { once: true });
  });
  await Promise.race([read, aborted]);
  return Buffer.concat(chunks);
}

/** Decodes an aws-chunked body (`<hex size>\r\n<data>\r\n`... `0\r\n<trailers>\r\n\r\n`) as S3 does, with its rules. */
function decodeAwsChunked(raw: Buffer, decodedLength: number): { data: Buffer; checksum: string | undefined; awsChunks: number[] } {
  const chunks: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf("\r\n", at);
    if (eol < 0) throw new S3Refusal(400, "IncompleteBody");
    const size = Number.parseInt(raw.subarray(at, eol).toString().split(";")[0]!, 16);
    at = eol + 2;
    if (size === 0) break;
    chunks.push(raw.subarray(at, at + size));
    at += size + 2;
  }
  const sizes = chunks.map((c) => c.length);
  if (sizes.slice(0, -1).some((n) => n < MIN_AWS_CHUNK)) throw new S3Refusal(400, "InvalidChunkSizeError");
  const trailers = Object.fromEntries(
    raw
      .subarray(at)
      .toString()
      .split("\r\n")
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
  );
  const data = Buffer.concat(chunks);
  if (data.length !== decodedLength) throw new S3Refusal(400, "IncompleteBody");
  return { data, checksum: trailers["x-amz-checksum-crc32"], awsChunks: sizes };
}

/** A store on `s3`, as tus.ts builds it (small parts). */
function storeOn(s3: FakeS3, options: { maxConcurrentPartUploads?: number } = {}) {
  const warnings: string[] = [];
  const store = new StreamingS3Store(
    {
      partSize: PART,
      minPartSize: PART,
      maxConcurrentPartUploads: options.maxConcurrentPartUploads ?? 8,
      expirationPeriodInMilliseconds: 3_600_000,
      s3ClientConfig: {
        bucket: BUCKET,
        ...s3ClientConfig({ region: "us-east-1", endpoint: "http://s3.test", credentials: { accessKeyId: "a", secretAccessKey: "s" } }),
        requestHandler: s3.requestHandler,
        maxAttempts: 1,
      },
    },
    (message) => warnings.push(message),
  );
  return { store, warnings };
}

let uploads = 0;
/** A new upload of `size` bytes on `store`; its id (the object key). */
async function create(store: StreamingS3Store, size: number): Promise<string> {
  const id = `tenants/acme/jobs/019ad000-0000-7000-8000-${String(++uploads).padStart(12, "0")}/source`;
  await store.create(new Upload({ id, size, offset: 0, metadata: { filename: "a.pdf" } }));
  return id;
}

/** Socket reads of `bytes`: chunks of `read` bytes. */
function reads(bytes: Buffer, read = 16 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < bytes.length; at += read) yield bytes.subarray(at, at + read);
    })(),
  );
}

/** One PATCH: writes `body` at `offset` in a request that declares `declared` bytes (undefined: chunked). */
function patch(store: StreamingS3Store, id: string, offset: number, body: Readable, declared: number | undefined): Promise<number> {
  return inUploadRequest({ headers: declared === undefined ? {} : { "content-length": String(declared) } }, () => store.write(body, id, offset));
}

/** The upload's offset as a new request (HEAD) finds it. */
const offsetOf = (store: StreamingS3Store, id: string) => inUploadRequest({ headers: {} }, () => store.getUpload(id)).then((u) => u.offset);

describe("StreamingS3Store", () => {
  it("creates every multipart upload with CRC32 part checksums, its .info beside it", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const id = await create(store, 3 * PART);
    expect(s3.uploadOf(id)?.algorithm).toBe("CRC32");
    expect(s3.objects.get(`${id}.info`)).toMatchObject({ metadata: { "upload-id": expect.any(String) }, tagging: "Tus-Completed=false" });
    expect(await offsetOf(store, id)).toBe(0);
  });

  it("streams a PATCH that is a whole part into one UploadPart with a checked CRC32, looking the upload up once", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const id = await create(store, 3 * PART);
    const bytes = randomBytes(PART);
    s3.calls.length = 0;
    // Socket reads come in any size: small ones are gathered, as aws-chunked wants (8 KiB at least but the last).
    const small = Readable.from(
      (function* () {
        for (let at = 0, n = 1; at < bytes.length; at += n, n = ((n * 7) % 5000) + 1) yield bytes.subarray(at, at + n);
      })(),
    );
    // As tus's PATCH handler: the upload's state, then the write, in one request.
    await inUploadRequest({ headers: { "content-length": String(PART) } }, async () => {
      expect((await store.getUpload(id)).offset).toBe(0);
      expect(await store.write(small, id, 0)).toBe(PART);
    });

    expect(s3.opsFor(id)).toEqual(["GetObject .info", "ListParts .", "HeadObject .part", "UploadPart . #1"]);
    const part = s3.uploadOf(id)!.parts.get(1)!;
    expect(part.data.equals(bytes)).toBe(true);
    expect(part.checksum).toBe(checksumOf(bytes));
    const sent = s3.calls.find((c) => c.op === "UploadPart")!;
    expect(sent.headers).toMatchObject({ "content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": String(PART), connection: "close" });
    expect(sent.awsChunks!.slice(0, -1).every((n) => n >= MIN_AWS_CHUNK)).toBe(true);
    expect(s3.objects.has(`${id}.part`)).toBe(false);
    expect(await offsetOf(store, id)).toBe(PART);
  });

  it("sends a part's bytes on as they arrive: S3 has the first of them before the client sent the rest", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const id = await create(store, 8 * PART);
    const bytes = randomBytes(4 * PART);
    const body = new PassThrough();
    const written = patch(store, id, 0, body, bytes.length);
    let settled = false;
    void written.finally(() => (settled = true));
    body.write(bytes.subarray(0, 32 * 1024));
    await vi.waitFor(() => expect(s3.arriving.get(id)).toBeGreaterThanOrEqual(32 * 1024));
    expect(settled).toBe(false);
    body.end(bytes.subarray(32 * 1024));
    expect(await written).toBe(bytes.length);
    expect(s3.uploadOf(id)!.parts.get(1)!.data.equals(bytes)).toBe(true);
  });

  it("completes the upload with the PATCH that ends the file, with every part's checksum, and marks it complete", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const bytes = randomBytes(2 * PART + 100);
    const id = await create(store, bytes.length);
    expect(await patch(store, id, 0, reads(bytes.subarray(0, PART)), PART)).toBe(PART);
    expect(await patch(store, id, PART, reads(bytes.subarray(PART, 2 * PART)), PART)).toBe(2 * PART);
    // The rest of the file is a valid last part however small: streamed too.
    expect(await patch(store, id, 2 * PART, reads(bytes.subarray(2 * PART)), 100)).toBe(bytes.length);

    expect(s3.objects.get(id)?.data.equals(bytes)).toBe(true);
    expect(s3.uploadOf(id)).toBeUndefined();
    expect(s3.objects.get(`${id}.info`)?.tagging).toBe("Tus-Completed=true");
    expect(s3.calls.filter((c) => c.key === id && c.op === "UploadPart").map((c) => c.awsChunks !== undefined)).toEqual([true, true, true]);
    expect(await offsetOf(store, id)).toBe(bytes.length);
  });

  it("stages a chunk smaller than a part that does not end the file (the stock path), and prepends it to the next", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const bytes = randomBytes(3 * PART);
    const id = await create(store, bytes.length);
    expect(await patch(store, id, 0, reads(bytes.subarray(0, 1000)), 1000)).toBe(1000);
    expect(s3.objects.get(`${id}.part`)?.data.length).toBe(1000);
    expect(s3.uploadOf(id)!.parts.size).toBe(0);

    // A whole part's worth after a staged chunk takes the stock path: staged + new bytes are split
    // into parts, the remainder staged again. What this request looked up is forgotten as it changes.
    await inUploadRequest({ headers: { "content-length": String(PART) } }, async () => {
      expect(await store.write(reads(bytes.subarray(1000, 1000 + PART)), id, 1000)).toBe(1000 + PART);
      expect((await store.getUpload(id)).offset).toBe(1000 + PART);
    });
    const part = s3.uploadOf(id)!.parts.get(1)!;
    expect(part.data.equals(bytes.subarray(0, PART))).toBe(true);
    expect(part.checksum).toBe(checksumOf(part.data));
    expect(s3.objects.get(`${id}.part`)?.data.equals(bytes.subarray(PART, PART + 1000))).toBe(true);

    expect(await patch(store, id, 1000 + PART, reads(bytes.subarray(1000 + PART)), bytes.length - 1000 - PART)).toBe(bytes.length);
    expect(s3.objects.get(id)?.data.equals(bytes)).toBe(true);
  });

  it("takes the stock path for a body of unknown length (chunked transfer encoding)", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const bytes = randomBytes(PART + 500);
    const id = await create(store, bytes.length);
    expect(await patch(store, id, 0, reads(bytes), undefined)).toBe(bytes.length);
    expect(s3.calls.filter((c) => c.key === id && c.op === "UploadPart").map((c) => c.awsChunks?.length !== undefined)).toEqual([true, true]);
    expect(s3.objects.get(id)?.data.equals(bytes)).toBe(true);
  });

  it("continues an upload created without checksums (an earlier version) on the stock path, its parts without checksums", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const bytes = randomBytes(PART + 300);
    const id = "tenants/acme/jobs/019ad000-0000-7000-8000-legacy000001/source";
    s3.legacyUpload(id, bytes.length);
    expect(await patch(store, id, 0, reads(bytes.subarray(0, PART)), PART)).toBe(PART);
    expect(s3.uploadOf(id)!.parts.get(1)!.checksum).toBeUndefined();
    expect(await patch(store, id, PART, reads(bytes.subarray(PART)), 300)).toBe(bytes.length);
    expect(s3.objects.get(id)?.data.equals(bytes)).toBe(true);
  });

  it("lists every part, page after page, in order", async () => {
    const s3 = new FakeS3();
    s3.listPageSize = 2;
    const { store } = storeOn(s3);
    const bytes = randomBytes(5 * PART + 1);
    const id = await create(store, bytes.length);
    for (let n = 0; n < 5; n++) expect(await patch(store, id, n * PART, reads(bytes.subarray(n * PART, (n + 1) * PART)), PART)).toBe((n + 1) * PART);
    expect(await offsetOf(store, id)).toBe(5 * PART);
    const listed = s3.calls.filter((c) => c.op === "ListParts").length;
    expect(await patch(store, id, 5 * PART, reads(bytes.subarray(5 * PART)), 1)).toBe(bytes.length);
    // Five parts, two a page: three pages for the final PATCH's lookup.
    expect(s3.calls.filter((c) => c.op === "ListParts").length - listed).toBe(3);
    expect(s3.objects.get(id)?.data.equals(bytes)).toBe(true);
  });

  it("looks the upload up again in every request: another replica may have changed it in between", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const bytes = randomBytes(3 * PART);
    const id = await create(store, bytes.length);
    await patch(store, id, 0, reads(bytes.subarray(0, PART)), PART);
    await patch(store, id, PART, reads(bytes.subarray(PART, 2 * PART)), PART);
    expect(s3.opsFor(id).filter((op) => op === "GetObject .info")).toHaveLength(2);
  });

  it("stores nothing of a body that ends before its declared length: the part upload is aborted, the offset stays", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const bytes = randomBytes(2 * PART);
    const id = await create(store, bytes.length);
    expect(await patch(store, id, 0, reads(bytes.subarray(0, PART / 2)), PART)).toBe(0);
    expect(s3.aborted).toBe(1);
    expect(s3.uploadOf(id)!.parts.size).toBe(0);
    expect(s3.objects.has(`${id}.part`)).toBe(false);
    expect(await offsetOf(store, id)).toBe(0);
    // The client resumes from there.
    expect(await patch(store, id, 0, reads(bytes.subarray(0, PART)), PART)).toBe(PART);
  });

  it("fails the write with the body's own error (a client gone, a refused first chunk), storing nothing", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const id = await create(store, 2 * PART);
    for (const failure of [new Error("ECONNRESET"), { status_code: 415, body: "{}" }]) {
      const body = new PassThrough();
      const written = patch(store, id, 0, body, PART);
      body.write(randomBytes(20_000));
      await vi.waitFor(() => expect(s3.arriving.get(id)).toBeGreaterThan(0));
      body.destroy(failure as Error);
      await expect(written).rejects.toBe(failure);
    }
    expect(s3.uploadOf(id)!.parts.size).toBe(0);
    expect(await offsetOf(store, id)).toBe(0);
  });

  it("fails the write with S3's error when S3 refuses the part", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3);
    const id = await create(store, 2 * PART);
    s3.refuseNext("UploadPart", 503, "SlowDown");
    await expect(patch(store, id, 0, reads(randomBytes(PART)), PART)).rejects.toMatchObject({ name: "SlowDown", $metadata: { httpStatusCode: 503 } });
    expect(await offsetOf(store, id)).toBe(0);
  });

  it("streams no more parts at once than it has part slots; the others wait for one", async () => {
    const s3 = new FakeS3();
    const { store } = storeOn(s3, { maxConcurrentPartUploads: 1 });
    const [a, b] = [await create(store, 2 * PART), await create(store, 2 * PART)];
    const first = new PassThrough();
    const writingA = patch(store, a, 0, first, PART);
    first.write(randomBytes(16 * 1024));
    await vi.waitFor(() => expect(s3.arriving.has(a)).toBe(true));
    const writingB = patch(store, b, 0, reads(randomBytes(PART)), PART);
    await new Promise((r) => setTimeout(r, 50));
    expect(s3.calls.filter((c) => c.op === "UploadPart").map((c) => c.key)).toEqual([a]);
    first.end(randomBytes(PART - 16 * 1024));
    expect(await writingA).toBe(PART);
    expect(await writingB).toBe(PART);
  });
});
