import { describe, expect, it } from "vitest";
import { PDF, PPTX } from "@docflow/contracts";
import { NOT_A_DOCUMENT, SNIFF_BYTES, refusalDetail, sniffAhead, sniffContentType } from "./sniff.ts";

/** A minimal ZIP local file header for an entry name (no data). */
function zipEntry(name: string): Buffer {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(Buffer.byteLength(name), 26);
  return Buffer.concat([header, Buffer.from(name), Buffer.from("deflated-bytes")]);
}

describe("sniffContentType", () => {
  it("recognises a PDF by its header, also after leading junk within 1 KiB", () => {
    expect(sniffContentType(Buffer.from("%PDF-1.7\n%âãÏÓ\n1 0 obj"))).toBe(PDF);
    expect(sniffContentType(Buffer.concat([Buffer.alloc(100, 0x20), Buffer.from("%PDF-1.4")]))).toBe(PDF);
    expect(sniffContentType(Buffer.concat([Buffer.alloc(2000, 0x20), Buffer.from("%PDF-1.4")]))).toBeNull();
  });

  it("recognises a PPTX as a ZIP with ppt/ entries", () => {
    const pptx = Buffer.concat([zipEntry("[Content_Types].xml"), zipEntry("_rels/.rels"), zipEntry("ppt/presentation.xml")]);
    expect(sniffContentType(pptx)).toBe(PPTX);
  });

  it("refuses other OOXML documents, plain ZIPs, text and images", () => {
    expect(sniffContentType(Buffer.concat([zipEntry("[Content_Types].xml"), zipEntry("word/document.xml")]))).toBeNull();
    expect(sniffContentType(zipEntry("notes.txt"))).toBeNull();
    expect(sniffContentType(Buffer.from("hello, this is not a document"))).toBeNull();
    expect(sniffContentType(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBeNull();
    expect(sniffContentType(Buffer.alloc(0))).toBeNull();
  });

  it("does not read past a truncated header", () => {
    const cut = zipEntry("ppt/presentation.xml").subarray(0, 40);
    expect(sniffContentType(cut)).toBeNull();
  });
});

describe("sniffAhead", () => {
  async function* chunks(sizes: number[]) {
    for (const n of sizes) yield Buffer.alloc(n, 0x25);
  }
  const collect = async (it: AsyncIterable<Buffer>) => {
    const out: Buffer[] = [];
    for await (const c of it) out.push(c);
    return Buffer.concat(out);
  };

  it("shows the judge the first SNIFF_BYTES before anything passes, then passes everything", async () => {
    const seen: number[] = [];
    const out = await collect(sniffAhead(chunks([40_000, 40_000, 10]), (head) => void seen.push(head.length)));
    expect(seen).toEqual([80_000]);
    expect(seen[0]).toBeGreaterThanOrEqual(SNIFF_BYTES);
    expect(out.length).toBe(80_010);
  });

  it("judges a short file at its end, and nothing at all for an empty one", async () => {
    const seen: number[] = [];
    await collect(sniffAhead(chunks([100]), (head) => void seen.push(head.length)));
    await collect(sniffAhead(chunks([]), (head) => void seen.push(head.length)));
    expect(seen).toEqual([100]);
  });

  it("lets no byte through when the judge refuses", async () => {
    const passed: Buffer[] = [];
    const refuse = () => {
      throw new Error("not a document");
    };
    await expect(
      (async () => {
        for await (const c of sniffAhead(chunks([70_000, 5]), refuse)) passed.push(c);
      })(),
    ).rejects.toThrow("not a document");
    expect(passed).toEqual([]);
  });
});

describe("refusalDetail", () => {
  it("tells a password-protected or old binary Office file what to do", () => {
    const ole = Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(504)]);
    expect(refusalDetail(ole)).toMatch(/password-protected.*remove the password/);
  });

  it("names other Office documents, and falls back to the general rule", () => {
    const zipWith = (name: string) => {
      const header = Buffer.alloc(30);
      header.writeUInt32LE(0x04034b50, 0);
      header.writeUInt16LE(Buffer.byteLength(name), 26);
      return Buffer.concat([header, Buffer.from(name)]);
    };
    expect(refusalDetail(zipWith("word/document.xml"))).toMatch(/Word document/);
    expect(refusalDetail(zipWith("xl/workbook.xml"))).toMatch(/Excel workbook/);
    expect(refusalDetail(Buffer.from("hello"))).toBe(NOT_A_DOCUMENT);
  });
});
