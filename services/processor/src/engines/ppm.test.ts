import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import type { RawImage } from "./images.ts";
import { BufferPool, PpmSplitter } from "./ppm.ts";

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

describe("PpmSplitter with a buffer pool", () => {
  it("reuses a page's buffer for the next page of about its size once the page is consumed", async () => {
    const pool = new BufferPool(1024);
    const seen: { buffer: ArrayBufferLike; fill: number[] }[] = [];
    const splitter = new PpmSplitter(async (image) => void seen.push({ buffer: image.data.buffer, fill: [...new Set(image.data)] }), { pool });
    const stream = Buffer.concat([ppm(4, 4, 1), ppm(4, 4, 2), ppm(4, 4, 3), ppm(4, 4, 4)]);
    await pipeline(Readable.from([stream]), splitter);
    // Each page was whole and its own (never overwritten while consumed)...
    expect(seen.map((s) => s.fill)).toEqual([[1], [2], [3], [4]]);
    // ...and at most two buffers were ever allocated: the one consumed and the one filling.
    expect(new Set(seen.map((s) => s.buffer)).size).toBeLessThanOrEqual(2);
  });

  it("hands out a buffer only to a page of 3/4 its size or more, and keeps at most maxBytes", () => {
    const pool = new BufferPool(100);
    const big = pool.take(80);
    pool.give(big);
    expect(pool.bytes).toBe(80);
    expect(pool.take(40).buffer).not.toBe(big.buffer); // a thumbnail does not take a preview's buffer
    const again = pool.take(70);
    expect(again.buffer).toBe(big.buffer);
    expect(again.length).toBe(70);
    expect(pool.bytes).toBe(0);
    pool.give(again);
    expect(pool.bytes).toBe(80); // the whole allocation comes back
    pool.give(pool.take(50));
    expect(pool.bytes).toBeLessThanOrEqual(100);
  });

  it("does not take back the buffer of a page whose consumer failed", async () => {
    const pool = new BufferPool(1024);
    const splitter = new PpmSplitter(async () => {
      throw new Error("disk full");
    }, { pool });
    await expect(pipeline(Readable.from([ppm(2, 2, 1)]), splitter)).rejects.toThrow("disk full");
    expect(pool.bytes).toBe(0);
  });
});
