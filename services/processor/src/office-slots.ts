import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";

/** A processor's LibreOffice profiles live in `<work dir>/office-<pid>`. */
export const OFFICE_DIR_PREFIX = "office-";

/**
 * LibreOffice isolation: each concurrent conversion runs in its own slot,
 * with the slot's own profile directory (`-env:UserInstallation`). soffice
 * hands a conversion to any running instance that shares a profile, so two
 * conversions must never share one; one slot's consecutive conversions reuse
 * it, which saves building a fresh profile (seconds) every time. A slot whose
 * conversion failed for a reason other than the document gets a fresh profile
 * (a killed soffice can leave it half written).
 */
export class OfficeSlots {
  readonly #root: string;
  readonly #free: number[];
  readonly #waiting: ((slot: number) => void)[] = [];

  constructor(root: string, size: number) {
    this.#root = root;
    this.#free = Array.from({ length: size }, (_, i) => i);
  }

  /**
   * Starts with no profile: what an earlier process of the same pid left (a container restarted
   * in its pod, where the entrypoint's pid repeats) may be half written by a killed soffice.
   */
  async open(): Promise<void> {
    await rm(this.#root, { recursive: true, force: true });
  }

  /** Removes every slot's profile (on shutdown: profiles are several MB each and per process). */
  async dispose(): Promise<void> {
    await rm(this.#root, { recursive: true, force: true });
  }

  /** Runs `fn` with a slot's profile directory; `ok(result)` false resets that profile. */
  async run<T>(fn: (profileDir: string) => Promise<T>, keepProfile: (error: unknown) => boolean): Promise<T> {
    const slot = this.#free.pop() ?? (await new Promise<number>((resolve) => this.#waiting.push(resolve)));
    const profileDir = join(this.#root, `soffice-slot-${slot}`);
    try {
      await mkdir(profileDir, { recursive: true });
      return await fn(profileDir);
    } catch (error) {
      if (!keepProfile(error)) await rm(profileDir, { recursive: true, force: true });
      throw error;
    } finally {
      const next = this.#waiting.shift();
      if (next) next(slot);
      else this.#free.push(slot);
    }
  }
}
