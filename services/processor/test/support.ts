/**
 * Helpers for the processor's unit tests. They live outside `src`, so neither
 * the processor's build (tsconfig.json) nor its image (the Dockerfile copies
 * `src`) contains them; tests/tsconfig.json type-checks them with the tests.
 */
import { readdir, readFile } from "node:fs/promises";
import { expect } from "vitest";
import { DocflowError, type JobRecord } from "@docflow/contracts";

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

/** The tenant and job of the unit tests' job records. */
export const TEST_TENANT = "acme";
export const TEST_JOB_ID = "0190a000-0000-7000-8000-000000000000";

/** A processing job record of a 1-byte PDF, with `overrides`. */
export function jobRecord(overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    id: TEST_JOB_ID,
    tenant: TEST_TENANT,
    status: "processing",
    filename: "x.pdf",
    contentType: "application/pdf",
    size: 1,
    sha256: null,
    pageCount: 8,
    pagesDone: 0,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
    sourceKey: "k",
    ranges: [],
    rangesDone: [],
    ...overrides,
  };
}
