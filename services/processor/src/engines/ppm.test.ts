import { describe, expect, it } from "vitest";
import type { RawImage } from "./images.ts";
import { BufferPool, PpmReader } from "./ppm.ts";

function ppm(width: number, height: number, fill: number, magic = "P6"): Buffer {
  const channels = magic === "P6" ? 3 : 1;
  return Buffer.concat([Buffer.from(`${magic}\n${width} ${height}\n255\n`), Buffer.alloc(width * height * channels, fill)]);
}

/**
 * Plays the part of run.ts's socket: reads of at most `size` bytes from `stream` into the memory
 * the reader hands out, stopping while it says so, then the end. Resolves or rejects as the call would.
 */
async function feed(reader: PpmReader, stream: Buffer, size: number): Promise<void> {
  let resume: () => void = () => {};
  let failed: Error | undefined;
  reader.start({ resume: () => resume(), fail: (error) => void (failed ??= error) });
  for (let at = 0; at < stream.length;) {
    if (failed) throw failed;
    const into = reader.next();
    expect(into.length).toBeGreaterThan(0);
    const n = Math.min(into.length, size, stream.length - at);
    stream.copy(into, 0, at, at + n);
    at += n;
    if (!reader.data(n)) {
      await new Promise<void>((r) => (resume = r));
      resume = () => {};
    }
  }
  if (failed) throw failed;
  await reader.end();
}

/** Feeds `stream` in pieces of `size` bytes and collects what the reader emits (copies: the memory is reused). */
async function split(stream: Buffer, size: number): Promise<RawImage[]> {
  const images: RawImage[] = [];
  await feed(new PpmReader(async (image) => void images.push({ ...image, data: Buffer.from(image.data) })), stream, size);
  return images;
}

describe("PpmReader", () => {
  const stream = Buffer.concat([ppm(3, 2, 10), ppm(1, 1, 20), ppm(4, 5, 30, "P5")]);

  it.each([1, 2, 7, 13, 64, 4096])("splits concatenated PPM/PGM images read in pieces of up to %i bytes", async (size) => {
    const images = await split(stream, size);
    expect(images.map((i) => [i.width, i.height, i.channels, i.data.length])).toEqual([
      [3, 2, 3, 18],
      [1, 1, 3, 3],
      [4, 5, 1, 20],
    ]);
    expect(images.map((i) => [...new Set(i.data)])).toEqual([[10], [20], [30]]);
  });

  it("asks for no more than the header, then for exactly the image's pixels, in the image's own memory", () => {
    const images: RawImage[] = [];
    const reader = new PpmReader(async (image) => void images.push(image));
    const one = ppm(20, 2, 7); // "P6\n20 2\n255\n": 12 bytes of header, 120 of pixels
    const sizes: number[] = [];
    let pixels: Uint8Array | undefined;
    for (let at = 0; at < one.length;) {
      const into = reader.next();
      sizes.push(into.length);
      if (into.length === 120) pixels = into;
      one.copy(into, 0, at, at + into.length);
      at += into.length;
      reader.data(into.length);
    }
    // The shortest header there is ("P6\n1 1\n255\n") is 11 bytes: those first, then a byte at a time.
    expect(sizes).toEqual([11, 1, 120]);
    expect(images).toHaveLength(1);
    expect(pixels?.buffer).toBe(images[0]!.data.buffer); // read in place, not copied
  });

  it("fails on a stream that ends inside an image", async () => {
    await expect(split(stream.subarray(0, stream.length - 3), 5)).rejects.toThrow(/ended inside image 3/);
  });

  it("fails on bytes that are not PPM", async () => {
    await expect(split(Buffer.from("%PDF-1.7 not an image"), 4)).rejects.toThrow(/not a binary PPM/);
  });

  it("fails on a header that never ends", async () => {
    await expect(split(Buffer.from(`P6\n${"1".repeat(100)} 2\n255\n`), 4096)).rejects.toThrow(/not a PPM stream/);
  });
});

describe("PpmReader consumer", () => {
  it("consumes one image while the next arrives, never more than one at a time, in order, and stops reading meanwhile", async () => {
    let running = 0;
    let maxRunning = 0;
    const order: number[] = [];
    const reader = new PpmReader(async (_image, index) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 5));
      order.push(index);
      running--;
    });
    const stream = Buffer.concat([ppm(2, 2, 1), ppm(2, 2, 2), ppm(2, 2, 3), ppm(2, 2, 4)]);
    await feed(reader, stream, 1000);
    expect(order).toEqual([0, 1, 2, 3]); // all done before end() resolved
    expect(maxRunning).toBe(1);
    expect(reader.count).toBe(4);
  });

  it("fails the call when the consumer fails", async () => {
    const reader = new PpmReader(async (_image, index) => {
      if (index === 1) throw new Error("disk full");
    });
    const stream = Buffer.concat([ppm(2, 2, 1), ppm(2, 2, 2), ppm(2, 2, 3)]);
    await expect(feed(reader, stream, 1000)).rejects.toThrow("disk full");
  });
});

describe("PpmReader with a buffer pool", () => {
  it("reuses a page's buffer for the next page of about its size once the page is consumed", async () => {
    const pool = new BufferPool(1024);
    const seen: { buffer: ArrayBufferLike; fill: number[] }[] = [];
    const reader = new PpmReader(async (image) => void seen.push({ buffer: image.data.buffer, fill: [...new Set(image.data)] }), { pool });
    const stream = Buffer.concat([ppm(4, 4, 1), ppm(4, 4, 2), ppm(4, 4, 3), ppm(4, 4, 4)]);
    await feed(reader, stream, 4096);
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
    const reader = new PpmReader(
      async () => {
        throw new Error("disk full");
      },
      { pool },
    );
    await expect(feed(reader, ppm(2, 2, 1), 4096)).rejects.toThrow("disk full");
    expect(pool.bytes).toBe(0);
  });
});
