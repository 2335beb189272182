import { randomUUID } from "node:crypto";
import { copyFile, link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ObjectStore } from "@docflow/infra";
import { download } from "./workdir.ts";

/** Name of a processor's cache directory in the work dir, before its pid. */
export const SOURCE_CACHE_PREFIX = "sources-";

interface Entry {
  path: string;
  bytes: number;
  /** Settles when the file is complete (or its download failed). */
  ready: Promise<void>;
  /** Tasks reading the file now: it is never removed under them. */
  users: number;
  lastUsed: number;
  /** Evicted while in use: removed when its last user is done. */
  doomed: boolean;
}

export interface SourceCacheOptions {
  /** Directory of this process's cache (inside the work dir; emptied at start). */
  dir: string;
  /** Bytes of documents kept when nobody uses them; the least recently used go first beyond it. */
  maxBytes: number;
  /** A document nobody used for this long is removed. */
  idleMs: number;
}

/**
 * The documents (the PDF a job's ranges are rendered from) this processor
 * works on, downloaded once per job instead of once per range: a 300-page job
 * has 39 ranges, and each download costs the S3 server and this process as
 * much as a few pages' outputs. Objects under a job's keys never change once
 * written (the source, the converted PDF), so a copy is valid as long as the
 * job exists. A copy goes when its job ends here (`evictJob`: the last range
 * done, a cancellation or deletion seen), when it has been idle `idleMs`, or
 * when the unused copies exceed `maxBytes` (least recently used first). A
 * file is written under a temporary name and renamed when complete, so a
 * reader never sees a partial download; concurrent tasks of one job share
 * one download.
 */
export class SourceCache {
  readonly #store: ObjectStore;
  readonly #options: SourceCacheOptions;
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(store: ObjectStore, options: SourceCacheOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Empties the directory (left over by an earlier process with the same pid) and starts the idle sweep. */
  async open(): Promise<void> {
    await rm(this.#options.dir, { recursive: true, force: true });
    await mkdir(this.#options.dir, { recursive: true });
    this.#timer = setInterval(() => void this.#trim(), Math.max(1000, Math.floor(this.#options.idleMs / 2)));
    this.#timer.unref();
  }

  /** Bytes of the documents held now (in use or not). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Runs `fn` with a local path holding the object `key`, downloading it unless it is here already. */
  async use<T>(key: string, fn: (path: string) => Promise<T>): Promise<T> {
    let entry = this.#entries.get(key);
    if (entry === undefined || entry.doomed) {
      const path = join(this.#options.dir, `${randomUUID()}.pdf`);
      const created: Entry = { path, bytes: 0, ready: Promise.resolve(), users: 0, lastUsed: Date.now(), doomed: false };
      created.ready = this.#fetch(key, created);
      entry = created;
      this.#entries.set(key, entry);
    }
    entry.users++;
    try {
      await entry.ready;
      return await fn(entry.path);
    } finally {
      entry.users--;
      entry.lastUsed = Date.now();
      // Replaced in the map while doomed (evicted, then asked for again): only its users know it.
      if (entry.users === 0 && this.#entries.get(key) !== entry) await this.#remove(entry);
      await this.#trim();
    }
  }

  /**
   * Takes a copy of `key` that the caller downloaded itself (inspect reads the whole document
   * before its ranges go out): hard-linked, so the caller may delete its own name at once.
   * Nothing happens when `key` is here already.
   */
  async adopt(key: string, file: string): Promise<void> {
    if (this.#entries.has(key)) return;
    const path = join(this.#options.dir, `${randomUUID()}.pdf`);
    await link(file, path).catch(() => copyFile(file, path));
    if (this.#entries.has(key)) {
      await rm(path, { force: true });
      return;
    }
    const bytes = (await stat(path)).size;
    this.#entries.set(key, { path, bytes, ready: Promise.resolve(), users: 0, lastUsed: Date.now(), doomed: false });
    this.#bytes += bytes;
    await this.#trim();
  }

  async #fetch(key: string, entry: Entry): Promise<void> {
    const partial = `${entry.path}.part`;
    try {
      await download(this.#store, key, partial);
      await rename(partial, entry.path);
      entry.bytes = (await stat(entry.path)).size;
      this.#bytes += entry.bytes;
    } catch (err) {
      // Nobody may use a failed download: the next task downloads again.
      entry.doomed = true;
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
      await rm(partial, { force: true });
      throw err;
    }
  }

  /** Drops the documents whose keys start with `prefix` (a job's prefix), now or when their last user is done. */
  async evictJob(prefix: string): Promise<void> {
    for (const [key, entry] of this.#entries) if (key.startsWith(prefix)) entry.doomed = true;
    await this.#trim();
  }

  /** Removes doomed and idle entries nobody uses, then the least recently used until under the cap. */
  async #trim(): Promise<void> {
    const now = Date.now();
    const removable = [...this.#entries].filter(([, e]) => e.users === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let unused = removable.reduce((sum, [, e]) => sum + e.bytes, 0);
    const gone: Entry[] = [];
    for (const [key, entry] of removable) {
      if (!(entry.doomed || now - entry.lastUsed >= this.#options.idleMs || unused > this.#options.maxBytes)) continue;
      this.#entries.delete(key);
      unused -= entry.bytes;
      gone.push(entry);
    }
    for (const entry of gone) await this.#remove(entry);
  }

  async #remove(entry: Entry): Promise<void> {
    this.#bytes -= entry.bytes;
    entry.bytes = 0;
    await rm(entry.path, { force: true }).catch(() => {});
  }

  /** Stops the sweep and removes the directory. */
  async dispose(): Promise<void> {
    clearInterval(this.#timer);
    this.#entries.clear();
    this.#bytes = 0;
    await rm(this.#options.dir, { recursive: true, force: true });
  }
}

/**
 * Removes the cache directories (`<prefix><pid>`) of processes that are gone:
 * a container restarted in the same pod keeps its emptyDir work dir.
 */
export async function removeStaleCaches(root: string, prefix: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      if (!name.startsWith(prefix)) return;
      const pid = Number(name.slice(prefix.length));
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) return;
      await rm(join(root, name), { recursive: true, force: true }).catch(() => {});
    }),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
