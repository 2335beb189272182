import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, rm, stat, rename, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { randomUUID } from "node:crypto";
import { assertValidKey, type ObjectStore, type PutOptions, type StoredObject } from "./types.ts";

const TMP_SUFFIX = ".partial";

/**
 * Objects as files under one root directory: the single-machine default.
 * A put writes a temporary file and renames it, so readers never see half an object.
 */
export class FsObjectStore implements ObjectStore {
  readonly kind = "fs";
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  #path(key: string): string {
    assertValidKey(key);
    if (key.endsWith(TMP_SUFFIX)) throw new Error(`invalid object key: ${key}`);
    return join(this.#root, key);
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<{ size: number }> {
    const path = this.#path(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomUUID()}${TMP_SUFFIX}`;
    let size = 0;
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: "wx" }),
        { signal: options.signal },
      );
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    return { size };
  }

  async get(key: string): Promise<StoredObject | null> {
    const path = this.#path(key);
    const info = await stat(path).catch(notFoundAsNull);
    if (!info?.isFile()) return null;
    return { body: createReadStream(path), size: info.size };
  }

  async head(key: string): Promise<{ size: number } | null> {
    const info = await stat(this.#path(key)).catch(notFoundAsNull);
    return info?.isFile() ? { size: info.size } : null;
  }

  async delete(key: string): Promise<void> {
    await rm(this.#path(key), { force: true });
  }

  async deletePrefix(prefix: string): Promise<number> {
    // Prefixes used by docflow end at a '/' boundary; walk the directory that holds them.
    const dir = prefix.endsWith("/") ? join(this.#root, prefix) : dirname(join(this.#root, prefix));
    if (prefix !== "" && prefix !== "/") assertValidKey(prefix.replace(/\/$/, ""));
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(notFoundAsNull);
    if (!entries) return 0;
    const base = join(this.#root, prefix);
    let count = 0;
    for (const e of entries) {
      const full = join(e.parentPath, e.name);
      if (e.isFile() && full.startsWith(base) && !full.endsWith(TMP_SUFFIX)) {
        await rm(full, { force: true });
        count++;
      }
    }
    if (prefix.endsWith("/")) await rm(dir, { recursive: true, force: true });
    return count;
  }

  async check(): Promise<void> {
    await mkdir(this.#root, { recursive: true });
    await stat(this.#root);
  }
}

function notFoundAsNull(err: NodeJS.ErrnoException): null {
  if (err.code === "ENOENT" || err.code === "ENOTDIR") return null;
  throw err;
}
