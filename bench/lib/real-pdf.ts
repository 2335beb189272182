/**
 * A long real PDF for the processing benchmarks: pages of real documents from Debian
 * documentation packages (pdfTeX, ReportLab, Apache FOP, xdvipdfmx...), concatenated with
 * `qpdf --empty --pages ...` in a fixed order, so the same machine always builds the same file.
 * Cached under the temp dir (keyed by the sources' SHA-256 and the page plan).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gunzipSync } from "node:zlib";

/** In this order; missing files are skipped (see bench/results/2026-12-07-history.md for the packages). */
export const DEBIAN_PDFS = [
  "/usr/share/doc/python-reportlab-doc/reportlab-userguide.pdf",
  "/usr/share/doc/gri/gri.pdf.gz",
  "/usr/share/doc/nettle-dev/nettle.pdf.gz",
  "/usr/share/doc/docbook-xsl-doc-pdf/doc/reference.pdf.gz",
  "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
  "/usr/share/doc/live-manual/pdf/live-manual.portrait.en.a4.pdf.gz",
  "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
  "/usr/share/doc/bzip2/manual.pdf.gz",
  "/usr/share/doc/zlib1g-dev/crc-doc.1.0.pdf.gz",
  "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
  "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz",
];

export const CACHE_DIR = join(tmpdir(), "docflow-bench-pdfs");

export interface Source {
  path: string;
  /** Debian package and version that ship the file ("?" when dpkg does not know it). */
  pkg: string;
  sha256: string;
  pageCount: number;
  /** The unpacked PDF (the file itself, or its gunzipped copy in the cache). */
  pdf: string;
}

export interface Piece {
  source: Source;
  first: number;
  last: number;
}

export interface RealPdf {
  path: string;
  pages: number;
  bytes: number;
  sha256: string;
  pieces: Piece[];
  cached: boolean;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((res, rej) =>
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => (err ? rej(new Error(`${cmd} ${args.join(" ")}: ${err.message}\n${stderr}`)) : res(stdout))),
  );
}

async function debianPackage(path: string): Promise<string> {
  try {
    const pkg = (await run("dpkg-query", ["-S", path])).split(":")[0]!.trim();
    const version = (await run("dpkg-query", ["-W", "-f=${Version}", pkg])).trim();
    return `${pkg} ${version}`;
  } catch {
    return "?";
  }
}

async function loadSource(path: string): Promise<Source | undefined> {
  if (!existsSync(path)) return undefined;
  const raw = await readFile(path);
  const sha256 = createHash("sha256").update(raw).digest("hex");
  let pdf = path;
  if (path.endsWith(".gz")) {
    await mkdir(CACHE_DIR, { recursive: true });
    pdf = join(CACHE_DIR, `${sha256.slice(0, 16)}-${basename(path, ".gz")}`);
    if (!existsSync(pdf)) await writeFile(pdf, gunzipSync(raw));
  }
  const pages = /^Pages:\s+(\d+)/m.exec(await run("pdfinfo", [pdf]))?.[1];
  if (!pages) return undefined;
  return { path, pkg: await debianPackage(path), sha256, pageCount: Number(pages), pdf };
}

/**
 * `pages` pages: each source in turn contributes up to `perDoc` pages (from its page 1), cycling
 * through the sources again (the same pages once more) until the count is reached.
 */
export async function buildRealPdf(pages: number, options: { perDoc?: number; sources?: string[] } = {}): Promise<RealPdf> {
  const perDoc = options.perDoc ?? 100;
  const sources = (await Promise.all((options.sources ?? DEBIAN_PDFS).map(loadSource))).filter((s): s is Source => s !== undefined);
  if (sources.length === 0) throw new Error(`none of the real PDFs is installed; see bench/results/2026-12-07-history.md (apt-get install ...):\n  ${(options.sources ?? DEBIAN_PDFS).join("\n  ")}`);
  const pieces: Piece[] = [];
  let left = pages;
  for (let round = 0; left > 0; round++) {
    for (const source of sources) {
      if (left <= 0) break;
      const n = Math.min(left, perDoc === Infinity ? source.pageCount : perDoc, source.pageCount);
      pieces.push({ source, first: 1, last: n });
      left -= n;
    }
    if (round > 1000) throw new Error("no pages in the sources");
  }
  const key = createHash("sha256")
    .update(JSON.stringify(pieces.map((p) => [p.source.sha256, p.first, p.last])))
    .digest("hex")
    .slice(0, 16);
  await mkdir(CACHE_DIR, { recursive: true });
  const out = join(CACHE_DIR, `real-${pages}p-${key}.pdf`);
  const cached = existsSync(out);
  if (!cached) {
    const tmp = `${out}.${process.pid}.tmp`;
    // --deterministic-id: the same inputs give the same bytes (no random /ID).
    await run("qpdf", ["--deterministic-id", "--empty", "--pages", ...pieces.flatMap((p) => [p.source.pdf, `${p.first}-${p.last}`]), "--", tmp]);
    await rename(tmp, out);
  }
  const bytes = await readFile(out);
  const got = Number(/^Pages:\s+(\d+)/m.exec(await run("pdfinfo", [out]))?.[1]);
  if (got !== pages) throw new Error(`${out} has ${got} pages, expected ${pages}`);
  return { path: out, pages, bytes: (await stat(out)).size, sha256: createHash("sha256").update(bytes).digest("hex"), pieces, cached };
}

/** Lines saying where every page came from. */
export function provenance(doc: RealPdf): string {
  const lines = [
    `document: ${doc.path} (${doc.pages} pages, ${(doc.bytes / 1024 / 1024).toFixed(1)} MiB, sha256 ${doc.sha256.slice(0, 16)}..., ${doc.cached ? "cached" : "built now"} with qpdf --deterministic-id --empty --pages)`,
  ];
  let at = 1;
  for (const p of doc.pieces) {
    const n = p.last - p.first + 1;
    lines.push(`  pages ${at}-${at + n - 1}: ${p.source.path} p.${p.first}-${p.last} of ${p.source.pageCount} (${p.source.pkg}; sha256 ${p.source.sha256.slice(0, 12)})`);
    at += n;
  }
  return lines.join("\n");
}
