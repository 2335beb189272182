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
/**
 * zlib level for PNGs we encode. Level 6 (sharp's default) gives files about
 * 5% smaller than pdftoppm's own PNGs at ~1/13 of pdftoppm's encoding time on
 * a 150 DPI page; level 1 is 3x faster again but files grow ~40%.
 */
export const PNG_COMPRESSION_LEVEL = 6;

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

/** Uncompressed pixels, e.g. one page of a PPM stream: `width * height * channels` bytes. */
export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  /** 1 (gray) or 3 (RGB). */
  channels: 1 | 3;
}

/** A page's two images, encoded from the same raw pixels. */
export interface PageImages {
  /** PNG at the resolution the page was rendered at (the preview). */
  preview: Buffer;
  /** WebP, scaled down to the thumbnail width (height by aspect ratio). */
  thumbnail: Buffer;
}

/**
 * Encodes one rendered page as its preview (PNG) and its thumbnail (the same
 * pixels scaled to `thumbnailWidthPx`, WebP): one rendering serves both. The
 * two run one after the other on the threadpool, so a page costs one thread at
 * a time. `image.data` is not used once the promise settles.
 */
export async function encodePageImages(image: RawImage, opts: { thumbnailWidthPx: number; compressionLevel?: number; quality?: number }): Promise<PageImages> {
  const raw = { raw: { width: image.width, height: image.height, channels: image.channels } };
  const thumbnail = await sharp(image.data, raw)
    .resize({ width: opts.thumbnailWidthPx })
    .webp({ quality: opts.quality ?? WEBP_QUALITY })
    .toBuffer();
  const preview = await sharp(image.data, raw)
    .png({ compressionLevel: opts.compressionLevel ?? PNG_COMPRESSION_LEVEL })
    .toBuffer();
  return { preview, thumbnail };
}

/** Encodes raw pixels as a PNG file at `path` (sharp, on the threadpool). */
export async function writeRawAsPng(image: RawImage, path: string, opts: { compressionLevel?: number } = {}): Promise<void> {
  await sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .png({ compressionLevel: opts.compressionLevel ?? PNG_COMPRESSION_LEVEL })
    .toFile(path);
}
