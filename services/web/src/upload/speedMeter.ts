/** Speed is measured over this window (ms). */
export const SPEED_WINDOW_MS = 4_000;
/** No speed is given before this much time has been measured (ms): the first chunks say little. */
export const SPEED_MIN_ELAPSED_MS = 500;

/**
 * Upload speed per upload, from the bytes done at each progress event: bytes per second over
 * the last `SPEED_WINDOW_MS`, so that it follows the connection rather than the upload's whole
 * history. A jump that was not sent (a resume from bytes the server had) must not count:
 * `forget` the upload then, and it is measured afresh.
 */
export class SpeedMeter {
  /** Per upload: [time in ms, bytes done], oldest first. */
  readonly #samples = new Map<string, Array<[number, number]>>();

  /**
   * Records that `bytes` of upload `key` were done at `now` (ms, `performance.now()`). Returns the
   * speed in bytes per second, or null while less than `SPEED_MIN_ELAPSED_MS` has been measured.
   */
  sample(key: string, bytes: number, now: number = performance.now()): number | null {
    const list = this.#samples.get(key) ?? [];
    list.push([now, bytes]);
    // Keep at least two samples, however long apart: a slow chunk still gives a speed.
    while (list.length > 2 && now - list[0]![0] > SPEED_WINDOW_MS) list.shift();
    this.#samples.set(key, list);
    const [since, bytesThen] = list[0]!;
    const elapsed = now - since;
    return elapsed >= SPEED_MIN_ELAPSED_MS ? Math.max(0, (bytes - bytesThen) / (elapsed / 1000)) : null;
  }

  /** Drops what was measured for `key`. */
  forget(key: string): void {
    this.#samples.delete(key);
  }
}
