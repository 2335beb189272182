/**
 * Which PDF engine should docflow use? Pages per second for the three things
 * the processor makes per page (text, a 200 px wide WebP thumbnail, a 150 DPI
 * PNG preview), text quality against pdftotext, and behaviour on broken files.
 *
 *   node bench/engines.ts [flags]
 *
 * Engines, all in this one process (poppler's CLIs are its children):
 *   poppler           poppler as the processor drove it when this comparison was made
 *                     (extractText; renderPages with encoder "sharp", then toWebp for
 *                     thumbnails; bench/lib/pdftoppm-files.ts keeps that path, production
 *                     now renders through renderPageImages): the BASELINE, every ratio is
 *                     engine / poppler
 *   poppler-pdftoppm  the same with encoder "pdftoppm" (poppler's own PNG encoder)
 *   pdfjs             pdfjs-dist (legacy build), rendering on @napi-rs/canvas
 *   pdfium            @embedpdf/pdfium (PDFium compiled to WASM), through the small
 *                     wrapper below over the raw FPDF_* functions
 * Every engine works the way the processor does: one task per range of
 * `--range` pages (the document is opened per range), thumbnails encoded as WebP
 * and previews as PNG by the same sharp settings (sharp.concurrency(1), PNG
 * level 6, WebP quality 80). pdfjs and pdfium render on the main thread; the
 * sharp encode of page n overlaps the render of page n+1 (as pdftoppm's pipe does).
 *
 * Flags:
 *   --runs N            timed runs per engine and task, median reported (3)
 *   --engines a,b       subset of poppler,poppler-pdftoppm,pdfjs,pdfium (all)
 *   --tasks a,b         subset of text,thumbnail,preview (all)
 *   --docs a.pdf,b.pdf  real PDFs to use (.pdf.gz are unpacked); default: the Debian
 *                       documentation PDFs listed in DEFAULT_DOCS that exist here
 *   --generated N       pages of the generated document (makeTextPdf, defaultPages) (60)
 *   --render-pages N    pages per document for thumbnails and previews (12); text uses all
 *   --range N           pages per engine call, as DOCFLOW_RANGE_SIZE (8)
 *   --no-quality        skip the text and pixel comparisons
 *   --keep DIR          copy the rendered thumbnails and previews of the last run to DIR
 *   --no-robustness     skip the broken-file checks
 *   --probe-timeout MS  a broken-file check taking longer counts as a hang (20000)
 *
 * Internal: `--probe ENGINE FILE` runs one broken-file check and prints JSON (used
 * by the robustness section, in a child process so a crash or hang is contained).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import sharp from "sharp";
import type { WrappedPdfiumModule } from "@embedpdf/pdfium";
import type * as PdfJsModule from "pdfjs-dist/legacy/build/pdf.mjs";
import type { PDFDocumentProxy } from "pdfjs-dist/legacy/build/pdf.mjs";
import { defaultPages, makeEncryptedPdf, makeFakePdf, makePptx, makeTextPdf, makeTruncatedPdf, makeZeroPagePdf } from "../tests/fixtures/generate.ts";
// The benchmark measures the production engine functions themselves.
// eslint-disable-next-line no-restricted-imports
import { PNG_COMPRESSION_LEVEL, PREVIEW_DPI, THUMBNAIL_WIDTH_PX, WEBP_QUALITY, extractText, inspectPdf } from "../services/processor/src/engines/index.ts";
import { renderPages, toWebp } from "./lib/pdftoppm-files.ts";

const BENCH_DIR = import.meta.dirname;
const requireFromBench = createRequire(join(BENCH_DIR, "package.json"));

/** Real PDFs from Debian documentation packages (see bench/results/2026-12-07-history.md for the apt-get line). */
const DEFAULT_DOCS = [
  "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
  "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
  "/usr/share/doc/python-reportlab-doc/reportlab-userguide.pdf",
  "/usr/share/doc/gri/gri.pdf.gz",
  "/usr/share/doc/docbook-xsl-doc-pdf/doc/reference.pdf.gz",
  "/usr/share/doc/live-manual/pdf/live-manual.portrait.en.a4.pdf.gz",
  "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
  "/usr/share/doc/nettle-dev/nettle.pdf.gz",
  "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz",
  "/usr/share/doc/bzip2/manual.pdf.gz",
  "/usr/share/doc/zlib1g-dev/crc-doc.1.0.pdf.gz",
];

const ENGINE_NAMES = ["poppler", "poppler-pdftoppm", "pdfjs", "pdfium"] as const;
type EngineName = (typeof ENGINE_NAMES)[number];
const TASKS = ["text", "thumbnail", "preview"] as const;
type Task = (typeof TASKS)[number];

// ---------------------------------------------------------------------------------------------
// Engines

interface Doc {
  name: string;
  path: string;
  bytes: Buffer;
  pageCount: number;
}

interface Engine {
  readonly name: EngineName;
  readonly tasks: readonly Task[];
  /** Text of pages first..last (one string per page). */
  text(doc: Doc, first: number, last: number): Promise<string[]>;
  /** Renders pages first..last into outDir (thumbnail: WebP 200 px wide; preview: PNG at 150 DPI); returns pages written. */
  render(doc: Doc, first: number, last: number, kind: "thumbnail" | "preview", outDir: string): Promise<number>;
  /** Opens `path`, counts pages, extracts page 1's text and renders page 1 (broken-file checks). */
  probe(path: string, outDir: string): Promise<{ pages: number; chars: number }>;
  memory?(): string;
}

const CALL = { timeoutMs: 120_000 };

