/**
 * Reads a PPTX's facts straight from its OOXML parts with yauzl, under hard
 * limits, before LibreOffice ever sees the file: entry count and the sum of
 * uncompressed sizes (zip bombs fail with `pptx_too_large`), then title and
 * author (docProps/core.xml) and, per slide in presentation order, its title
 * and speaker notes. Hidden slides are skipped: LibreOffice does not export
 * them, so slide i here is page i of the converted PDF.
 *
 * Every entry is inflated once (and discarded unless it is a part we read),
 * with yauzl checking that no entry inflates beyond the size its header
 * declares. The declared sizes are summed against the limit first, so the
 * archive provably inflates to at most that limit: LibreOffice, which reads
 * the same entries, cannot be fed more. Inflation runs on the zlib threadpool;
 * the XML parts are small and matched with bounded regular expressions.
 *
 * External relationships other than hyperlinks (a picture, video, OLE object
 * or template "linked" by URL) fail with `pptx_external_content`: LibreOffice
 * fetches them while converting (checked: an `r:link` image makes soffice 7.4
 * send OPTIONS and GET to the URL), which would let an upload make our pods
 * request any address they can reach.
 */
import { posix } from "node:path";
import yauzl from "yauzl";
import { DocflowError, type SlideInfo } from "@docflow/contracts";

export interface PptxLimits {
  /** Sum of the entries' uncompressed sizes. */
  maxUncompressedBytes: number;
  /** Entries in the archive. */
  maxEntries: number;
  signal?: AbortSignal | undefined;
}

export interface PptxInfo {
  title?: string;
  author?: string;
  /** Shown slides in order; `n` counts from 1 and matches the converted PDF's pages. */
  slides: SlideInfo[];
  hiddenSlides: number;
}

/** One XML part we parse is never larger than this (slides are KBs; far above any real one). */
const MAX_XML_PART_BYTES = 16 * 1024 * 1024;

export async function readPptx(path: string, limits: PptxLimits): Promise<PptxInfo> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(path, { autoClose: false, validateEntrySizes: true, strictFileNames: false });
  } catch (err) {
    if (isEnvironmental(err)) throw err;
    throw new DocflowError("pptx_invalid", undefined, { cause: err });
  }
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw new DocflowError("pptx_too_large", `The presentation has ${zip.entryCount} parts; at most ${limits.maxEntries} are allowed.`);
    }
    const parts = new Map<string, string>();
    let declared = 0;
    const entries: yauzl.Entry[] = [];
    try {
      for await (const entry of zip.eachEntry()) {
        declared += entry.uncompressedSize;
        if (declared > limits.maxUncompressedBytes) {
          throw new DocflowError("pptx_too_large", `The presentation unpacks to more than ${limits.maxUncompressedBytes} bytes.`);
        }
        if (entry.isEncrypted()) throw new DocflowError("pptx_invalid", "The presentation is encrypted.");
        entries.push(entry);
      }
      for (const entry of entries) {
        limits.signal?.throwIfAborted();
        if (entry.fileName.endsWith("/")) continue;
        const keep = isXmlPartWeRead(entry.fileName);
        const data = await inflate(zip, entry, keep ? MAX_XML_PART_BYTES : Infinity, keep);
        if (keep) parts.set(entry.fileName, data.toString("utf8"));
      }
    } catch (err) {
      if (err instanceof DocflowError || isEnvironmental(err) || limits.signal?.aborted) throw err;
      // yauzl's words for an entry that inflates beyond its declared size: a zip bomb that lies.
      if (/too many bytes in the stream/.test(String((err as Error)?.message))) {
        throw new DocflowError("pptx_too_large", "A part of the presentation unpacks to more bytes than its header declares.", { cause: err });
      }
      throw new DocflowError("pptx_invalid", undefined, { cause: err });
    }
    return describe(parts);
  } finally {
    zip.close();
  }
}

function isEnvironmental(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "ENOENT" || code === "EACCES" || code === "EMFILE" || code === "EIO";
}

const isXmlPartWeRead = (name: string): boolean =>
  name.endsWith(".rels") ||
  name === "ppt/presentation.xml" ||
  name === "ppt/_rels/presentation.xml.rels" ||
  name === "docProps/core.xml" ||
  /^ppt\/slides\/(_rels\/)?slide\d+\.xml(\.rels)?$/.test(name) ||
  /^ppt\/notesSlides\/notesSlide\d+\.xml$/.test(name);

