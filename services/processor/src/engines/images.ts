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