/** pdftoppm/pdftotext through the processor's own functions. */
function popplerEngine(encoder: "sharp" | "pdftoppm"): Engine {
  return {
    name: encoder === "sharp" ? "poppler" : "poppler-pdftoppm",
    tasks: encoder === "sharp" ? TASKS : ["thumbnail", "preview"],
    text: (doc, first, last) => extractText(doc.path, first, last, CALL),
    async render(doc, first, last, kind, outDir) {
      const opts = kind === "thumbnail" ? { widthPx: THUMBNAIL_WIDTH_PX, outDir, prefix: "thumb", encoder, ...CALL } : { dpi: PREVIEW_DPI, outDir, prefix: "preview", encoder, ...CALL };
      const files = await renderPages(doc.path, first, last, opts);
      if (kind === "thumbnail") {
        // The processor re-encoded the thumbnail PNG as WebP then (bench/lib/pdftoppm-files.ts).
        for (const file of files.values()) {
          const webp = await toWebp(file);
          await writeFile(`${file}.webp`, webp);
        }
      }
      return files.size;
    },
    async probe(path, outDir) {
      const info = await inspectPdf(path, CALL);
      const [text] = await extractText(path, 1, 1, CALL);
      const files = await renderPages(path, 1, 1, { widthPx: THUMBNAIL_WIDTH_PX, outDir, encoder, ...CALL });
      if (files.size !== 1) throw new Error("page 1 was not rendered");
      return { pages: info.pageCount, chars: text?.length ?? 0 };
    },
  };
}

/** Encodes RGBA pixels (alpha dropped: every engine paints a white page) as the product. */
async function encodeRgba(data: Buffer, width: number, height: number, kind: "thumbnail" | "preview", file: string): Promise<void> {
  const img = sharp(data, { raw: { width, height, channels: 4 } }).removeAlpha();
  if (kind === "thumbnail") await img.webp({ quality: WEBP_QUALITY }).toFile(`${file}.webp`);
  else await img.png({ compressionLevel: PNG_COMPRESSION_LEVEL }).toFile(`${file}.png`);
}

/** Pixel size like pdftoppm: `-scale-to-x 200 -scale-to-y -1`, or `-r 150`. */
function targetSize(widthPt: number, heightPt: number, kind: "thumbnail" | "preview"): { width: number; height: number; scale: number } {
  if (kind === "thumbnail") {
    const scale = THUMBNAIL_WIDTH_PX / widthPt;
    return { width: THUMBNAIL_WIDTH_PX, height: Math.max(1, Math.round(heightPt * scale)), scale };
  }
  const scale = PREVIEW_DPI / 72;
  return { width: Math.ceil(widthPt * scale), height: Math.ceil(heightPt * scale), scale };
}

/**
 * Runs `render(page)` for each page in order, keeping at most one encode in
 * flight while the next page renders (bounded memory, like the PPM pipe).
 */
async function pipelined(first: number, last: number, render: (page: number) => Promise<() => Promise<void>>): Promise<number> {
  let pending: Promise<void> | undefined;
  let done = 0;
  try {
    for (let page = first; page <= last; page++) {
      const encode = await render(page);
      if (pending) await pending;
      pending = encode();
      done++;
    }
  } finally {
    if (pending) await pending;
  }
  return done;
}

// pdf.js ----------------------------------------------------------------------------------------

type PdfJs = typeof PdfJsModule;
type PdfJsDocument = PDFDocumentProxy;

async function pdfjsEngine(): Promise<Engine> {
  const pdfjs: PdfJs = await import("pdfjs-dist/legacy/build/pdf.mjs");
  const { createCanvas } = await import("@napi-rs/canvas");
  const root = dirname(requireFromBench.resolve("pdfjs-dist/package.json"));
  const open = (bytes: Uint8Array) =>
    pdfjs.getDocument({
      data: new Uint8Array(bytes), // pdf.js takes ownership (detaches) the buffer it is given
      standardFontDataUrl: `${root}/standard_fonts/`,
      cMapUrl: `${root}/cmaps/`,
      wasmUrl: `${root}/wasm/`,
      iccUrl: `${root}/iccs/`,
      verbosity: 0,
    });
  const withDoc = async <T>(bytes: Uint8Array, fn: (doc: PdfJsDocument) => Promise<T>): Promise<T> => {
    const task = open(bytes);
    try {
      const doc = await task.promise;
      if (doc.numPages <= 0) throw new Error("pdf.js: the document has no pages");
      return await fn(doc);
    } finally {
      await task.destroy();
    }
  };
  const pageText = async (doc: PdfJsDocument, n: number): Promise<string> => {
    const page = await doc.getPage(n);
    const content = await page.getTextContent();
    // Items are runs of text with their own position; pdf.js does not always put
    // whitespace between runs, so add a space where there is a horizontal gap and a
    // line break where the baseline moves.
    let text = "";
    let prev: { x: number; y: number; size: number } | undefined;
    for (const item of content.items) {
      if (!("str" in item)) continue;
      const [a, b, , , x, y] = item.transform as number[];
      const size = Math.hypot(a!, b!) || 1;
      if (prev && item.str !== "" && !/\s$/.test(text) && !/^\s/.test(item.str)) {
        if (Math.abs(y! - prev.y) > prev.size * 0.5) text += "\n";
        else if (Math.abs(x! - prev.x) > prev.size * 0.15) text += " "; // a gap, or a jump back (stream order)
      }
      text += item.str;
      if (item.hasEOL) text += "\n";
      if (item.str !== "") prev = { x: x! + item.width, y: y!, size };
    }
    page.cleanup();
    // Join words hyphenated across a line break ("declara-" EOL "tions"), as pdftotext does.
    return text.replace(/(\p{L})-\n(\p{L})/gu, "$1$2");
  };
  const renderPage = async (doc: PdfJsDocument, n: number, kind: "thumbnail" | "preview", file: string): Promise<() => Promise<void>> => {
    const page = await doc.getPage(n);
    const unit = page.getViewport({ scale: 1 });
    const { width, height, scale } = targetSize(unit.width, unit.height, kind);
    const viewport = page.getViewport({ scale: kind === "thumbnail" ? width / unit.width : scale });
    const canvas = createCanvas(width, height);
    const context = canvas.getContext("2d");
    // @napi-rs/canvas implements the DOM canvas API pdf.js draws with.
    await page.render({ canvas: canvas as unknown as HTMLCanvasElement, canvasContext: context as unknown as CanvasRenderingContext2D, viewport }).promise;
    const pixels = Buffer.from(context.getImageData(0, 0, width, height).data.buffer);
    page.cleanup();
    return () => encodeRgba(pixels, width, height, kind, file);
  };
  return {
    name: "pdfjs",
    tasks: TASKS,
    text: (doc, first, last) =>
      withDoc(doc.bytes, async (d) => {
        const out: string[] = [];
        for (let n = first; n <= Math.min(last, d.numPages); n++) out.push(await pageText(d, n));
        return out;
      }),
    render: (doc, first, last, kind, outDir) => withDoc(doc.bytes, (d) => pipelined(first, Math.min(last, d.numPages), (n) => renderPage(d, n, kind, join(outDir, `${kind}-${n}`)))),
    probe: async (path, outDir) =>
      withDoc(await readFile(path), async (d) => {
        const text = await pageText(d, 1);
        await (
          await renderPage(d, 1, "thumbnail", join(outDir, "probe"))
        )();
        return { pages: d.numPages, chars: text.length };
      }),
  };
}

