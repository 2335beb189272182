import { PDF, PPTX, type ContentType } from "@docflow/contracts";

/** How many leading bytes the sniffer wants before it decides (fewer only at end of file). */
export const SNIFF_BYTES = 64 * 1024;

const PDF_MAGIC = Buffer.from("%PDF-");
const ZIP_LOCAL_HEADER = Buffer.from([0x50, 0x4b, 0x03, 0x04]);

/**
 * Decides the type from the first bytes, never from the name or the client's
 * Content-Type. PDF: `%PDF-` within the first 1024 bytes (as readers accept).
 * PPTX: a ZIP whose local file headers, within the bytes given, include an
 * entry under `ppt/` (Office, LibreOffice and JSZip all write one early).
 * Returns `null` for anything else.
 */
export function sniffContentType(head: Buffer): ContentType | null {
  const pdfAt = head.subarray(0, 1024).indexOf(PDF_MAGIC);
  if (pdfAt >= 0) return PDF;
  if (head.subarray(0, 4).equals(ZIP_LOCAL_HEADER) && zipEntryNames(head).some((n) => n.startsWith("ppt/"))) return PPTX;
  return null;
}

const OLE_COMPOUND_FILE = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);

/**
 * Why `head` is refused, for the person who uploaded it: the general rule, or what the file
 * really is where that is recognisable and has a remedy. Office wraps a password-protected .pptx
 * in an OLE compound file, the format of the old binary .ppt too; other Office documents are ZIPs
 * without `ppt/`.
 */
export function refusalDetail(head: Buffer): string {
  if (head.subarray(0, 8).equals(OLE_COMPOUND_FILE)) {
    return "This is a password-protected Office file or an old binary one (.ppt): remove the password, or save it as .pptx or PDF, and upload it again.";
  }
  if (head.subarray(0, 4).equals(ZIP_LOCAL_HEADER)) {
    const names = zipEntryNames(head);
    if (names.some((n) => n.startsWith("word/"))) return "This is a Word document: only PDF and PowerPoint (PPTX) files are accepted; save it as PDF and upload it again.";
    if (names.some((n) => n.startsWith("xl/"))) return "This is an Excel workbook: only PDF and PowerPoint (PPTX) files are accepted; save it as PDF and upload it again.";
  }
  return NOT_A_DOCUMENT;
}

/** The general refusal: neither type, judged by content. */
export const NOT_A_DOCUMENT = "The file is neither a PDF nor a PowerPoint (PPTX) presentation (judged by its content, not its name).";

/** Names of the ZIP local file headers found in `head` (a prefix of the archive). */
function zipEntryNames(head: Buffer): string[] {
  const names: string[] = [];
  let at = head.indexOf(ZIP_LOCAL_HEADER);
  while (at >= 0 && at + 30 <= head.length) {
    const nameLength = head.readUInt16LE(at + 26);
    if (at + 30 + nameLength > head.length) break;
    names.push(head.toString("utf8", at + 30, at + 30 + nameLength));
    at = head.indexOf(ZIP_LOCAL_HEADER, at + 30 + nameLength);
  }
  return names;
}

/**
 * Passes `source` through, holding back only its first `SNIFF_BYTES` (fewer
 * at the end of a short file) until `judge` has seen them: a judge that
 * throws stops the stream before any byte reaches the consumer.
 */
export async function* sniffAhead(source: AsyncIterable<Buffer>, judge: (head: Buffer) => void): AsyncGenerator<Buffer> {
  const head: Buffer[] = [];
  let bytes = 0;
  let judged = false;
  for await (const chunk of source) {
    if (judged) {
      yield chunk;
      continue;
    }
    head.push(chunk);
    bytes += chunk.length;
    if (bytes >= SNIFF_BYTES) {
      judge(Buffer.concat(head, bytes));
      judged = true;
      yield* head.splice(0);
    }
  }
  if (!judged && bytes > 0) {
    judge(Buffer.concat(head, bytes));
    yield* head.splice(0);
  }
}
