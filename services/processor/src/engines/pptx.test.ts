import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocflowError } from "@docflow/contracts";
import { extractText, inspectPdf } from "./pdf.ts";
import { convertPptxToPdf } from "./pptx.ts";
import { makePptx, makeTextPdf } from "../../../../tests/fixtures/generate.ts";
import { expectCode, processesMentioning, rejection } from "../../test/support.ts";

// One LibreOffice start costs 1.5-6 s on 2 cores; leave generous room.
const SLOW = 90_000;
const T = { timeoutMs: 60_000 };
let dir: string;
let profiles = 0;
/** A fresh profile dir per call: concurrent conversions must never share one. */
const profile = (): string => join(dir, `profile-${++profiles}`);

/** A minimal ZIP (stored entries) with the given files, to build near-PPTX inputs. */
function zip(files: Record<string, string>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const nameBytes = Buffer.from(name);
    const data = Buffer.from(content);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc32(data), 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(Object.keys(files).length, 8);
  eocd.writeUInt16LE(Object.keys(files).length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const SLIDES = ["Slide one: apple banana", "Slide two: cherry damson", "Slide three: elderberry fig"];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docflow-pptx-test-"));
  await makePptx(join(dir, "deck.pptx"), SLIDES);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("convertPptxToPdf", () => {
  it("converts a 3-slide deck to a 3-page PDF carrying each slide's text on its page", { timeout: SLOW }, async () => {
    const out = join(dir, "out");
    await mkdir(out);
    const pdf = await convertPptxToPdf(join(dir, "deck.pptx"), out, { ...T, profileDir: profile() });
    expect(pdf).toBe(join(out, "deck.pdf"));
    expect((await readFile(pdf)).subarray(0, 5).toString("latin1")).toBe("%PDF-");
    expect((await inspectPdf(pdf, { timeoutMs: 20_000 })).pageCount).toBe(3);
    const text = await extractText(pdf, 1, 3, { timeoutMs: 20_000 });
    expect(text[0]).toContain("apple banana");
    expect(text[1]).toContain("cherry damson");
    expect(text[2]).toContain("elderberry fig");
    expect(text[1]).not.toContain("apple");
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it("runs two conversions at once when each has its own profile dir", { timeout: SLOW }, async () => {
    await makePptx(join(dir, "a.pptx"), ["Deck A only slide"]);
    await makePptx(join(dir, "b.pptx"), ["Deck B first", "Deck B second"]);
    const out = join(dir, "both");
    await mkdir(out);
    const [a, b] = await Promise.all([convertPptxToPdf(join(dir, "a.pptx"), out, { ...T, profileDir: profile() }), convertPptxToPdf(join(dir, "b.pptx"), out, { ...T, profileDir: profile() })]);
    expect((await inspectPdf(a, { timeoutMs: 20_000 })).pageCount).toBe(1);
    expect((await inspectPdf(b, { timeoutMs: 20_000 })).pageCount).toBe(2);
  });

  it("refuses random bytes, a PDF, a truncated deck and a ZIP without a presentation before starting LibreOffice", async () => {
    const out = join(dir, "invalid");
    await mkdir(out);
    const bytes = Buffer.alloc(4096, 7);
    await writeFile(join(dir, "random.pptx"), bytes);
    await makeTextPdf(join(dir, "doc.pdf"), ["a PDF"]);
    const deck = await readFile(join(dir, "deck.pptx"));
    await writeFile(join(dir, "truncated.pptx"), deck.subarray(0, Math.floor(deck.length * 0.6)));
    await writeFile(join(dir, "other.zip"), zip({ "[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>" }));
    await writeFile(join(dir, "empty.pptx"), "");
    const started = Date.now();
    for (const name of ["random.pptx", "doc.pdf", "truncated.pptx", "other.zip", "empty.pptx"]) {
      await expectCode(convertPptxToPdf(join(dir, name), out, { ...T, profileDir: profile() }), "pptx_invalid");
    }
    expect(Date.now() - started).toBeLessThan(1000); // no soffice start-up was paid
  });

  it("maps a presentation LibreOffice cannot load to pptx_invalid", { timeout: SLOW }, async () => {
    const out = join(dir, "unloadable");
    await mkdir(out);
    await writeFile(join(dir, "hollow.pptx"), zip({ "ppt/presentation.xml": "this is not XML" }));
    const error = await rejection(convertPptxToPdf(join(dir, "hollow.pptx"), out, { ...T, profileDir: profile() }));
    expect(error).toBeInstanceOf(DocflowError);
    expect((error as DocflowError).code).toBe("pptx_invalid");
    // The reason LibreOffice gave is kept for logs, not shown to the user.
    expect(String((error as DocflowError).cause)).toContain("source file could not be loaded");
  });

  it("a 1 ms timeout yields processing_timeout and leaves no process behind", { timeout: SLOW }, async () => {
    const out = join(dir, "t1");
    await mkdir(out);
    await expectCode(convertPptxToPdf(join(dir, "deck.pptx"), out, { timeoutMs: 1, profileDir: profile() }), "processing_timeout");
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it("a timeout while soffice.bin runs kills the whole process group", { timeout: SLOW }, async () => {
    const out = join(dir, "t2");
    await mkdir(out);
    const profileDir = profile();
    let sawSofficeBin = false;
    const watcher = setInterval(() => {
      void processesMentioning(profileDir).then((ps) => {
        if (ps.some((p) => p.cmdline.includes("soffice.bin"))) sawSofficeBin = true;
      });
    }, 50);
    const started = Date.now();
    try {
      await expectCode(convertPptxToPdf(join(dir, "deck.pptx"), out, { timeoutMs: 700, profileDir }), "processing_timeout");
    } finally {
      clearInterval(watcher);
    }
    const elapsed = Date.now() - started;
    expect(sawSofficeBin).toBe(true); // the helper process LibreOffice forks was up ...
    expect(await processesMentioning(dir)).toEqual([]); // ... and is gone with its parent,
    // killed, not left to finish: killing only the leader would leave soffice.bin
    // holding our pipes until it had written the PDF (~2.5 s here).
    expect(elapsed).toBeLessThan(700 + 1000);
    expect(await readFile(join(out, "deck.pdf")).catch(() => null)).toBeNull();
  });

  it("fails with a plain (retryable) error when soffice is not installed", async () => {
    const error = await rejection(convertPptxToPdf(join(dir, "deck.pptx"), dir, { ...T, profileDir: profile(), soffice: "/nonexistent/soffice" }));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DocflowError);
  });
});