// PDFium (WASM) -----------------------------------------------------------------------------------

type PdfiumModule = WrappedPdfiumModule;

/** FPDF_GetLastError() codes (fpdfview.h). */
const PDFIUM_ERRORS: Record<number, string> = {
  1: "unknown error",
  2: "file not found or could not be opened",
  3: "not a PDF or corrupted (format error)",
  4: "password required or incorrect",
  5: "unsupported security scheme",
  6: "page not found or content error",
};
const FPDF_ANNOT = 0x01;
const FPDF_REVERSE_BYTE_ORDER = 0x10; // RGBA instead of BGRA

/**
 * The wrapper @embedpdf/pdfium needs: documents are loaded from a copy in the
 * WASM heap (which must outlive the document), text comes back as UTF-16LE,
 * bitmaps are heap memory we copy out before the next page. Every handle is
 * closed in `finally` so a failing page leaks nothing in the (never shrinking) heap.
 */
class Pdfium {
  readonly m: PdfiumModule;
  /**
   * The raw WASM exports: the package's build wraps every call in assertion
   * checks (and cwrap in ccall); the per-character loop calls these directly.
   */
  readonly raw: {
    FPDFText_GetCharBox: (...args: number[]) => number;
    FPDFText_GetUnicode: (textPage: number, index: number) => number;
    FPDFText_CountRects: (textPage: number, start: number, count: number) => number;
    FPDFText_GetRect: (...args: number[]) => number;
  };

  constructor(m: PdfiumModule) {
    this.m = m;
    this.raw = m.pdfium.wasmExports as unknown as Pdfium["raw"];
  }

  static async load(): Promise<Pdfium> {
    const { init } = await import("@embedpdf/pdfium");
    const wasmBinary = readFileSync(requireFromBench.resolve("@embedpdf/pdfium/pdfium.wasm"));
    const m = await init({ wasmBinary: wasmBinary.buffer.slice(wasmBinary.byteOffset, wasmBinary.byteOffset + wasmBinary.byteLength) });
    m.PDFiumExt_Init();
    return new Pdfium(m);
  }

  get heap(): Uint8Array {
    // Re-read after every call: the heap may have grown (a new buffer). Emscripten's HEAPU8 is not in the package's types.
    return (this.m.pdfium as unknown as { HEAPU8: Uint8Array }).HEAPU8;
  }

  malloc(size: number): number {
    const ptr = this.m.pdfium.wasmExports.malloc(size);
    if (ptr === 0) throw new Error(`PDFium: out of memory allocating ${size} bytes`);
    return ptr;
  }

  free(ptr: number): void {
    this.m.pdfium.wasmExports.free(ptr);
  }

  /** Opens `bytes`, runs fn(doc handle, page count), closes. */
  withDocument<T>(bytes: Uint8Array, fn: (doc: number, pageCount: number) => T): T {
    const data = this.malloc(bytes.length);
    try {
      this.heap.set(bytes, data);
      const doc = this.m.FPDF_LoadMemDocument(data, bytes.length, "");
      if (doc === 0) {
        const code = this.m.FPDF_GetLastError();
        throw new Error(`PDFium cannot open the document: ${PDFIUM_ERRORS[code] ?? `error ${code}`} (FPDF_ERR ${code})`);
      }
      try {
        const count = this.m.FPDF_GetPageCount(doc);
        if (count <= 0) throw new Error("PDFium: the document has no pages");
        return fn(doc, count);
      } finally {
        this.m.FPDF_CloseDocument(doc);
      }
    } finally {
      this.free(data);
    }
  }

  withPage<T>(doc: number, index: number, fn: (page: number) => T): T {
    const page = this.m.FPDF_LoadPage(doc, index);
    if (page === 0) throw new Error(`PDFium cannot load page ${index + 1}: ${PDFIUM_ERRORS[this.m.FPDF_GetLastError()] ?? "unknown"}`);
    try {
      return fn(page);
    } finally {
      this.m.FPDF_ClosePage(page);
    }
  }

