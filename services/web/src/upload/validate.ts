import { PDF, PPTX } from "@docflow/contracts";
import { formatBytes } from "@/lib/format";

/** File name endings the app accepts. */
export const ACCEPTED_EXTENSIONS = [".pdf", ".pptx"] as const;
/** Media types the app accepts (PDF, PowerPoint .pptx). */
export const ACCEPTED_TYPES: readonly string[] = [PDF, PPTX];
/** For `<input type="file" accept>`. */
export const ACCEPT_ATTRIBUTE = [...ACCEPTED_EXTENSIONS, ...ACCEPTED_TYPES].join(",");

export interface CandidateFile {
  name: string;
  size: number;
  type: string;
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

/**
 * Why a file is refused before it is sent, in words for people, or null when it
 * may go. The type is judged by the name's ending or the browser's media type
 * (the gateway checks the bytes themselves).
 */
export function refusalReason(file: CandidateFile, maxBytes: number): string | null {
  const extension = extensionOf(file.name);
  const typeOk = (ACCEPTED_EXTENSIONS as readonly string[]).includes(extension) || ACCEPTED_TYPES.includes(file.type);
  if (!typeOk) {
    if (extension === ".ppt") return "Old PowerPoint files (.ppt) are not supported. Save it as .pptx in PowerPoint, then upload it.";
    return "Only PDF and PowerPoint (.pptx) files can be uploaded.";
  }
  if (file.size === 0) return "The file is empty.";
  if (file.size > maxBytes) return `The file is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
  return null;
}
