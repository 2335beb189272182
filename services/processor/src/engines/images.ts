/**
 * Image engine: sharp (libvips). Its work runs on libuv's threadpool, not on
 * the event loop. One libvips thread per image and no operation cache keep
 * memory bounded and predictable next to the poppler/LibreOffice children;
 * parallelism comes from running several tasks, not from threads per image.
 */
import sharp from "sharp";

sharp.concurrency(1);
sharp.cache(false);

export const WEBP_QUALITY = 80;

/** A PNG (or any image sharp reads) file re-encoded as WebP at quality ~80. */
export async function toWebp(pngPath: string, opts: { quality?: number } = {}): Promise<Buffer> {
  return sharp(pngPath, { failOn: "error" }).webp({ quality: opts.quality ?? WEBP_QUALITY }).toBuffer();
}

export interface ImageSize {
  width: number;
  height: number;
  /** sharp's name for the format: "png", "webp", "jpeg", ... */
  format: string;
}

/** Width, height and format of an encoded image (reads the header only). */
export async function imageSize(input: Buffer | string): Promise<ImageSize> {
  const meta = await sharp(input).metadata();
  if (meta.width === undefined || meta.height === undefined || meta.format === undefined) {
    throw new Error("not an image sharp can read");
  }
  return { width: meta.width, height: meta.height, format: meta.format };
}