  /**
   * The page's text in PDFium's reading order, without the characters that lie
   * wholly outside the page (FPDFText_GetText returns text that runs off the page,
   * e.g. a code listing or a table of contents cut at the right edge; pdftotext
   * drops it, and so do we; FPDFText_GetBoundedText would, but it splits words).
   */
  text(page: number): string {
    const textPage = this.m.FPDFText_LoadPage(page);
    if (textPage === 0) throw new Error("PDFium: FPDFText_LoadPage failed");
    const scratch = this.malloc(48); // FS_RECTF (4 floats) + 4 doubles for FPDFText_GetCharBox
    try {
      const count = this.m.FPDFText_CountChars(textPage);
      if (count <= 0) return "";
      const buf = this.malloc((count + 1) * 2);
      let raw: string;
      try {
        const written = this.m.FPDFText_GetText(textPage, 0, count, buf); // UTF-16 units, with the terminating NUL
        raw = Buffer.from(this.heap.buffer, buf, Math.max(0, written - 1) * 2).toString("utf16le");
      } finally {
        this.free(buf);
      }
      if (!this.m.FPDF_GetPageBoundingBox(page, scratch)) throw new Error("PDFium: FPDF_GetPageBoundingBox failed");
      const [left, top, right, bottom] = Array.from(new Float32Array(this.heap.buffer, scratch, 4)) as [number, number, number, number];
      const box = scratch + 16;
      const f64 = new Float64Array(this.heap.buffer, box, 4); // the heap does not grow inside these loops
      // Fast path: the text's line rectangles (a few dozen per page, computed inside PDFium) all on the page.
      const rects = this.raw.FPDFText_CountRects(textPage, 0, -1);
      let offPage = false;
      for (let i = 0; i < rects && !offPage; i++) {
        // left, top, right, bottom
        if (this.raw.FPDFText_GetRect(textPage, i, box, box + 8, box + 16, box + 24)) {
          offPage = f64[0]! < left - 1 || f64[2]! > right + 1 || f64[3]! < bottom - 1 || f64[1]! > top + 1;
        }
      }
      if (!offPage) return raw.replace(/\uFFFE/g, "").replace(/\r\n/g, "\n");
      // One UTF-16 unit per character unless the page has characters beyond the BMP.
      const units = raw.length === count ? raw : null;
      let out = "";
      for (let i = 0; i < count; i++) {
        const ch = units !== null ? units[i]! : String.fromCodePoint(this.raw.FPDFText_GetUnicode(textPage, i));
        if (this.raw.FPDFText_GetCharBox(textPage, i, box, box + 8, box + 16, box + 24)) {
          // left, right, bottom, top
          if (f64[1]! < left || f64[0]! > right || f64[3]! < bottom || f64[2]! > top) {
            if (out !== "" && !/\s$/.test(out)) out += " ";
            continue;
          }
        }
        out += ch;
      }
      // PDFium marks a word hyphenated across a line break as "cre\uFFFEated" (line break
      // already removed); dropping the marker joins the word, as pdftotext does.
      return out.replace(/\uFFFE/g, "").replace(/\r\n/g, "\n");
    } finally {
      this.free(scratch);
      this.m.FPDFText_ClosePage(textPage);
    }
  }

  /** Renders the page (annotations included, white background) to RGBA pixels. */
  render(page: number, kind: "thumbnail" | "preview"): { data: Buffer; width: number; height: number } {
    const { width, height } = targetSize(this.m.FPDF_GetPageWidthF(page), this.m.FPDF_GetPageHeightF(page), kind);
    const bitmap = this.m.FPDFBitmap_Create(width, height, 1);
    if (bitmap === 0) throw new Error(`PDFium: cannot allocate a ${width}x${height} bitmap`);
    try {
      this.m.FPDFBitmap_FillRect(bitmap, 0, 0, width, height, 0xffffffff);
      this.m.FPDF_RenderPageBitmap(bitmap, page, 0, 0, width, height, 0, FPDF_ANNOT | FPDF_REVERSE_BYTE_ORDER);
      const stride = this.m.FPDFBitmap_GetStride(bitmap);
      const ptr = this.m.FPDFBitmap_GetBuffer(bitmap);
      const data = Buffer.allocUnsafe(width * height * 4);
      const heap = this.heap;
      if (stride === width * 4) data.set(heap.subarray(ptr, ptr + data.length));
      else for (let y = 0; y < height; y++) data.set(heap.subarray(ptr + y * stride, ptr + y * stride + width * 4), y * width * 4);
      return { data, width, height };
    } finally {
      this.m.FPDFBitmap_Destroy(bitmap);
    }
  }
}

