/** Which code a benchmark ran: the commit and the uncommitted changes under services/ and packages/ (the tree is shared). */
import { execFile } from "node:child_process";
import { ROOT } from "./harness.ts";

const git = (args: string[]) => new Promise<string>((res) => execFile("git", args, { cwd: ROOT }, (err, out) => res(err ? "" : out.trim())));

export async function treeState(): Promise<string> {
  const head = await git(["log", "-1", "--format=%h %s"]);
  const dirty = (await git(["status", "--short", "--", "services", "packages"])).split("\n").filter(Boolean);
  return `code: commit ${head || "?"}${dirty.length > 0 ? `; uncommitted under services/, packages/: ${dirty.map((l) => l.trim()).join(", ")}` : "; no uncommitted changes under services/, packages/"}`;
}
