/**
 * PDF engine: poppler-utils CLIs (pdfinfo, pdftotext, pdftoppm) run as child
 * processes, one call per page range (never one spawn per page).
 *
 * Errors: problems with the document are `DocflowError` (`pdf_invalid`,
 * `pdf_encrypted`, `pdf_no_pages`, `processing_timeout`): the job fails.
 * Everything else (poppler missing, file missing, killed by someone else,
 * output too large, aborted, bad page range from the caller) is a plain Error:
 * the message is retried.
 *
 * What poppler 22.12 really prints (checked on generated fixtures):
 * - user password needed:   exit 1, "Command Line Error: Incorrect password"
 * - truncated / garbage:    exit 1, "Syntax Error: Couldn't find trailer dictionary",
 *                           "Syntax Error: Couldn't read xref table" (a ZIP adds
 *                           "Syntax Warning: May not be a PDF file (continuing anyway)");
 *                           0-byte file: "Syntax Error: Document stream is empty"
 * - page tree /Count 0:     exit 99, "Syntax Error: Invalid page count 0" and
 *                           "Wrong page range given: the first page (1) can not be after the last page (0)."
 *                           (pdfinfo fails this way even without -f/-l)
 * - missing file:           exit 1, "I/O Error: Couldn't open file '...'"
 * - first page > count:     exit 99, "Wrong page range given: ..."; a last page beyond
 *                           the count is silently clamped.
 * - pdfinfo -f/-l prints "Page    1 size:  612 x 792 pts (letter)" (padded with
 *   spaces) and "Page    1 rot:   90"; sizes are the unrotated crop box.
 * - An empty user password with an owner password opens normally
 *   ("Encrypted: yes (...)"); permissions (no copy/print) are not enforced.
 * - `pdftoppm -png` spends ~0.5 s per 150 DPI page in its PNG encoder while
 *   rendering takes ~20 ms: `renderPageImages` takes raw pixels and encodes
 *   them with sharp (~40 ms for the PNG).
 * - Without an output root pdftoppm writes every page of the range to stdout
 *   as one stream of concatenated binary PPMs ("P6\n<w> <h>\n255\n" + RGB).
 * - When an allocation fails (address-space cap reached: "Out of memory"; or
 *   width x height x 3 beyond 2^31: "Bogus memory allocation size"), pdftoppm
 *   writes a 1x1 image for the page and exits 0: only stderr tells.
 */
import { open } from "node:fs/promises";
import { DocflowError } from "@docflow/contracts";
import { encodePageImages, type PageImages } from "./images.ts";
import { BufferPool, PpmReader } from "./ppm.ts";
import { runTool, toolError, type RunResult, type StdoutReader } from "./run.ts";

export interface PdfCallOptions {
  /** The child is SIGKILLed after this long; the call fails with `processing_timeout`. */
  timeoutMs: number;
  /** Aborting kills the child and fails the call with a plain (retryable) Error. */
  signal?: AbortSignal | undefined;
  /** Cap on the child's stdout (default 64 MiB). */
  maxOutputBytes?: number | undefined;
  /** Cap on the child's address space (see `RunOptions.maxMemoryBytes`); none when absent. */
  maxMemoryBytes?: number | undefined;
}

export interface PdfPageSize {
  /** 1-based page number. */
  page: number;
  /** Crop box width in PDF points (1/72 in), before rotation. */
  width: number;
  /** Crop box height in PDF points, before rotation. */
  height: number;
  /** /Rotate in degrees (0, 90, 180, 270); at 90 and 270 the page shows as height x width. */
  rotation: number;
}

export interface PdfInfo {
  pageCount: number;
  /** True when the file is encrypted but opens without a password (owner password only). */
  encrypted: boolean;
  title?: string;
  author?: string;
  /** The document carries JavaScript (pdfinfo's "JavaScript: yes"). Poppler never runs it. */
  javascript: boolean;
  pdfVersion?: string;
  /** Every page's size, when asked for with `pageSizes: true`. */
  pages?: PdfPageSize[];
}

export const THUMBNAIL_WIDTH_PX = 200;
export const PREVIEW_DPI = 150;

/** Raw page buffers shared by every render of this process (a few pages' worth; see `BufferPool`). */
const RAW_PAGES = new BufferPool(64 * 1024 * 1024);

/** Larger than any real page count: pdfinfo clamps `-l` to the last page. */
const ALL_PAGES = 2_147_483_647;

/**
 * Page count, encryption and title (pdfinfo). Checks for `%PDF-` in the first
 * 1024 bytes before poppler sees the file (poppler "continues anyway" on files
 * that are not PDFs). With `pageSizes: true` every page's size is included
 * (one pdfinfo call; costs time on very long documents).
 */
