import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Page `n` of a PDF as poppler's pdftotext reads it (default reading order), form feeds dropped. */
export async function pdftotextPage(path: string, n: number): Promise<string> {
  const { stdout } = await run("pdftotext", ["-f", String(n), "-l", String(n), "-enc", "UTF-8", path, "-"]);
  return stdout.replace(/\f/g, "").trim();
}
