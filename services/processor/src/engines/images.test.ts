import { describe, expect, it } from "vitest";
import sharp from "sharp";
import { encodePageImages, type RawImage } from "./images.ts";

/** A white US letter page at 72 DPI (612 x 792 RGB) with a black block where text would be. */
function letterPage(): RawImage {
  const width = 612;
  const height = 792;
  const data = Buffer.alloc(width * height * 3, 255);
  for (let y = 100; y < 300; y++) data.fill(0, (y * width + 72) * 3, (y * width + 540) * 3);
  return { data, width, height, channels: 3 };
}

describe("encodePageImages", () => {
  it("encodes the page's pixels as they are in a PNG preview", async () => {
    const page = letterPage();
    const { preview } = await encodePageImages(page, { thumbnailWidthPx: 200 });
    const decoded = await sharp(preview).raw().toBuffer({ resolveWithObject: true });
    expect((await sharp(preview).metadata()).format).toBe("png");
    expect([decoded.info.width, decoded.info.height, decoded.info.channels]).toEqual([612, 792, 3]);
    expect(decoded.data.equals(page.data)).toBe(true);
  });

  it("scales the same pixels to a WebP thumbnail of the width asked for, height by aspect ratio", async () => {
    const { preview, thumbnail } = await encodePageImages(letterPage(), { thumbnailWidthPx: 200 });
    expect(thumbnail.subarray(0, 4).toString("latin1")).toBe("RIFF");
    expect(thumbnail.subarray(8, 12).toString("latin1")).toBe("WEBP");
    expect(await sharp(thumbnail).metadata()).toMatchObject({ format: "webp", width: 200, height: 259 }); // 200 * 792 / 612
    expect(thumbnail.length).toBeLessThan(preview.length);
    // Still the page: dark ink on white.
    const stats = await sharp(thumbnail).stats();
    expect(stats.channels[0]?.min).toBeLessThan(100);
    expect(stats.channels[0]?.max).toBeGreaterThan(240);
  });

  it("encodes gray pages (one channel) too", async () => {
    const data = Buffer.alloc(40 * 20, 128);
    const { preview, thumbnail } = await encodePageImages({ data, width: 40, height: 20, channels: 1 }, { thumbnailWidthPx: 10 });
    expect(await sharp(preview).metadata()).toMatchObject({ format: "png", width: 40, height: 20 });
    const decoded = await sharp(preview).raw().toBuffer();
    expect(new Set(decoded)).toEqual(new Set([128]));
    expect(await sharp(thumbnail).metadata()).toMatchObject({ format: "webp", width: 10, height: 5 });
  });

  it("rejects pixels that do not fill the size they claim", async () => {
    const page = letterPage();
    await expect(encodePageImages({ ...page, data: page.data.subarray(0, 1000) }, { thumbnailWidthPx: 200 })).rejects.toThrow();
  });
});
