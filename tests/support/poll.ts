import { setTimeout as sleep } from "node:timers/promises";

export interface PollOptions {
  timeoutMs: number;
  /** Between attempts (default 250 ms). */
  everyMs?: number;
  /** Appended to the timeout's message: what explains it (a process's last output, a log file). */
  context?: () => string;
}

/**
 * The one polling loop of the tests: calls `probe` until it returns something other than
 * `undefined` or `false`, and returns that. An error thrown by `probe` counts as "not yet"; the last
 * one is named in the timeout's message, with `context`.
 */
export async function eventually<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last === undefined ? "" : `: ${last instanceof Error ? last.message : String(last)}`;
      const context = options.context?.();
      throw new Error(`timed out after ${options.timeoutMs / 1000} s waiting for ${what}${why}${context ? `\n${context}` : ""}`);
    }
    await sleep(options.everyMs ?? 250);
  }
}