export async function inspectPdf(path: string, opts: PdfCallOptions & { pageSizes?: boolean }): Promise<PdfInfo> {
  await assertPdfHeader(path);
  const args = ["-enc", "UTF-8"];
  if (opts.pageSizes === true) args.push("-f", "1", "-l", String(ALL_PAGES));
  args.push(path);
  const result = await runPoppler("pdfinfo", args, opts);
  const text = result.stdout.toString("utf8");

  const pagesMatch = /^Pages:\s+(\d+)\s*$/m.exec(text);
  if (pagesMatch?.[1] === undefined) {
    throw new Error(`pdfinfo printed no page count for ${path}`);
  }
  const pageCount = Number(pagesMatch[1]);
  if (pageCount === 0) throw new DocflowError("pdf_no_pages");

  const info: PdfInfo = { pageCount, encrypted: /^Encrypted:\s+yes\b/m.test(text), javascript: /^JavaScript:\s+yes\b/m.test(text) };
  const title = /^Title:[ \t]*(.*)$/m.exec(text)?.[1]?.trim();
  if (title !== undefined && title !== "") info.title = title;
  const author = /^Author:[ \t]*(.*)$/m.exec(text)?.[1]?.trim();
  if (author !== undefined && author !== "") info.author = author;
  const version = /^PDF version:\s+(\S+)/m.exec(text)?.[1];
  if (version !== undefined) info.pdfVersion = version;
  if (opts.pageSizes === true) info.pages = parsePageSizes(text);
  return info;
}

/**
 * How many fonts (`pdffonts`, one line per font object) and images
 * (`pdfimages -list`, one line per image drawn, inline images included) the
 * document has. Both tools print two header lines first.
 */
export async function countFontsAndImages(path: string, opts: PdfCallOptions): Promise<{ fonts: number; images: number }> {
  const lines = (r: RunResult) =>
    Math.max(
      0,
      r.stdout
        .toString("utf8")
        .split("\n")
        .filter((l) => l.trim() !== "").length - 2,
    );
  const call = { ...opts, maxOutputBytes: opts.maxOutputBytes ?? 32 * 1024 * 1024 };
  const [fonts, images] = await Promise.all([runPoppler("pdffonts", [path], call), runPoppler("pdfimages", ["-list", path], call)]);
  return { fonts: lines(fonts), images: lines(images) };
}

/** Per-page sizes in PDF points for pages first..last (a last page beyond the document is clamped). */
export async function pageSizes(path: string, first: number, last: number, opts: PdfCallOptions): Promise<PdfPageSize[]> {
  checkRange(first, last);
  const result = await runPoppler("pdfinfo", ["-enc", "UTF-8", "-f", String(first), "-l", String(last), path], opts);
  return parsePageSizes(result.stdout.toString("utf8"));
}

/**
 * Text of pages first..last, one string per page, exactly `last - first + 1`
 * of them (pages poppler does not emit, e.g. beyond the end, are ""). One
 * pdftotext call in default reading order (not -layout), split on the form
 * feed poppler writes after every page; only trailing whitespace is trimmed.
 */
export async function extractText(path: string, first: number, last: number, opts: PdfCallOptions): Promise<string[]> {
  checkRange(first, last);
  const expected = last - first + 1;
  const pages = await pdftotext(path, first, last, opts);
  if (pages.length <= expected) {
    while (pages.length < expected) pages.push("");
    return pages;
  }
  // More pieces than pages: a page's own text contains a form feed. Which page
  // is ambiguous, so ask poppler page by page (rare; correctness over speed).
  const exact: string[] = [];
  for (let page = first; page <= last; page++) {
    exact.push((await pdftotext(path, page, page, opts)).join("\f"));
  }
  return exact;
}

async function pdftotext(path: string, first: number, last: number, opts: PdfCallOptions): Promise<string[]> {
  const result = await runPoppler("pdftotext", ["-f", String(first), "-l", String(last), "-enc", "UTF-8", path, "-"], opts);
  const pieces = result.stdout.toString("utf8").split("\f");
  // Every page ends with "\f", so the last piece is what follows the last page: "".
  if (pieces.length > 0 && pieces[pieces.length - 1]?.trim() === "") pieces.pop();
  return pieces.map((page) => page.trimEnd());
}

export interface PageImagesOptions extends PdfCallOptions {
  /** Resolution of the preview in DPI (default 150). */
  dpi?: number | undefined;
  /** Width of the thumbnail in pixels (default 200), scaled from the preview's pixels. */
  thumbnailWidthPx?: number | undefined;
}

/**
 * Renders pages first..last once, with one pdftoppm call at the preview's
 * resolution streaming raw pixels, and encodes each page as a PNG preview and
 * a WebP thumbnail scaled from the same pixels (rendering the page a second
 * time at thumbnail size cost more than scaling it). `onPage` gets each page
 * in order as soon as it is encoded, and runs beside the next page's
 * encoding, one call at a time; the call fails with the first `onPage` error
 * (and kills pdftoppm). Nothing of the range is written to disk. When the
 * promise settles, no `onPage` call is still running. Returns how many pages
 * were delivered (a last page beyond the document is clamped).
 */
