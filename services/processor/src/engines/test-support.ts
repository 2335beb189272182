/**
 * Helpers for the engine tests (not used by production code).
 */
import { readdir, readFile } from "node:fs/promises";
import { expect } from "vitest";
import { DocflowError } from "@docflow/contracts";

export interface LiveProcess {
  pid: number;
  state: string;
  cmdline: string;
}

/**
 * Live (not zombie) processes whose command line contains `marker`, read from
 * /proc. Tests put a unique temp dir in every path they pass to a tool, so
 * this finds exactly the children of that test, wherever they were reparented.
 */
export async function processesMentioning(marker: string): Promise<LiveProcess[]> {
  const found: LiveProcess[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8")).replaceAll("\0", " ");
      if (!cmdline.includes(marker)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // "pid (comm) S ...": the state follows the last ")".
      const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "?";
      if (state === "Z" || state === "X") continue;
      found.push({ pid: Number(entry), state, cmdline });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** Waits (up to `ms`) until no live process mentions `marker`; returns those still alive. */
export async function waitUntilGone(marker: string, ms = 2000): Promise<LiveProcess[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const alive = await processesMentioning(marker);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The builders of tests/fixtures/generate.ts (see there). */
export interface Fixtures {
  makeTextPdf(path: string, pages: string[]): Promise<void>;
  makePptx(path: string, slides: string[]): Promise<void>;
  makeEncryptedPdf(src: string, dst: string): Promise<void>;
  makeTruncatedPdf(src: string, dst: string): Promise<void>;
  makeFakePdf(path: string): Promise<void>;
  makeZeroPagePdf(path: string): Promise<void>;
  pageWords(n: number): string;
  defaultPages(total: number): string[];
}

/**
 * Loads tests/fixtures/generate.ts at run time. A static import would put that
 * file into the processor's TypeScript project, whose rootDir is `src`
 * (TS6059/TS6307). Once the tsconfig excludes tests or a test tsconfig exists,
 * tests can import the module directly.
 */
export async function loadFixtures(): Promise<Fixtures> {
  const url = new URL("../../../../tests/fixtures/generate.ts", import.meta.url).href;
  const fixtures = (await import(url)) as Partial<Fixtures>;
  for (const name of ["makeTextPdf", "makePptx", "makeEncryptedPdf", "makeTruncatedPdf", "makeFakePdf", "makeZeroPagePdf", "pageWords", "defaultPages"] as const) {
    if (typeof fixtures[name] !== "function") throw new Error(`tests/fixtures/generate.ts does not export ${name}`);
  }
  return fixtures as Fixtures;
}

/** The rejection of `promise`, failing the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

/** Asserts that `promise` rejects with a DocflowError of `code`. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(DocflowError);
  expect((error as DocflowError).code).toBe(code);
}
