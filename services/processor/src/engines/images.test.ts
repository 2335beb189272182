import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { imageSize, toWebp } from "./images.ts";
import { renderPages, THUMBNAIL_WIDTH_PX } from "./pdf.ts";
import { loadFixtures } from "./test-support.ts";

const { defaultPages, makeTextPdf } = await loadFixtures();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docflow-images-test-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("toWebp", () => {
  it("turns a poppler thumbnail into a real WebP of the same size (200 px wide)", async () => {
    const pdf = join(dir, "three.pdf");
    await makeTextPdf(pdf, defaultPages(3));
    const files = await renderPages(pdf, 2, 2, { outDir: dir, widthPx: THUMBNAIL_WIDTH_PX, timeoutMs: 20_000 });
    const png = files.get(2);
    if (png === undefined) throw new Error("no thumbnail rendered");

    const webp = await toWebp(png);
    expect(webp.subarray(0, 4).toString("latin1")).toBe("RIFF");
    expect(webp.subarray(8, 12).toString("latin1")).toBe("WEBP");
    expect(await imageSize(webp)).toEqual({ width: 200, height: 259, format: "webp" });
    const meta = await sharp(webp).metadata();
    expect(meta.format).toBe("webp");
    expect(meta.width).toBe(200);
    // Smaller than the PNG it came from, and still a page with dark text on white.
    expect(webp.length).toBeLessThan((await readFile(png)).length);
    const stats = await sharp(webp).stats();
    expect(stats.channels[0]?.min).toBeLessThan(100);
    expect(stats.channels[0]?.max).toBeGreaterThan(240);
  });

  it("rejects a file that is not an image", async () => {
    const bogus = join(dir, "bogus.png");
    await writeFile(bogus, "not a png at all");
    await expect(toWebp(bogus)).rejects.toThrow();
  });
});

describe("imageSize", () => {
  it("reads width, height and format from an encoded image", async () => {
    const png = await sharp({ create: { width: 31, height: 17, channels: 3, background: "#ffffff" } }).png().toBuffer();
    expect(await imageSize(png)).toEqual({ width: 31, height: 17, format: "png" });
  });

  it("rejects bytes that are not an image", async () => {
    await expect(imageSize(Buffer.from("hello"))).rejects.toThrow();
  });
});
