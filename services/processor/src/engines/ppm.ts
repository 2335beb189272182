/**
 * Splits the concatenated binary PPM/PGM images that `pdftoppm` writes to
 * stdout (when given no output root) into one raw image per page, and hands
 * each to an async consumer. One image is consumed while the next one is
 * received (so pdftoppm renders page n+1 while sharp encodes page n); when the
 * next one is complete before the consumer is done, the Writable stops taking
 * data and pdftoppm waits on a full pipe. Memory: about two raw pages (a
 * US-letter page at 150 DPI is 6.3 MB of RGB).
 */
import { Writable } from "node:stream";
import type { RawImage } from "./images.ts";

/** Upper bound for one page's pixel data (e.g. 20000 x 20000 gray), against absurd headers. */
const MAX_PAGE_BYTES = 1024 * 1024 * 1024;

/**
 * Raw page buffers kept for reuse. Without it every page allocates a fresh
 * buffer (6.3 MB for a US-letter page at 150 DPI) outside V8's heap, and that
 * external memory makes V8 run full collections every few pages: most of a
 * processor's garbage-collection time. A buffer is taken for a page of at most
 * its size (and at least 3/4 of it, so a thumbnail does not hold a preview's
 * buffer), given back once the page is consumed, and dropped when the pool
 * already holds `maxBytes`.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held for reuse now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** A buffer of exactly `bytes` bytes (a view of a pooled one, or a new one); its contents are undefined. */
  take(bytes: number): Buffer {
    const i = this.#free.findIndex((b) => b.length >= bytes && b.length * 3 <= bytes * 4);
    if (i < 0) return Buffer.allocUnsafeSlow(bytes);
    const [buffer] = this.#free.splice(i, 1);
    this.#bytes -= buffer!.length;
    return buffer!.subarray(0, bytes);
  }

  /** Gives back a buffer from `take` that nobody uses any more. */
  give(view: Buffer): void {
    // The whole allocation, not the view: `take` may have handed out a shorter view of it.
    const buffer = Buffer.from(view.buffer, view.byteOffset, view.buffer.byteLength - view.byteOffset);
    if (view.byteOffset !== 0 || buffer.length > this.#maxBytes) return;
    this.#free.push(buffer);
    this.#bytes += buffer.length;
    while (this.#bytes > this.#maxBytes) this.#bytes -= this.#free.shift()!.length;
  }
}

export interface PpmSplitterOptions {
  /**
   * Take each image's buffer from this pool and give it back once `consume`'s
   * promise has resolved: the consumer must not keep `image.data` beyond it.
   */
  pool?: BufferPool | undefined;
}

export class PpmSplitter extends Writable {
  #consume: (image: RawImage, index: number) => Promise<void>;
  #header = Buffer.alloc(0);
  #image: RawImage | undefined;
  #filled = 0;
  #count = 0;
  /** The consume() in flight, if any; it never rejects (errors go to #failed). */
  #inFlight: Promise<void> | undefined;
  #failed: Error | undefined;
  readonly #pool: BufferPool | undefined;

  /** `consume(image, index)` is called once per image, in order; index counts from 0. */
  constructor(consume: (image: RawImage, index: number) => Promise<void>, options: PpmSplitterOptions = {}) {
    super();
    this.#consume = consume;
    this.#pool = options.pool;
  }

  /** How many complete images were handed to the consumer. */
  get count(): number {
    return this.#count;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#take(chunk).then(() => callback(), (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))));
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#image !== undefined || this.#header.length > 0) {
      callback(new Error(`pdftoppm output ended inside image ${this.#count + 1}`));
      return;
    }
    this.#settle().then(() => callback(), (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))));
  }

  /** Waits for the consume() in flight and rethrows its error. */
  async #settle(): Promise<void> {
    if (this.#inFlight !== undefined) await this.#inFlight;
    this.#inFlight = undefined;
    if (this.#failed !== undefined) throw this.#failed;
  }

  async #emit(image: RawImage): Promise<void> {
    await this.#settle();
    const index = this.#count++;
    this.#inFlight = this.#consume(image, index).then(
      () => this.#pool?.give(image.data),
      (error: unknown) => {
        // Not given back: a failed consumer may still be reading it.
        this.#failed ??= error instanceof Error ? error : new Error(String(error));
      },
    );
  }

  async #take(input: Buffer): Promise<void> {
    let chunk = input;
    let at = 0;
    while (at < chunk.length) {
      if (this.destroyed) return;
      if (this.#image === undefined) {
        // Collect header bytes until "P6 <w> <h> <maxval>" and its one whitespace byte are in.
        const header = Buffer.concat([this.#header, chunk.subarray(at)]);
        const parsed = parseHeader(header, this.#pool);
        if (parsed === undefined) {
          if (header.length > 512) throw new Error("pdftoppm output is not a PPM stream");
          this.#header = header;
          return;
        }
        this.#header = Buffer.alloc(0);
        this.#image = parsed.image;
        this.#filled = 0;
        // Go on with the pixel bytes that came with the header.
        chunk = header.subarray(parsed.headerLength);
        at = 0;
        continue;
      }
      const image = this.#image;
      const n = Math.min(image.data.length - this.#filled, chunk.length - at);
      chunk.copy(image.data, this.#filled, at, at + n);
      this.#filled += n;
      at += n;
      if (this.#filled === image.data.length) {
        this.#image = undefined;
        await this.#emit(image);
      }
    }
  }
}

function parseHeader(buf: Buffer, pool: BufferPool | undefined): { image: RawImage; headerLength: number } | undefined {
  // Magic, width, height, maxval separated by whitespace, then exactly one whitespace byte.
  const text = buf.toString("latin1", 0, Math.min(buf.length, 512));
  const m = /^(P[56])\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(text);
  if (m === null) {
    if (text.length >= 2 && !/^P[56]/.test(text)) throw new Error("pdftoppm output is not a binary PPM/PGM stream");
    return undefined;
  }
  const [header, magic, w, h, maxval] = m;
  if (Number(maxval) !== 255) throw new Error(`unsupported PPM maxval ${maxval}`);
  const width = Number(w);
  const height = Number(h);
  const channels = magic === "P6" ? 3 : 1;
  const bytes = width * height * channels;
  if (!(width > 0 && height > 0 && bytes <= MAX_PAGE_BYTES)) throw new Error(`implausible PPM size ${width}x${height}`);
  return { image: { data: pool?.take(bytes) ?? Buffer.allocUnsafe(bytes), width, height, channels }, headerLength: header.length };
}
