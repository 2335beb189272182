import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import type { RawImage } from "./images.ts";
import { PpmSplitter } from "./ppm.ts";

function ppm(width: number, height: number, fill: number, magic = "P6"): Buffer {
  const channels = magic === "P6" ? 3 : 1;
  return Buffer.concat([Buffer.from(`${magic}\n${width} ${height}\n255\n`), Buffer.alloc(width * height * channels, fill)]);
}

/** Feeds `stream` in pieces of `size` bytes and collects what the splitter emits. */
async function split(stream: Buffer, size: number): Promise<RawImage[]> {
  const pieces: Buffer[] = [];
  for (let at = 0; at < stream.length; at += size) pieces.push(stream.subarray(at, at + size));
  const images: RawImage[] = [];
  await pipeline(Readable.from(pieces), new PpmSplitter(async (image) => void images.push(image)));
  return images;
}

describe("PpmSplitter", () => {
  const stream = Buffer.concat([ppm(3, 2, 10), ppm(1, 1, 20), ppm(4, 5, 30, "P5")]);

  it.each([1, 2, 7, 13, 64, 4096])("splits concatenated PPM/PGM images fed in %i-byte pieces", async (size) => {
    const images = await split(stream, size);
    expect(images.map((i) => [i.width, i.height, i.channels, i.data.length])).toEqual([
      [3, 2, 3, 18],
      [1, 1, 3, 3],
      [4, 5, 1, 20],
    ]);
    expect(images.map((i) => [...new Set(i.data)])).toEqual([[10], [20], [30]]);
  });

  it("fails on a stream that ends inside an image", async () => {
    await expect(split(stream.subarray(0, stream.length - 3), 5)).rejects.toThrow(/ended inside image 3/);
  });

  it("fails on bytes that are not PPM", async () => {
    await expect(split(Buffer.from("%PDF-1.7 not an image"), 4)).rejects.toThrow(/not a binary PPM/);
  });
});

describe("PpmSplitter consumer", () => {
  it("consumes one image while the next arrives, never more than one at a time, in order", async () => {
    let running = 0;
    let maxRunning = 0;
    const order: number[] = [];
    const splitter = new PpmSplitter(async (_image, index) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 5));
      order.push(index);
      running--;
    });
    const stream = Buffer.concat([ppm(2, 2, 1), ppm(2, 2, 2), ppm(2, 2, 3), ppm(2, 2, 4)]);
    await pipeline(Readable.from([stream.subarray(0, 20), stream.subarray(20)]), splitter);
    expect(order).toEqual([0, 1, 2, 3]); // all done before the pipeline finished
    expect(maxRunning).toBe(1);
  });

  it("fails the stream when the consumer fails", async () => {
    const splitter = new PpmSplitter(async (_image, index) => {
      if (index === 1) throw new Error("disk full");
    });
    const stream = Buffer.concat([ppm(2, 2, 1), ppm(2, 2, 2)]);
    await expect(pipeline(Readable.from([stream]), splitter)).rejects.toThrow("disk full");
  });
});