async function pdfiumEngine(): Promise<Engine> {
  const p = await Pdfium.load();
  return {
    name: "pdfium",
    tasks: TASKS,
    text: async (doc, first, last) =>
      p.withDocument(doc.bytes, (d, count) => {
        const out: string[] = [];
        for (let n = first; n <= Math.min(last, count); n++) out.push(p.withPage(d, n - 1, (page) => p.text(page)));
        return out;
      }),
    async render(doc, first, last, kind, outDir) {
      // Each page is loaded, rendered, copied out and closed synchronously; only the sharp
      // encode is async. Pointers stay valid across awaits (the heap view is re-read).
      const data = p.malloc(doc.bytes.length);
      p.heap.set(doc.bytes, data);
      const handle = p.m.FPDF_LoadMemDocument(data, doc.bytes.length, "");
      try {
        if (handle === 0) throw new Error(`PDFium cannot open ${doc.name}: FPDF_ERR ${p.m.FPDF_GetLastError()}`);
        const count = p.m.FPDF_GetPageCount(handle);
        return await pipelined(first, Math.min(last, count), async (n) => {
          const img = p.withPage(handle, n - 1, (page) => p.render(page, kind));
          return () => encodeRgba(img.data, img.width, img.height, kind, join(outDir, `${kind}-${n}`));
        });
      } finally {
        if (handle !== 0) p.m.FPDF_CloseDocument(handle);
        p.free(data);
      }
    },
    async probe(path, outDir) {
      const bytes = await readFile(path);
      const { pages, text, img } = p.withDocument(bytes, (d, count) => p.withPage(d, 0, (page) => ({ pages: count, text: p.text(page), img: p.render(page, "thumbnail") })));
      await encodeRgba(img.data, img.width, img.height, "thumbnail", join(outDir, "probe"));
      return { pages, chars: text.length };
    },
    memory: () => `WASM heap ${(p.heap.length / 2 ** 20).toFixed(0)} MiB`,
  };
}

async function makeEngine(name: EngineName): Promise<Engine> {
  switch (name) {
    case "poppler":
      return popplerEngine("sharp");
    case "poppler-pdftoppm":
      return popplerEngine("pdftoppm");
    case "pdfjs":
      return pdfjsEngine();
    case "pdfium":
      return pdfiumEngine();
  }
}

// ---------------------------------------------------------------------------------------------
// Text quality

function words(text: string): string[] {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w !== "");
}

function jaccard(a: string[], b: string[]): number {
  const A = new Set(a);
  const B = new Set(b);
  if (A.size === 0 && B.size === 0) return 1;
  let both = 0;
  for (const w of A) if (B.has(w)) both++;
  return both / (A.size + B.size - both);
}

/** Longest common subsequence of the word sequences / the longer length: 1 = same words in the same order. */
function orderScore(a: string[], b: string[]): number {
  const x = a.slice(0, 3000);
  const y = b.slice(0, 3000);
  if (x.length === 0 && y.length === 0) return 1;
  let prev = new Uint16Array(y.length + 1);
  let cur = new Uint16Array(y.length + 1);
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      cur[j] = x[i - 1] === y[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[y.length]! / Math.max(x.length, y.length);
}

interface QualityRow {
  engine: string;
  pages: number;
  meanJaccard: number;
  pagesAtLeast95: number;
  meanOrder: number;
  worst: { where: string; jaccard: number; onlyPoppler: string[]; onlyEngine: string[] };
  perDoc: Map<string, { jaccard: number; order: number; pages: number }>;
}

function compareText(engine: string, baseline: Map<string, string[]>, other: Map<string, string[]>): QualityRow {
  let n = 0;
  let sumJ = 0;
  let sumO = 0;
  let good = 0;
  let worst: QualityRow["worst"] = { where: "-", jaccard: 1, onlyPoppler: [], onlyEngine: [] };
  const perDoc = new Map<string, { jaccard: number; order: number; pages: number }>();
  for (const [doc, pages] of baseline) {
    const theirs = other.get(doc) ?? [];
    let dj = 0;
    let dord = 0;
    for (const [i, text] of pages.entries()) {
      const a = words(text);
      const b = words(theirs[i] ?? "");
      const j = jaccard(a, b);
      const o = orderScore(a, b);
      n++;
      sumJ += j;
      sumO += o;
      dj += j;
      dord += o;
      if (j >= 0.95) good++;
      if (j < worst.jaccard) {
        const A = new Set(a);
        const B = new Set(b);
        worst = { where: `${doc} p.${i + 1}`, jaccard: j, onlyPoppler: [...A].filter((w) => !B.has(w)).slice(0, 6), onlyEngine: [...B].filter((w) => !A.has(w)).slice(0, 6) };
      }
    }
    perDoc.set(doc, { jaccard: dj / Math.max(1, pages.length), order: dord / Math.max(1, pages.length), pages: pages.length });
  }
  return { engine, pages: n, meanJaccard: sumJ / Math.max(1, n), pagesAtLeast95: good / Math.max(1, n), meanOrder: sumO / Math.max(1, n), worst, perDoc };
}

/** page number -> file of one engine's output for one document (thumbnails: the WebP). */
async function outputs(dir: string): Promise<Map<number, string>> {
  const files = new Map<number, string>();
  const { readdir } = await import("node:fs/promises");
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /-(\d+)\.(png\.webp|webp|png)$/.exec(name);
    if (!m) continue;
    const page = Number(m[1]);
    const prev = files.get(page);
    if (prev === undefined || name.endsWith(".webp")) files.set(page, join(dir, name));
  }
  return files;
}

interface PixelRow {
  engine: string;
  task: Task;
  pages: number;
  meanDiff: number;
  worst: string;
  worstDiff: number;
  blank: number;
  sizeMismatch: number;
}

/**
 * Compares an engine's images with poppler's, page by page, in grey levels:
 * mean |difference| (0-255; anti-aliasing and font hinting alone give a few
 * levels), and how many pages have less than a tenth of poppler's ink (blank renders).
 */
