import { createHash, randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { FsObjectStore } from "@docflow/infra";
import { cleanFilename, ingest } from "./ingest.ts";

const pdfBytes = (size: number) => Buffer.concat([Buffer.from("%PDF-1.7\n"), randomBytes(size - 9)]);
const chunked = (buf: Buffer, chunk = 16 * 1024) =>
  Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
    })(),
  );

async function setup() {
  const store = new FsObjectStore(await mkdtemp(join(tmpdir(), "ingest-")));
  return { store, options: (maxBytes = 1 << 30) => ({ store, key: "t/source", maxBytes, signal: new AbortController().signal }) };
}

describe("ingest", () => {
  it("stores the bytes, hashing and measuring them on the way", async () => {
    const { store, options } = await setup();
    const body = pdfBytes(300 * 1024 + 5);
    const result = await ingest(chunked(body), options());
    expect(result).toEqual({ size: body.length, sha256: createHash("sha256").update(body).digest("hex"), contentType: "application/pdf" });
    expect((await store.head("t/source"))?.size).toBe(body.length);
  });

  it("sniffs small files at the end of the stream", async () => {
    const { options } = await setup();
    expect((await ingest(chunked(Buffer.from("%PDF-1.4 tiny")), options())).contentType).toBe("application/pdf");
  });

  it("refuses an empty body, a wrong type and an oversize file, keeping nothing", async () => {
    const { store, options } = await setup();
    await expect(ingest(chunked(Buffer.alloc(0)), options())).rejects.toMatchObject({ code: "empty_body", status: 400 });
    await expect(ingest(chunked(randomBytes(200 * 1024)), options())).rejects.toMatchObject({ code: "unsupported_media_type", status: 415 });
    await expect(ingest(chunked(pdfBytes(2 * 1024 * 1024)), options(1024 * 1024))).rejects.toMatchObject({ code: "file_too_large", status: 413 });
    expect(await store.head("t/source")).toBeNull();
  });

  it("reports an interrupted upload as aborted", async () => {
    const { store } = await setup();
    const controller = new AbortController();
    const source = Readable.from(
      (async function* () {
        yield pdfBytes(100 * 1024);
        controller.abort();
        throw new Error("ECONNRESET");
      })(),
    );
    await expect(ingest(source, { store, key: "t/source", maxBytes: 1 << 30, signal: controller.signal })).rejects.toMatchObject({ code: "upload_aborted" });
    expect(await store.head("t/source")).toBeNull();
  });
});

describe("cleanFilename", () => {
  it("keeps the base name only, without control characters", () => {
    expect(cleanFilename("../../etc/report.pdf", "x")).toBe("report.pdf");
    expect(cleanFilename("C:\\Users\\me\\deck.pptx", "x")).toBe("deck.pptx");
    expect(cleanFilename("a\u0000b\nc.pdf", "x")).toBe("abc.pdf");
    expect(cleanFilename(undefined, "document.pdf")).toBe("document.pdf");
    expect(cleanFilename("x".repeat(400), "d")).toHaveLength(255);
  });
});
