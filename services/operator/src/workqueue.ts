/**
 * A rate-limited work queue of keys, as controllers use them: a key waiting is queued once
 * however often it is added; a key is never processed by two workers at once (added while it
 * is processed, it runs again after); a failed key is retried with per-key exponential back-off
 * (`baseDelayMs` x 2^failures, capped), and `forget` resets it after a success.
 */
export class WorkQueue {
  readonly #handler: (key: string) => Promise<void>;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #workers = 0;
  readonly #maxWorkers: number;
  #stopped = false;
  #idle: (() => void)[] = [];

  constructor(handler: (key: string) => Promise<void>, options: { baseDelayMs?: number; maxDelayMs?: number; workers?: number } = {}) {
    this.#handler = handler;
    this.#baseDelayMs = options.baseDelayMs ?? 250;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    this.#maxWorkers = options.workers ?? 2;
  }

  get length(): number {
    return this.#queue.length;
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#pump();
  }

  /** Adds `key` after `delayMs` (a later call for the same key keeps the earlier deadline). */
  addAfter(key: string, delayMs: number): void {
    if (this.#stopped || this.#timers.has(key)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** Adds `key` after its back-off, which doubles with every failure until `forget`. */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** failures);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Stops taking keys; resolves when the keys being processed are done. */
  async shutDown(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
    if (this.#workers > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (!this.#stopped && this.#workers < this.#maxWorkers && this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#workers++;
      void this.#run(key);
    }
  }

  async #run(key: string): Promise<void> {
    try {
      await this.#handler(key);
    } catch {
      // The handler decides about retries (addRateLimited); an escaped error is retried too.
      this.addRateLimited(key);
    } finally {
      this.#processing.delete(key);
      this.#workers--;
      if (this.#dirty.delete(key)) this.add(key);
      if (this.#workers === 0) this.#idle.splice(0).forEach((resolve) => resolve());
      this.#pump();
    }
  }
}