async function comparePixels(engine: string, task: Task, docs: Doc[], workDir: string): Promise<PixelRow> {
  let pages = 0;
  let sum = 0;
  let worst = "-";
  let worstDiff = 0;
  let blank = 0;
  let sizeMismatch = 0;
  for (const doc of docs) {
    const base = await outputs(join(workDir, `poppler-${task}`, doc.name));
    const mine = await outputs(join(workDir, `${engine}-${task}`, doc.name));
    for (const [page, baseFile] of base) {
      const file = mine.get(page);
      if (file === undefined) continue;
      const b = await sharp(baseFile).greyscale().raw().toBuffer({ resolveWithObject: true });
      const meta = await sharp(file).metadata();
      if (Math.abs((meta.width ?? 0) - b.info.width) > 1 || Math.abs((meta.height ?? 0) - b.info.height) > 1) sizeMismatch++;
      const o = await sharp(file).greyscale().resize(b.info.width, b.info.height, { fit: "fill" }).raw().toBuffer();
      let diff = 0;
      let inkBase = 0;
      let inkMine = 0;
      for (let i = 0; i < b.data.length; i++) {
        diff += Math.abs(b.data[i]! - o[i]!);
        if (b.data[i]! < 200) inkBase++;
        if (o[i]! < 200) inkMine++;
      }
      const mean = diff / b.data.length;
      pages++;
      sum += mean;
      if (inkBase > 100 && inkMine < inkBase / 10) blank++;
      if (mean > worstDiff) {
        worstDiff = mean;
        worst = `${doc.name} p.${page}`;
      }
    }
  }
  return { engine, task, pages, meanDiff: sum / Math.max(1, pages), worst, worstDiff, blank, sizeMismatch };
}

// ---------------------------------------------------------------------------------------------
// Robustness (each check in a child process: a crash or a hang cannot take the benchmark down)

interface ProbeResult {
  outcome: "opened" | "error" | "crash" | "hang";
  detail: string;
  ms: number;
}