/** Inflates one entry; keeps the bytes only when asked (at most `cap`). */
async function inflate(zip: yauzl.ZipFile, entry: yauzl.Entry, cap: number, keep: boolean): Promise<Buffer> {
  if (keep && entry.uncompressedSize > cap) throw new DocflowError("pptx_too_large", `The part ${entry.fileName} is larger than ${cap} bytes.`);
  const stream = await zip.openReadStreamPromise(entry);
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) if (keep) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function describe(parts: Map<string, string>): PptxInfo {
  const presentation = parts.get("ppt/presentation.xml");
  if (presentation === undefined) throw new DocflowError("pptx_invalid", "The file has no ppt/presentation.xml: it is not a presentation.");
  refuseExternalContent(parts);
  const rels = relationships(parts.get("ppt/_rels/presentation.xml.rels") ?? "", "ppt/presentation.xml");
  const info: PptxInfo = { slides: [], hiddenSlides: 0 };
  const core = parts.get("docProps/core.xml") ?? "";
  const title = textOf(/<dc:title>([\s\S]*?)<\/dc:title>/.exec(core)?.[1] ?? "");
  const author = textOf(/<dc:creator>([\s\S]*?)<\/dc:creator>/.exec(core)?.[1] ?? "");
  if (title !== "") info.title = title.slice(0, 1000);
  if (author !== "") info.author = author.slice(0, 1000);

  const list = /<p:sldIdLst>([\s\S]*?)<\/p:sldIdLst>/.exec(presentation)?.[1] ?? "";
  for (const m of list.matchAll(/<p:sldId\b[^>]*>/g)) {
    const rid = attr(m[0], "r:id");
    const target = rid === undefined ? undefined : rels.get(rid)?.target;
    const slide = target === undefined ? undefined : parts.get(target);
    if (target === undefined || slide === undefined) continue;
    if (/<p:sld\b[^>]*\sshow="(0|false)"/.test(slide)) {
      info.hiddenSlides++;
      continue;
    }
    const slideRels = relationships(parts.get(relsPathOf(target)) ?? "", target);
    const notesTarget = [...slideRels.values()].find((r) => r.type.endsWith("/notesSlide"))?.target;
    const notesXml = notesTarget === undefined ? "" : (parts.get(notesTarget) ?? "");
    info.slides.push({ n: info.slides.length + 1, title: slideTitle(slide), notes: placeholderText(notesXml, ["body"]) });
  }
  return info;
}

/** `pptx_external_content` when any part links, by URL, to something other than a hyperlink target. */
function refuseExternalContent(parts: Map<string, string>): void {
  for (const [name, xml] of parts) {
    if (!name.endsWith(".rels")) continue;
    for (const m of xml.matchAll(/<Relationship\b[^>]*>/g)) {
      if (attr(m[0], "TargetMode") !== "External") continue;
      const type = attr(m[0], "Type") ?? "";
      if (type.endsWith("/hyperlink")) continue;
      const kind = type.slice(type.lastIndexOf("/") + 1) || "content";
      throw new DocflowError("pptx_external_content", `The presentation links to external content (a ${kind} in ${name.replace(/_rels\/|\.rels$/g, "")}); embed it in the file instead.`);
    }
  }
}

/** The title placeholder's text, else the first text on the slide (decks made by tools often have no placeholders). */
function slideTitle(xml: string): string {
  const title = placeholderText(xml, ["title", "ctrTitle"]);
  if (title !== "") return title.slice(0, 1000);
  for (const shape of shapes(xml)) {
    const text = shapeText(shape);
    if (text !== "") return text.split("\n")[0]!.slice(0, 1000);
  }
  return "";
}

function placeholderText(xml: string, types: string[]): string {
  const texts: string[] = [];
  for (const shape of shapes(xml)) {
    const ph = /<p:ph\b[^>]*>/.exec(shape)?.[0];
    if (ph === undefined || !types.includes(attr(ph, "type") ?? "body")) continue;
    const text = shapeText(shape);
    if (text !== "") texts.push(text);
  }
  return texts.join("\n");
}

const shapes = (xml: string): string[] => [...xml.matchAll(/<p:sp\b[\s\S]*?<\/p:sp>/g)].map((m) => m[0]);

/** Paragraphs joined with newlines; runs within a paragraph joined as is (whitespace-only runs kept). */
function shapeText(shape: string): string {
  const paragraphs: string[] = [];
  for (const p of shape.matchAll(/<a:p\b[^>]*?(?:\/>|>([\s\S]*?)<\/a:p>)/g)) {
    const body = p[1] ?? "";
    let text = "";
    for (const run of body.matchAll(/<a:t(?:\s[^>]*)?>([\s\S]*?)<\/a:t>|<a:br\b[^>]*\/>/g)) text += run[1] === undefined ? "\n" : textOf(run[1], false);
    paragraphs.push(text);
  }
  return paragraphs.join("\n").trim();
}

interface Relationship {
  type: string;
  /** Resolved part name inside the archive, e.g. "ppt/slides/slide1.xml". */
  target: string;
}

function relationships(xml: string, source: string): Map<string, Relationship> {
  const found = new Map<string, Relationship>();
  for (const m of xml.matchAll(/<Relationship\b[^>]*>/g)) {
    const id = attr(m[0], "Id");
    const target = attr(m[0], "Target");
    if (id === undefined || target === undefined || attr(m[0], "TargetMode") === "External") continue;
    const resolved = target.startsWith("/") ? target.slice(1) : posix.normalize(posix.join(posix.dirname(source), target));
    found.set(id, { type: attr(m[0], "Type") ?? "", target: resolved });
  }
  return found;
}

const relsPathOf = (part: string): string => `${posix.dirname(part)}/_rels/${posix.basename(part)}.rels`;

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name.replace(":", "\\:")}="([^"]*)"`).exec(tag);
  return m?.[1] === undefined ? undefined : decodeEntities(m[1]);
}

function textOf(xml: string, trim = true): string {
  const text = decodeEntities(xml.replace(/<[^>]*>/g, "")).replace(/\r\n?/g, "\n");
  return trim ? text.trim() : text;
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e === "amp") return "&";
    if (e === "lt") return "<";
    if (e === "gt") return ">";
    if (e === "quot") return '"';
    if (e === "apos") return "'";
    const code = e.startsWith("#x") ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "";
  });
}
