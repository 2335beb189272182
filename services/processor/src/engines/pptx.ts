/**
 * PPTX engine: one headless LibreOffice (`soffice --convert-to pdf`) per file.
 *
 * Start-up dominates (1.5 s warm profile, 4-6 s cold on 2 cores). A persistent
 * listener pool (`soffice --accept=...` per worker with its own profile, UNO
 * client, periodic restarts as it grows to ~1 GB) is future work, issue 5; it
 * is deliberately not built here.
 *
 * Profile directories: soffice hands a request to an already running instance
 * that uses the same `-env:UserInstallation` and returns at once (and that
 * instance then exits), so concurrent calls MUST get distinct `profileDir`s.
 * Reusing one directory for consecutive calls of the same worker slot is fine
 * and saves the profile creation on every call after the first.
 *
 * What LibreOffice 7.4 really does (checked): exit code 0 even when it fails;
 * failure shows only as "Error: source file could not be loaded" on stderr and
 * no output file; stdout says "convert <in> -> <out> using filter :
 * impress_pdf_Export"; every run prints "Warning: failed to launch javaldx"
 * (harmless). A damaged slide XML still converts (blank slide). soffice forks
 * (oosplash -> soffice.bin), hence the process group.
 */
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { DocflowError } from "@docflow/contracts";
import { runTool, toolError } from "./run.ts";

export interface ConvertOptions {
  /** soffice (its whole process group) is SIGKILLed after this long: `processing_timeout`. */
  timeoutMs: number;
  /**
   * LibreOffice user profile directory for this call. Concurrent calls must
   * use distinct directories (see the module comment); it is created if missing.
   */
  profileDir: string;
  /** Aborting kills the process group and fails with a plain (retryable) Error. */
  signal?: AbortSignal | undefined;
  /** The soffice executable (default "soffice" from PATH). */
  soffice?: string | undefined;
}

/**
 * Converts a presentation to PDF in `outDir` and returns the PDF's path
 * (`<outDir>/<input name without extension>.pdf`; an older file of that name
 * is removed first).
 *
 * `pptx_invalid`: not a ZIP with `ppt/presentation.xml` in its central
 * directory (checked before LibreOffice starts), or LibreOffice cannot load it.
 * `conversion_failed`: loaded but no PDF came out. `processing_timeout`: the
 * deadline passed (nothing of soffice is left running).
 */
export async function convertPptxToPdf(inputPath: string, outDir: string, opts: ConvertOptions): Promise<string> {
  await assertPresentation(inputPath);
  const input = resolve(inputPath);
  const profileDir = resolve(opts.profileDir);
  const pdfPath = join(resolve(outDir), `${basename(input, extname(input))}.pdf`);
  await rm(pdfPath, { force: true });

  // A throwaway HOME: LibreOffice writes dot-files there (fontconfig cache, .config).
  const home = await mkdtemp(join(tmpdir(), "docflow-soffice-home-"));
  try {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: home,
      TMPDIR: home,
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
      // No DISPLAY, no session bus: --headless must not look for either.
    };
    const result = await runTool(
      opts.soffice ?? "soffice",
      ["--headless", "--norestore", "--nologo", "--nodefault", "--nolockcheck", `-env:UserInstallation=${pathToFileURL(profileDir).href}`, "--convert-to", "pdf", "--outdir", resolve(outDir), input],
      { timeoutMs: opts.timeoutMs, signal: opts.signal, processGroup: true, env, maxStdoutBytes: 1024 * 1024 },
    );

    const produced = await stat(pdfPath).then(
      (s) => s.isFile() && s.size > 0,
      () => false,
    );
    if (produced) return pdfPath;
    const cause = toolError("soffice", result);
    if (/source file could not be loaded/i.test(result.stderr)) {
      throw new DocflowError("pptx_invalid", undefined, { cause });
    }
    if (result.code !== 0) throw cause; // crashed or killed by someone else: retry
    throw new DocflowError("conversion_failed", undefined, { cause });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const ZIP_EOCD = 0x06054b50;
const ZIP_CENTRAL_HEADER = 0x02014b50;
const PRESENTATION_PART = "ppt/presentation.xml";

/**
 * `pptx_invalid` unless the file is a ZIP whose central directory lists
 * `ppt/presentation.xml`. Reads only the end of the file and the central
 * directory. Catches truncated uploads, random bytes and other OOXML/ODF
 * documents (which LibreOffice would otherwise happily convert) in
 * milliseconds instead of a LibreOffice start-up.
 */
async function assertPresentation(path: string): Promise<void> {
  const file = await open(path, "r"); // a missing file is environmental: plain ENOENT
  try {
    const { size } = await file.stat();
    const invalid = (why: string): DocflowError => new DocflowError("pptx_invalid", undefined, { cause: new Error(why) });
    if (size < 22) throw invalid("too small for a ZIP archive");

    const magic = Buffer.alloc(4);
    await file.read(magic, 0, 4, 0);
    if (magic.readUInt32LE(0) !== 0x04034b50) throw invalid("not a ZIP archive");

    // End of central directory: 22 bytes plus a comment of up to 65535 bytes.
    const tailLength = Math.min(size, 22 + 65_535);
    const tail = Buffer.alloc(tailLength);
    await file.read(tail, 0, tailLength, size - tailLength);
    let eocd = -1;
    for (let i = tailLength - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === ZIP_EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw invalid("no end of central directory (truncated?)");
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdSize === 0xffffffff || cdOffset === 0xffffffff) return; // ZIP64: leave it to LibreOffice
    if (cdOffset + cdSize > size) throw invalid("central directory outside the file (truncated?)");
    if (cdSize > 64 * 1024 * 1024) throw invalid("central directory implausibly large");

    const cd = Buffer.alloc(cdSize);
    await file.read(cd, 0, cdSize, cdOffset);
    for (let at = 0; at + 46 <= cd.length && cd.readUInt32LE(at) === ZIP_CENTRAL_HEADER;) {
      const nameLength = cd.readUInt16LE(at + 28);
      const extraLength = cd.readUInt16LE(at + 30);
      const commentLength = cd.readUInt16LE(at + 32);
      if (cd.toString("utf8", at + 46, at + 46 + nameLength) === PRESENTATION_PART) return;
      at += 46 + nameLength + extraLength + commentLength;
    }
    throw invalid(`no ${PRESENTATION_PART} in the archive`);
  } finally {
    await file.close();
  }
}