export async function renderPageImages(path: string, first: number, last: number, opts: PageImagesOptions, onPage: (page: PageImages & { page: number }) => Promise<void>): Promise<number> {
  checkRange(first, last);
  const dpi = opts.dpi ?? PREVIEW_DPI;
  if (!(dpi > 0 && dpi <= 2400)) throw new RangeError(`invalid dpi ${dpi}`);
  const thumbnailWidthPx = opts.thumbnailWidthPx ?? THUMBNAIL_WIDTH_PX;
  if (!(Number.isInteger(thumbnailWidthPx) && thumbnailWidthPx > 0)) throw new RangeError(`invalid thumbnailWidthPx ${thumbnailWidthPx}`);
  let delivering: Promise<void> = Promise.resolve();
  let failed: { error: unknown } | undefined;
  let delivered = 0;
  const pages = new PpmReader(
    async (image, index) => {
      const images = await encodePageImages(image, { thumbnailWidthPx }); // the raw pixels go back to the pool after this
      await delivering;
      if (failed) throw failed.error;
      delivering = onPage({ page: first + index, ...images }).then(
        () => void delivered++,
        (error: unknown) => void (failed ??= { error }),
      );
    },
    { pool: RAW_PAGES },
  );
  try {
    await runPoppler("pdftoppm", ["-f", String(first), "-l", String(last), "-r", String(dpi), path], {
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      stdoutReader: pages,
      maxMemoryBytes: opts.maxMemoryBytes,
    });
  } finally {
    await delivering;
  }
  if (failed) throw failed.error;
  return delivered;
}

function parsePageSizes(text: string): PdfPageSize[] {
  const rotations = new Map<number, number>();
  for (const m of text.matchAll(/^Page\s+(\d+)\s+rot:\s+(-?\d+)/gm)) {
    rotations.set(Number(m[1]), ((Number(m[2]) % 360) + 360) % 360);
  }
  const sizes: PdfPageSize[] = [];
  for (const m of text.matchAll(/^Page\s+(\d+)\s+size:\s+([\d.]+) x ([\d.]+) pts/gm)) {
    const page = Number(m[1]);
    sizes.push({ page, width: Number(m[2]), height: Number(m[3]), rotation: rotations.get(page) ?? 0 });
  }
  return sizes;
}

function checkRange(first: number, last: number): void {
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last < first) {
    throw new RangeError(`invalid page range ${first}-${last}`);
  }
}

/** `pdf_invalid` unless `%PDF-` appears within the first 1024 bytes (as readers accept). */
async function assertPdfHeader(path: string): Promise<void> {
  const file = await open(path, "r"); // a missing file is environmental: plain ENOENT
  try {
    const head = Buffer.alloc(1024);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    if (head.subarray(0, bytesRead).indexOf("%PDF-") < 0) {
      throw new DocflowError("pdf_invalid", bytesRead === 0 ? "The file is empty." : "The file is not a PDF.");
    }
  } finally {
    await file.close();
  }
}

/** Runs a poppler tool and turns its failures into the right kind of error. */
async function runPoppler(command: string, args: string[], opts: PdfCallOptions & { stdoutReader?: StdoutReader | undefined }): Promise<RunResult> {
  const result = await runTool(command, args, {
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
    maxStdoutBytes: opts.maxOutputBytes,
    maxMemoryBytes: opts.maxMemoryBytes,
    stdoutReader: opts.stdoutReader,
    // Poppler's messages are English only in the C locale; keep them stable for matching.
    env: { ...process.env, LC_ALL: "C", LANG: "C" },
  });
  const stderr = result.stderr;
  // Poppler's allocator gives up with these words, then writes a 1x1 image and exits 0:
  // a page that needs more memory than its address-space cap (or than poppler allows).
  if (/^(Out of memory|Bogus memory allocation size)/m.test(stderr)) {
    throw new DocflowError("page_too_large", "Rendering a page needed more memory than allowed.", { cause: toolError(command, result) });
  }
  if (result.code === 0) return result;
  const cause = toolError(command, result);
  if (/Incorrect password/i.test(stderr)) throw new DocflowError("pdf_encrypted", undefined, { cause });
  if (/Invalid page count 0|last page \(0\)/.test(stderr)) throw new DocflowError("pdf_no_pages", undefined, { cause });
  if (result.code === 1) {
    // Exit 1 is "error opening a PDF file": the document, unless the file itself could not be opened.
    if (/I\/O Error: Couldn't open file/.test(stderr)) throw cause;
    throw new DocflowError("pdf_invalid", undefined, { cause });
  }
  if (/Wrong page range given/.test(stderr)) {
    throw new RangeError(`${command}: page range outside the document: ${stderr.trim().split("\n").pop() ?? ""}`, { cause });
  }
  throw cause;
}
