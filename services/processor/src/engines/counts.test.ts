import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PDFDocument, StandardFonts } from "pdf-lib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countFontsAndImages } from "./pdf.ts";
import * as fx from "../../../../tests/fixtures/generate.ts";

describe("countFontsAndImages", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-counts-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("counts one font and no images in a text-only PDF", async () => {
    const path = join(dir, "text.pdf");
    await fx.makeTextPdf(path, ["one", "two", "three"]);
    expect(await countFontsAndImages(path, { timeoutMs: 10_000 })).toEqual({ fonts: 1, images: 0 });
  });

  it("counts two fonts and every image drawn", async () => {
    const doc = await PDFDocument.create();
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#c00" } })
      .png()
      .toBuffer();
    const image = await doc.embedPng(png);
    const page = doc.addPage([300, 300]);
    page.drawText("a", { font: await doc.embedFont(StandardFonts.Helvetica), x: 10, y: 10 });
    page.drawText("b", { font: await doc.embedFont(StandardFonts.Courier), x: 10, y: 30 });
    page.drawImage(image, { x: 50, y: 50, width: 20, height: 20 });
    doc.addPage([300, 300]).drawImage(image, { x: 50, y: 50, width: 20, height: 20 });
    const path = join(dir, "mixed.pdf");
    await writeFile(path, await doc.save());
    expect(await countFontsAndImages(path, { timeoutMs: 10_000 })).toEqual({ fonts: 2, images: 2 });
  });
});
