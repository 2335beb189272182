import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocflowError } from "@docflow/contracts";
import sharp, { type Metadata } from "sharp";
import { defaultPages, makeEncryptedPdf, makeFakePdf, makePptx, makeTextPdf, makeTruncatedPdf, makeZeroPagePdf, pageWords } from "../../../../tests/fixtures/generate.ts";
import { expectCode, processesMentioning, rejection } from "../../test/support.ts";
import { extractText, inspectPdf, pageSizes, PREVIEW_DPI, renderPageImages, THUMBNAIL_WIDTH_PX } from "./pdf.ts";

const T = { timeoutMs: 20_000 };
let dir: string;
const f = (name: string): string => join(dir, name);
const run = promisify(execFile);

/** Page `page` as pdftoppm's own PNG encoder writes it (`args` set the size), for comparison. */
async function pdftoppmPng(pdf: string, page: number, args: string[]): Promise<string> {
  const root = join(await mkdtemp(join(dir, "pdftoppm-")), "page");
  await run("pdftoppm", ["-png", "-singlefile", "-f", String(page), "-l", String(page), ...args, pdf, root]);
  return `${root}.png`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docflow-pdf-test-"));
  await makeTextPdf(f("five.pdf"), defaultPages(5));
  await makeTextPdf(f("twelve.pdf"), defaultPages(12));
  await makeEncryptedPdf(f("five.pdf"), f("encrypted.pdf"));
  await makeTruncatedPdf(f("five.pdf"), f("truncated.pdf"));
  await makeFakePdf(f("fake.pdf"));
  await makeZeroPagePdf(f("zero.pdf"));
  await writeFile(f("empty.pdf"), "");
  await makePptx(f("deck.pptx"), ["not a pdf"]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("inspectPdf", () => {
  it("reports page count, title and no encryption for a generated 5-page PDF", async () => {
    const info = await inspectPdf(f("five.pdf"), T);
    expect(info.pageCount).toBe(5);
    expect(info.encrypted).toBe(false);
    expect(info.title).toBe("docflow fixture");
    expect(info.pages).toBeUndefined();
  });

  it("includes every page's size on request", async () => {
    const info = await inspectPdf(f("twelve.pdf"), { ...T, pageSizes: true });
    expect(info.pages).toHaveLength(12);
    expect(info.pages?.[11]).toEqual({ page: 12, width: 612, height: 792, rotation: 0 });
  });

  it("maps a PDF that needs a user password to pdf_encrypted", async () => {
    await expectCode(inspectPdf(f("encrypted.pdf"), T), "pdf_encrypted");
  });

  it("opens a PDF with only an owner password and reports it encrypted", async () => {
    await run("qpdf", ["--encrypt", "", "owner", "256", "--", f("five.pdf"), f("owner-only.pdf")]);
    const info = await inspectPdf(f("owner-only.pdf"), T);
    expect(info).toMatchObject({ pageCount: 5, encrypted: true });
    expect((await extractText(f("owner-only.pdf"), 2, 2, T))[0]).toContain(pageWords(2));
  });

  it("maps truncated, fake, empty and non-PDF files to pdf_invalid", async () => {
    await expectCode(inspectPdf(f("truncated.pdf"), T), "pdf_invalid");
    await expectCode(inspectPdf(f("fake.pdf"), T), "pdf_invalid");
    await expectCode(inspectPdf(f("empty.pdf"), T), "pdf_invalid");
    await expectCode(inspectPdf(f("deck.pptx"), T), "pdf_invalid");
  });

  it("maps a PDF whose page tree is empty to pdf_no_pages", async () => {
    await expectCode(inspectPdf(f("zero.pdf"), T), "pdf_no_pages");
  });

  it("treats a missing file as an environmental (plain) error", async () => {
    const error = await rejection(inspectPdf(f("missing.pdf"), T));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DocflowError);
  });
});

describe("pageSizes", () => {
  it("gives US letter in points for a range and clamps a last page beyond the end", async () => {
    expect(await pageSizes(f("five.pdf"), 2, 3, T)).toEqual([
      { page: 2, width: 612, height: 792, rotation: 0 },
      { page: 3, width: 612, height: 792, rotation: 0 },
    ]);
    expect((await pageSizes(f("five.pdf"), 4, 9, T)).map((p) => p.page)).toEqual([4, 5]);
  });

  it("reports each page's own size and /Rotate", async () => {
    const { PDFDocument, degrees } = await import("pdf-lib");
    const doc = await PDFDocument.create();
    doc.addPage([612, 792]);
    doc.addPage([300, 500]).setRotation(degrees(90));
    await writeFile(f("mixed.pdf"), await doc.save());
    expect(await pageSizes(f("mixed.pdf"), 1, 2, T)).toEqual([
      { page: 1, width: 612, height: 792, rotation: 0 },
      { page: 2, width: 300, height: 500, rotation: 90 },
    ]);
  });

  it("rejects a first page beyond the document as a caller error", async () => {
    const error = await rejection(pageSizes(f("five.pdf"), 7, 9, T));
    expect(error).toBeInstanceOf(RangeError);
  });
});

describe("extractText", () => {
  it("returns one string per page of the range, each page's own words", async () => {
    const pages = await extractText(f("five.pdf"), 1, 5, T);
    expect(pages).toHaveLength(5);
    expect(pages[2]).toContain(pageWords(3));
    expect(pages[2]).toContain("Page 3 of 5");
    expect(pages[2]).not.toContain(pageWords(2));
    expect(pages[2]).not.toContain(pageWords(4));
    for (const page of pages) expect(page).toBe(page.trimEnd());
  });

  it("numbers a middle range from its first page", async () => {
    const pages = await extractText(f("twelve.pdf"), 3, 4, T);
    expect(pages).toEqual([`Page 3 of 12: ${pageWords(3)}`, `Page 4 of 12: ${pageWords(4)}`]);
  });

  it("pads with empty strings when the range runs past the last page", async () => {
    const pages = await extractText(f("five.pdf"), 4, 7, T);
    expect(pages).toHaveLength(4);
    expect(pages[0]).toContain(pageWords(4));
    expect(pages[1]).toContain(pageWords(5));
    expect(pages.slice(2)).toEqual(["", ""]);
  });

  it("maps encrypted, truncated and zero-page documents like inspectPdf", async () => {
    await expectCode(extractText(f("encrypted.pdf"), 1, 2, T), "pdf_encrypted");
    await expectCode(extractText(f("truncated.pdf"), 1, 2, T), "pdf_invalid");
    await expectCode(extractText(f("zero.pdf"), 1, 1, T), "pdf_no_pages");
  });

  it("rejects an invalid range before running anything", async () => {
    await expect(extractText(f("five.pdf"), 3, 2, T)).rejects.toBeInstanceOf(RangeError);
    await expect(extractText(f("five.pdf"), 0, 2, T)).rejects.toBeInstanceOf(RangeError);
  });
});

describe("renderPageImages", () => {
  it("renders each page once and hands over a 150 DPI PNG preview and a 200 px WebP thumbnail, in order", async () => {
    const seen: Array<{ page: number; preview: Metadata; thumbnail: Metadata }> = [];
    const count = await renderPageImages(f("five.pdf"), 2, 9, T, async ({ page, preview, thumbnail }) => {
      seen.push({ page, preview: await sharp(preview).metadata(), thumbnail: await sharp(thumbnail).metadata() });
    });
    expect(count).toBe(4); // clamped at the last page
    expect(seen.map((p) => p.page)).toEqual([2, 3, 4, 5]);
    for (const p of seen) {
      expect(p.preview).toMatchObject({ format: "png", width: 1275, height: 1650 });
      expect(p.thumbnail).toMatchObject({ format: "webp", width: THUMBNAIL_WIDTH_PX, height: 259 });
    }
  });

  it("renders at the dpi and thumbnail width it is given", async () => {
    const seen: Array<{ preview: Metadata; thumbnail: Metadata }> = [];
    await renderPageImages(f("five.pdf"), 1, 1, { ...T, dpi: PREVIEW_DPI * 2, thumbnailWidthPx: 50 }, async ({ preview, thumbnail }) => {
      seen.push({ preview: await sharp(preview).metadata(), thumbnail: await sharp(thumbnail).metadata() });
    });
    expect(seen).toEqual([
      {
        preview: expect.objectContaining({ format: "png", width: 2550, height: 3300 }),
        thumbnail: expect.objectContaining({ format: "webp", width: 50, height: 65 }), // 50 * 792 / 612
      },
    ]);
  });

  it("rejects a dpi, thumbnail width or page range that cannot be rendered, before running anything", async () => {
    const none = async (): Promise<void> => {};
    for (const opts of [{ dpi: 0 }, { dpi: 2401 }, { thumbnailWidthPx: 0 }, { thumbnailWidthPx: 12.5 }]) {
      await expect(renderPageImages(f("five.pdf"), 1, 1, { ...T, ...opts }, none)).rejects.toBeInstanceOf(RangeError);
    }
    await expect(renderPageImages(f("five.pdf"), 3, 2, T, none)).rejects.toBeInstanceOf(RangeError);
    await expect(renderPageImages(f("five.pdf"), 0, 2, T, none)).rejects.toBeInstanceOf(RangeError);
  });

  it("the preview holds exactly pdftoppm's pixels", async () => {
    const previews = new Map<number, Buffer>();
    await renderPageImages(f("twelve.pdf"), 10, 12, { ...T, dpi: 72 }, async ({ page, preview }) => void previews.set(page, preview));
    expect([...previews.keys()]).toEqual([10, 11, 12]);
    for (const [page, preview] of previews) {
      const ours = await sharp(preview).raw().toBuffer({ resolveWithObject: true });
      const poppler = await sharp(await pdftoppmPng(f("twelve.pdf"), page, ["-r", "72"]))
        .raw()
        .toBuffer({ resolveWithObject: true });
      expect([ours.info.width, ours.info.height, ours.info.channels]).toEqual([612, 792, 3]);
      expect(ours.data.equals(poppler.data)).toBe(true);
    }
  });

  it("the thumbnail shows the page: it matches pdftoppm's own rendering at thumbnail size", async () => {
    const poppler = await pdftoppmPng(f("five.pdf"), 3, ["-scale-to-x", String(THUMBNAIL_WIDTH_PX), "-scale-to-y", "-1"]);
    let ours: Buffer | undefined;
    await renderPageImages(f("five.pdf"), 3, 3, T, async ({ thumbnail }) => void (ours = thumbnail));
    const grey = async (input: Buffer | string) => (await sharp(input).greyscale().raw().toBuffer({ resolveWithObject: true })).data;
    const [a, b] = [await grey(poppler), await grey(ours ?? Buffer.alloc(0))];
    expect(b.length).toBe(a.length);
    // Compared where pdftoppm's thumbnail has ink: a blank or shifted thumbnail differs there.
    let inkA = 0;
    let inkB = 0;
    let diffOnInk = 0;
    let blankOnInk = 0;
    for (let i = 0; i < a.length; i++) {
      if (b[i]! < 224) inkB++;
      if (a[i]! >= 224) continue;
      inkA++;
      diffOnInk += Math.abs(a[i]! - b[i]!);
      blankOnInk += 255 - a[i]!;
    }
    expect(inkA).toBeGreaterThan(100); // the page has text on it
    expect(Math.abs(inkB - inkA) / inkA).toBeLessThan(0.25);
    // Anti-aliasing differs (sharp scales 150 DPI pixels, pdftoppm renders at 200 px), the text is the same:
    // well under what a blank thumbnail would differ by.
    expect(diffOnInk).toBeLessThan(blankOnInk * 0.6);
  });

  it("fails with the first onPage error, stops pdftoppm and waits for no page in flight", async () => {
    const calls: number[] = [];
    const error = await rejection(
      renderPageImages(f("twelve.pdf"), 1, 12, { ...T, dpi: 300 }, async ({ page }) => {
        calls.push(page);
        if (page === 2) throw new Error("store refused page 2");
      }),
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe("store refused page 2");
    expect(calls).toEqual([1, 2]);
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it("maps an encrypted document to pdf_encrypted and times out with processing_timeout", async () => {
    await expectCode(
      renderPageImages(f("encrypted.pdf"), 1, 1, T, async () => {}),
      "pdf_encrypted",
    );
    await expectCode(
      renderPageImages(f("twelve.pdf"), 1, 12, { dpi: 300, timeoutMs: 400 }, async () => {}),
      "processing_timeout",
    );
    expect(await processesMentioning(dir)).toEqual([]);
  });
});

describe("timeouts and cancellation", () => {
  it("a 1 ms timeout yields processing_timeout and leaves no poppler process behind", async () => {
    await expectCode(inspectPdf(f("twelve.pdf"), { timeoutMs: 1 }), "processing_timeout");
    await expectCode(extractText(f("twelve.pdf"), 1, 12, { timeoutMs: 1 }), "processing_timeout");
    await expectCode(
      renderPageImages(f("twelve.pdf"), 1, 12, { dpi: 300, timeoutMs: 1 }, async () => {}),
      "processing_timeout",
    );
    // Checked at once: the engine only rejects after the child was killed and reaped.
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it("an abort kills the child and fails with a plain, retryable error", async () => {
    const controller = new AbortController();
    const pending = renderPageImages(f("twelve.pdf"), 1, 12, { dpi: 300, timeoutMs: 20_000, signal: controller.signal }, async () => {});
    setTimeout(() => controller.abort(new Error("shutting down")), 20);
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DocflowError);
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it("a timeout in the middle of a streamed render stops pdftoppm and the encoder", async () => {
    const started = Date.now();
    let pages = 0;
    await expectCode(
      renderPageImages(f("twelve.pdf"), 1, 12, { dpi: 300, timeoutMs: 400 }, async () => void pages++),
      "processing_timeout",
    );
    expect(pages).toBeLessThan(12);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await processesMentioning(dir)).toEqual([]);
  });
});