async function probeInChild(engine: EngineName, file: string, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now();
  const child = spawn(process.execPath, [join(BENCH_DIR, "engines.ts"), "--probe", engine, file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => child.once("close", (c, s) => res([c, s])));
  clearTimeout(timer);
  const ms = performance.now() - started;
  if (timedOut) return { outcome: "hang", detail: `no answer in ${timeoutMs} ms (killed)`, ms };
  const line = out.trim().split("\n").pop() ?? "";
  try {
    const parsed = JSON.parse(line) as { ok: boolean; detail: string };
    return { outcome: parsed.ok ? "opened" : "error", detail: parsed.detail, ms };
  } catch {
    return { outcome: "crash", detail: `exit ${code ?? signal}: ${err.trim().split("\n").slice(-2).join(" ").slice(0, 160)}`, ms };
  }
}

async function runProbe(engineName: EngineName, file: string): Promise<void> {
  const outDir = await mkdtemp(join(tmpdir(), "docflow-bench-probe-"));
  try {
    const engine = await makeEngine(engineName);
    const r = await engine.probe(file, outDir);
    console.log(JSON.stringify({ ok: true, detail: `opened: ${r.pages} pages, page 1 text ${r.chars} chars` }));
  } catch (err) {
    const e = err as Error & { code?: string };
    const code = typeof e.code === "string" && e.name === "DocflowError" ? `${e.code}: ` : `${e.name}: `;
    console.log(JSON.stringify({ ok: false, detail: `${code}${e.message.split("\n")[0]!.slice(0, 140)}` }));
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
  process.exit(0); // pdf.js may keep timers; the probe is done
}

// ---------------------------------------------------------------------------------------------
// Main

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(" | ")} |`;
  return [line(rows[0]!), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}

async function loadDocs(paths: string[], workDir: string, generatedPages: number): Promise<Doc[]> {
  const docs: Doc[] = [];
  const generated = join(workDir, `generated-${generatedPages}p.pdf`);
  await makeTextPdf(generated, defaultPages(generatedPages));
  const list = [generated, ...paths];
  for (const src of list) {
    if (!existsSync(src)) continue;
    let path = src;
    if (src.endsWith(".gz")) {
      path = join(workDir, src.split("/").pop()!.replace(/\.gz$/, ""));
      await writeFile(path, gunzipSync(await readFile(src)));
    }
    const info = await inspectPdf(path, CALL);
    docs.push({
      name: path
        .split("/")
        .pop()!
        .replace(/\.pdf$/, ""),
      path,
      bytes: await readFile(path),
      pageCount: info.pageCount,
    });
  }
  return docs;
}

function ranges(first: number, last: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let f = first; f <= last; f += size) out.push([f, Math.min(last, f + size - 1)]);
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "3" },
      engines: { type: "string", default: ENGINE_NAMES.join(",") },
      tasks: { type: "string", default: TASKS.join(",") },
      docs: { type: "string" },
      generated: { type: "string", default: "60" },
      "render-pages": { type: "string", default: "12" },
      range: { type: "string", default: "8" },
      "no-quality": { type: "boolean", default: false },
      "no-robustness": { type: "boolean", default: false },
      keep: { type: "string" },
      "probe-timeout": { type: "string", default: "20000" },
      probe: { type: "string" },
    },
    allowPositionals: true,
  });
  if (values.probe !== undefined) {
    const file = process.argv[process.argv.length - 1]!;
    await runProbe(values.probe as EngineName, file);
    return;
  }
  const runs = Number(values.runs);
  const renderPagesPerDoc = Number(values["render-pages"]);
  const rangeSize = Number(values.range);
  const engineNames = values.engines.split(",").map((s) => s.trim()) as EngineName[];
  for (const e of engineNames) if (!ENGINE_NAMES.includes(e)) throw new Error(`unknown engine ${e} (${ENGINE_NAMES.join(", ")})`);
  const tasks = values.tasks.split(",").map((s) => s.trim()) as Task[];
  for (const t of tasks) if (!TASKS.includes(t)) throw new Error(`unknown task ${t} (${TASKS.join(", ")})`);
  if (!engineNames.includes("poppler")) engineNames.unshift("poppler"); // the baseline is always measured

  const workDir = await mkdtemp(join(tmpdir(), "docflow-bench-engines-"));
  const cleanup = () => rm(workDir, { recursive: true, force: true });
  process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));
  try {
    const docPaths = values.docs !== undefined ? values.docs.split(",").map((p) => resolve(p)) : DEFAULT_DOCS;
    const docs = await loadDocs(docPaths, workDir, Number(values.generated));
    if (docs.length === 1) console.log("note: no real PDFs found; see bench/results/2026-12-07-history.md (apt-get install ... doc packages) or pass --docs");

    const cpu = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
    const poppler = spawnSync("pdftoppm", ["-v"], { encoding: "utf8" }).stderr.split("\n")[0] ?? "";
    const versions = (name: string) => {
      try {
        // Some packages do not export ./package.json: find it beside their resolved entry point.
        let dir = dirname(requireFromBench.resolve(name));
        while (!existsSync(join(dir, "package.json")) || !readFileSync(join(dir, "package.json"), "utf8").includes(`"name": "${name}"`)) {
          if (dir === dirname(dir)) return "?";
          dir = dirname(dir);
        }
        return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
      } catch {
        return "not installed";
      }
    };
    console.log(`# docflow PDF engines: ${new Date().toISOString()}`);
    const os = await import("node:os");
    console.log(
      `load average at start ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")} (other processes share the cores)`,
    );
    console.log(
      `node ${process.version}, ${cpu}, ${os.availableParallelism()} cores; ${poppler.trim() || "poppler"}; pdfjs-dist ${versions("pdfjs-dist")}, @napi-rs/canvas ${versions("@napi-rs/canvas")}, @embedpdf/pdfium ${versions("@embedpdf/pdfium")}, sharp ${sharp.versions.sharp}`,
    );
    console.log(`runs ${runs} (median), range ${rangeSize} pages per call, thumbnails/previews on the first ${renderPagesPerDoc} pages of each document, text on all pages`);
    console.log(
      table([
        ["document", "pages", "size", "text pages", "render pages"],
        ...docs.map((d) => [d.name, String(d.pageCount), `${(d.bytes.length / 1024).toFixed(0)} KiB`, String(d.pageCount), String(Math.min(d.pageCount, renderPagesPerDoc))]),
      ]),
    );

    const engines: Engine[] = [];
    for (const name of engineNames) {
      try {
        engines.push(await makeEngine(name));
      } catch (err) {
        console.log(`! engine ${name} could not start: ${(err as Error).message} (npm ci --prefix bench?)`);
      }
    }

    // times[engine][task] = seconds per run; texts[engine] = doc -> page texts (first run)
    const times = new Map<string, Map<Task, number[]>>();
    const pagesDone = new Map<string, Map<Task, number>>();
    const texts = new Map<string, Map<string, string[]>>();
    const failures: string[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const engine of engines) {
        for (const task of tasks) {
          if (!engine.tasks.includes(task)) continue;
          const outDir = join(workDir, `${engine.name}-${task}`);
          await rm(outDir, { recursive: true, force: true });
          await mkdir(outDir, { recursive: true });
          let pages = 0;
          const t0 = performance.now();
          for (const doc of docs) {
            const last = task === "text" ? doc.pageCount : Math.min(doc.pageCount, renderPagesPerDoc);
            const docOut = join(outDir, doc.name);
            await mkdir(docOut, { recursive: true });
            const collected: string[] = [];
            for (const [f, l] of ranges(1, last, rangeSize)) {
              try {
                if (task === "text") {
                  const got = await engine.text(doc, f, l);
                  collected.push(...got);
                  pages += got.length;
                } else {
                  pages += await engine.render(doc, f, l, task, docOut);
                }
              } catch (err) {
                failures.push(`${engine.name} ${task} ${doc.name} pages ${f}-${l}: ${(err as Error).message.split("\n")[0]}`);
              }
            }
            if (task === "text" && run === 1) {
              if (!texts.has(engine.name)) texts.set(engine.name, new Map());
              texts.get(engine.name)!.set(doc.name, collected);
            }
          }
          const seconds = (performance.now() - t0) / 1000;
          if (!times.has(engine.name)) times.set(engine.name, new Map());
          if (!pagesDone.has(engine.name)) pagesDone.set(engine.name, new Map());
          const list = times.get(engine.name)!.get(task) ?? [];
          list.push(seconds);
          times.get(engine.name)!.set(task, list);
          pagesDone.get(engine.name)!.set(task, pages);
          process.stderr.write(`  run ${run} ${engine.name.padEnd(16)} ${task.padEnd(9)} ${pages} pages in ${seconds.toFixed(2)} s\n`);
        }
      }
    }

    // Speed table
    console.log("\n## Pages per second (one process, median of runs; ratio = engine / poppler)");
    const rate = (engine: string, task: Task): number | undefined => {
      const t = times.get(engine)?.get(task);
      const p = pagesDone.get(engine)?.get(task);
      return t && p !== undefined ? p / median(t) : undefined;
    };
    const rows: string[][] = [["engine", ...tasks.map((t) => `${t} p/s`), ...tasks.map((t) => `${t} ratio`), "memory"]];
    for (const engine of engines) {
      const cells = tasks.map((t) => rate(engine.name, t));
      const ratios = tasks.map((t) => {
        const base = rate("poppler", t);
        const mine = rate(engine.name, t);
        return base && mine ? `${(mine / base).toFixed(2)}x` : "-";
      });
      const pagesNote = tasks.map((t) => pagesDone.get(engine.name)?.get(t));
      rows.push([
        engine.name + (engine.name === "poppler" ? " (baseline)" : ""),
        ...cells.map((c, i) => (c === undefined ? "-" : `${c.toFixed(1)} (${pagesNote[i]} p)`)),
        ...ratios,
        engine.memory?.() ?? "",
      ]);
    }
    console.log(table(rows));
    console.log(
      `process peak RSS (all engines together): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; load average now ${(await import("node:os"))
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
    if (failures.length > 0) {
      console.log(`\n${failures.length} failed calls (first 10):`);
      for (const f of failures.slice(0, 10)) console.log(`  ${f}`);
    }

    // Quality table
    if (!values["no-quality"] && tasks.includes("text") && texts.has("poppler")) {
      console.log("\n## Text quality against pdftotext (words: NFKC, lower case, letters and digits)");
      console.log("jaccard = shared distinct words / all distinct words, per page; order = LCS of the word sequences / longer sequence");
      const baseline = texts.get("poppler")!;
      const q = [...texts.keys()].filter((e) => e !== "poppler").map((e) => compareText(e, baseline, texts.get(e)!));
      console.log(
        table([
          ["engine", "pages", "mean jaccard", "pages >= 0.95", "mean order", "worst page", "only in poppler", "only in engine"],
          ...q.map((r) => [
            r.engine,
            String(r.pages),
            r.meanJaccard.toFixed(3),
            `${(r.pagesAtLeast95 * 100).toFixed(1)}%`,
            r.meanOrder.toFixed(3),
            `${r.worst.where} (${r.worst.jaccard.toFixed(2)})`,
            r.worst.onlyPoppler.join(" "),
            r.worst.onlyEngine.join(" "),
          ]),
        ]),
      );
      console.log("\nper document (jaccard / order):");
      console.log(
        table([
          ["document", ...q.map((r) => r.engine)],
          ...[...baseline.keys()].map((d) => [
            d,
            ...q.map((r) => {
              const x = r.perDoc.get(d);
              return x ? `${x.jaccard.toFixed(3)} / ${x.order.toFixed(3)}` : "-";
            }),
          ]),
        ]),
      );
    }

    // Pixels against poppler's
    const renderTasks = tasks.filter((t): t is "thumbnail" | "preview" => t !== "text");
    if (!values["no-quality"] && renderTasks.length > 0) {
      console.log("\n## Rendering against poppler's (grey levels 0-255, last run's images)");
      const rowsPx: string[][] = [["engine", "task", "pages", "mean |diff|", "worst page", "pages ~blank", "size off by >1 px"]];
      for (const engine of engines) {
        if (engine.name === "poppler") continue;
        for (const task of renderTasks) {
          const r = await comparePixels(engine.name, task, docs, workDir);
          rowsPx.push([r.engine, r.task, String(r.pages), r.meanDiff.toFixed(2), `${r.worst} (${r.worstDiff.toFixed(1)})`, String(r.blank), String(r.sizeMismatch)]);
        }
      }
      console.log(table(rowsPx));
    }
    if (values.keep !== undefined) {
      const { cp } = await import("node:fs/promises");
      for (const engine of engines) {
        for (const task of renderTasks) {
          const from = join(workDir, `${engine.name}-${task}`);
          if (existsSync(from)) await cp(from, join(resolve(values.keep), `${engine.name}-${task}`), { recursive: true });
        }
      }
      console.log(`images kept in ${resolve(values.keep)}`);
    }

    // Robustness table
    if (!values["no-robustness"]) {
      console.log("\n## Broken and hostile files (each check in its own child process)");
      const dir = join(workDir, "broken");
      await mkdir(dir);
      const src = join(dir, "source.pdf");
      await makeTextPdf(src, defaultPages(3));
      const files: Array<[string, string]> = [];
      const add = async (label: string, name: string, make: (path: string) => Promise<void>) => {
        const path = join(dir, name);
        try {
          await make(path);
          files.push([label, path]);
        } catch (err) {
          console.log(`  (skipped ${label}: ${(err as Error).message.split("\n")[0]})`);
        }
      };
      await add("truncated (60%)", "truncated.pdf", (p) => makeTruncatedPdf(src, p));
      await add("encrypted (AES-256, user pw)", "encrypted.pdf", (p) => makeEncryptedPdf(src, p));
      await add("fake (%PDF + garbage)", "fake.pdf", (p) => makeFakePdf(p));
      await add("zero pages", "zero.pdf", (p) => makeZeroPagePdf(p));
      await add("empty (0 bytes)", "empty.pdf", (p) => writeFile(p, ""));
      await add("PPTX named .pdf", "deck.pdf", (p) => makePptx(p, ["hello"]));
      const realTruncSrc = docs.find((d) => d.name !== docs[0]!.name);
      if (realTruncSrc) await add(`truncated real (${realTruncSrc.name})`, "real-truncated.pdf", (p) => makeTruncatedPdf(realTruncSrc.path, p));
      const timeout = Number(values["probe-timeout"]);
      const header = ["file", ...engines.map((e) => e.name)];
      const out: string[][] = [header];
      const details: string[] = [];
      for (const [label, path] of files) {
        const size = (await stat(path)).size;
        const row = [`${label}, ${size} B`];
        for (const engine of engines) {
          const r = await probeInChild(engine.name, path, timeout);
          row.push(`${r.outcome === "error" ? "error" : r.outcome.toUpperCase()} ${r.ms.toFixed(0)} ms`);
          details.push(`  ${label} / ${engine.name}: ${r.outcome}: ${r.detail}`);
        }
        out.push(row);
      }
      console.log(table(out));
      console.log("(error = refused with an error, as wanted; OPENED = accepted; CRASH/HANG = the process died or did not answer; times include a fresh Node start)");
      console.log(details.join("\n"));
    }
  } finally {
    await cleanup();
  }
  process.exit(0); // pdf.js may keep timers alive; everything is reported
}

await main();
