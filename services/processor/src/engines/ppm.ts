/**
 * Splits the concatenated binary PPM/PGM images that `pdftoppm` writes to
 * stdout (when given no output root) into one raw image per page, and hands
 * each to an async consumer. It is a `StdoutReader` (run.ts): the child's
 * output is read straight into each page's buffer, with no buffer allocated
 * and no byte copied per read. One image is consumed while the next one is
 * received (so pdftoppm renders page n+1 while sharp encodes page n); when the
 * next one is complete before the consumer is done, reading stops and
 * pdftoppm waits on a full socket. Memory: about two raw pages (a US-letter
 * page at 150 DPI is 6.3 MB of RGB).
 */
import type { RawImage } from "./images.ts";
import type { StdoutControl, StdoutReader } from "./run.ts";

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

export interface PpmReaderOptions {
  /**
   * Take each image's buffer from this pool and give it back once `consume`'s
   * promise has resolved: the consumer must not keep `image.data` beyond it.
   */
  pool?: BufferPool | undefined;
}

/** The shortest header there is: "P6\n1 1\n255\n". */
const MIN_HEADER_BYTES = 11;
/** "P6\n<width> <height>\n255\n" with widths and heights of up to 9 digits, and some slack. */
const MAX_HEADER_BYTES = 64;

export class PpmReader implements StdoutReader {
  readonly #consume: (image: RawImage, index: number) => Promise<void>;
  readonly #pool: BufferPool | undefined;
  readonly #header = Buffer.alloc(MAX_HEADER_BYTES + 1); // one spare byte: next() never hands out an empty buffer
  #headerFilled = 0;
  /** The image being read, and how much of it is in. */
  #image: RawImage | undefined;
  #filled = 0;
  #count = 0;
  /** The consume() in flight, if any; it never rejects (errors go to #failed). */
  #inFlight: Promise<void> | undefined;
  /** A complete image waiting for the consumer (reading is stopped meanwhile). */
  #waiting: RawImage | undefined;
  #failed: Error | undefined;
  #control: StdoutControl = { resume: () => {}, fail: () => {} };

  /** `consume(image, index)` is called once per image, in order, one at a time; index counts from 0. */
  constructor(consume: (image: RawImage, index: number) => Promise<void>, options: PpmReaderOptions = {}) {
    this.#consume = consume;
    this.#pool = options.pool;
  }

  /** How many complete images were handed to the consumer. */
  get count(): number {
    return this.#count;
  }

  start(control: StdoutControl): void {
    this.#control = control;
  }

  next(): Uint8Array {
    if (this.#image !== undefined) return this.#image.data.subarray(this.#filled);
    // A header is read in its shortest length first, then a byte at a time, so that no read runs
    // past it into the pixels (which go straight into the image's own buffer).
    return this.#header.subarray(this.#headerFilled, Math.max(MIN_HEADER_BYTES, this.#headerFilled + 1));
  }

  data(n: number): boolean {
    const image = this.#image;
    if (image !== undefined) {
      this.#filled += n;
      if (this.#filled < image.data.length) return true;
      this.#image = undefined;
      this.#headerFilled = 0;
      if (this.#inFlight !== undefined) {
        // The consumer is still on the previous image: hold this one and stop reading.
        this.#waiting = image;
        return false;
      }
      this.#emit(image);
      return true;
    }
    this.#headerFilled += n;
    if (this.#headerFilled < MIN_HEADER_BYTES) return true;
    const header = this.#header.subarray(0, this.#headerFilled);
    const parsed = parseHeader(header, this.#pool);
    if (parsed === undefined) {
      if (this.#headerFilled >= MAX_HEADER_BYTES) throw new Error("pdftoppm output is not a PPM stream");
      return true;
    }
    if (parsed.headerLength !== this.#headerFilled) throw new Error("pdftoppm output is not a PPM stream");
    this.#image = parsed.image;
    this.#filled = 0;
    return true;
  }

  async end(): Promise<void> {
    if (this.#image !== undefined || this.#headerFilled > 0) {
      const complete = this.#count + (this.#waiting === undefined ? 0 : 1);
      throw new Error(`pdftoppm output ended inside image ${complete + 1}`);
    }
    while (this.#inFlight !== undefined) await this.#inFlight;
    if (this.#failed !== undefined) throw this.#failed;
  }

  abort(): void {
    // The image nobody will consume goes back to the pool; the one in flight is still being read.
    if (this.#waiting !== undefined) this.#pool?.give(this.#waiting.data);
    this.#waiting = undefined;
  }

  #emit(image: RawImage): void {
    const index = this.#count++;
    this.#inFlight = this.#consume(image, index).then(
      () => {
        this.#pool?.give(image.data);
        this.#inFlight = undefined;
        const waiting = this.#waiting;
        if (waiting !== undefined && this.#failed === undefined) {
          this.#waiting = undefined;
          this.#emit(waiting);
          this.#control.resume();
        }
      },
      (error: unknown) => {
        // Not given back: a failed consumer may still be reading it.
        this.#inFlight = undefined;
        this.#failed ??= error instanceof Error ? error : new Error(String(error));
        this.#control.fail(this.#failed);
      },
    );
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
