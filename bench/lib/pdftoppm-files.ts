/**
 * Page images as the processor made them before 19f1f2d, kept as the engine
 * benchmark's poppler baseline (bench/engines.ts): one pdftoppm call per range
 * and kind (thumbnail or preview) writing a PNG file per page, and thumbnails
 * re-encoded as WebP. The processor now renders each page once and encodes
 * both images from the same pixels (`renderPageImages`).
 *
 * What pdftoppm does here (poppler 22.12):
 * - it names files <prefix>-<n>.png with n zero-padded to the number of digits
 *   of the document's page count (t-5.png for 9 pages, t-005.png for 100);
 * - `-png` spends ~0.5 s per 150 DPI page in its PNG encoder while rendering
 *   takes ~20 ms and sharp's PNG ~40 ms: encoder "sharp" streams raw PPM over a
 *   pipe instead and sharp writes the PNGs, page by page with backpressure.
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
// The baseline drives the processor's own child runner and PPM reader.
// eslint-disable-next-line no-restricted-imports
import { PNG_COMPRESSION_LEVEL, PREVIEW_DPI, WEBP_QUALITY } from "../../services/processor/src/engines/index.ts";
// eslint-disable-next-line no-restricted-imports
import { BufferPool, PpmReader } from "../../services/processor/src/engines/ppm.ts";
// eslint-disable-next-line no-restricted-imports
import { runTool, toolError, type StdoutReader } from "../../services/processor/src/engines/run.ts";

export interface RenderOptions {
  /** Directory the PNGs are written to (must exist). */
  outDir: string;
  /** Width of each image in pixels, height by aspect ratio (thumbnails). */
  widthPx?: number | undefined;
  /** Resolution in DPI (previews). Used when `widthPx` is not given; default 150. */
  dpi?: number | undefined;
  /** File name prefix inside `outDir` (default "page"); files are `<prefix>-<n>.png`. */
  prefix?: string | undefined;
  /**
   * Who compresses the PNGs. "pdftoppm" (default): `pdftoppm -png`, files with
   * poppler's zero padding. "sharp": pdftoppm streams raw PPM and sharp writes
   * `<prefix>-<n>.png` (no padding). Same pixels.
   */
  encoder?: "pdftoppm" | "sharp" | undefined;
  timeoutMs: number;
}

/** Raw page buffers shared by every render of this process (see `BufferPool`). */
const RAW_PAGES = new BufferPool(64 * 1024 * 1024);

/**
 * Renders pages first..last to PNG files in `outDir` with one pdftoppm call:
 * `widthPx` scales each page to that width (`-scale-to-x W -scale-to-y -1`),
 * otherwise `dpi` sets the resolution (`-r`). Returns page number -> file for
 * the pages produced (a last page beyond the document is clamped). Any failure
 * of pdftoppm is a plain Error (the benchmark only counts them).
 */
export async function renderPages(path: string, first: number, last: number, opts: RenderOptions): Promise<Map<number, string>> {
  const prefix = opts.prefix ?? "page";
  if (!/^[\w.-]+$/.test(prefix)) throw new RangeError(`invalid file prefix ${JSON.stringify(prefix)}`);
  const args = ["-f", String(first), "-l", String(last)];
  if (opts.widthPx !== undefined) args.push("-scale-to-x", String(opts.widthPx), "-scale-to-y", "-1");
  else args.push("-r", String(opts.dpi ?? PREVIEW_DPI));
  // Leftovers from an earlier run with another padding width would be picked up as well.
  const stale = await ownFiles(opts.outDir, prefix, first, last);
  await Promise.all([...stale.values()].map((file) => rm(file, { force: true })));

  if ((opts.encoder ?? "pdftoppm") === "pdftoppm") {
    await pdftoppm(["-png", ...args, path, join(opts.outDir, prefix)], opts.timeoutMs);
    return ownFiles(opts.outDir, prefix, first, last);
  }
  // No output root: pdftoppm writes the pages as one PPM stream to stdout.
  const files = new Map<number, string>();
  const pages = new PpmReader(
    async (image, index) => {
      const file = join(opts.outDir, `${prefix}-${first + index}.png`);
      await sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } })
        .png({ compressionLevel: PNG_COMPRESSION_LEVEL })
        .toFile(file); // sharp is done with the pixels when this resolves
      files.set(first + index, file);
    },
    { pool: RAW_PAGES },
  );
  await pdftoppm([...args, path], opts.timeoutMs, pages);
  return files;
}

/** A PNG file re-encoded as WebP at the processor's quality. */
export async function toWebp(pngPath: string): Promise<Buffer> {
  return sharp(pngPath, { failOn: "error" }).webp({ quality: WEBP_QUALITY }).toBuffer();
}

async function pdftoppm(args: string[], timeoutMs: number, stdoutReader?: StdoutReader): Promise<void> {
  const result = await runTool("pdftoppm", args, { timeoutMs, stdoutReader, maxStdoutBytes: 1024 * 1024, env: { ...process.env, LC_ALL: "C", LANG: "C" } });
  // pdftoppm writes a 1x1 image and exits 0 when an allocation fails: only stderr tells.
  if (result.code !== 0 || /^(Out of memory|Bogus memory allocation size)/m.test(result.stderr)) throw toolError("pdftoppm", result);
}

/** `<prefix>-<digits>.png` files in dir for pages first..last (any zero padding), by page. */
async function ownFiles(dir: string, prefix: string, first: number, last: number): Promise<Map<number, string>> {
  const files = new Map<number, string>();
  const pattern = new RegExp(`^${prefix.replace(/[.]/g, "\\.")}-(\\d+)\\.png$`);
  for (const name of await readdir(dir)) {
    const digits = pattern.exec(name)?.[1];
    if (digits === undefined) continue;
    const page = Number(digits);
    if (page >= first && page <= last) files.set(page, join(dir, name));
  }
  return new Map([...files.entries()].sort((a, b) => a[0] - b[0]));
}
