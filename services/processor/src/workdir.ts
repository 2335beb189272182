import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { ObjectStore } from "@docflow/infra";

/** Runs `fn` in a fresh scratch directory that is removed afterwards, whatever happens. */
export async function withWorkdir<T>(root: string, fn: (dir: string) => Promise<T>): Promise<T> {
  await mkdir(root, { recursive: true });
  const dir = await mkdtemp(join(root, "task-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Streams an object to a local file; throws when the object is missing. */
export async function download(store: ObjectStore, key: string, path: string): Promise<string> {
  const object = await store.get(key);
  if (!object) throw new Error(`object ${key} is missing`);
  await pipeline(object.body, createWriteStream(path));
  return path;
}

/** Like `download`, hashing the bytes on the way: the source's SHA-256. */
export async function downloadHashed(store: ObjectStore, key: string, path: string): Promise<string> {
  const object = await store.get(key);
  if (!object) throw new Error(`object ${key} is missing`);
  const hash = createHash("sha256");
  await pipeline(
    object.body,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(path),
  );
  return hash.digest("hex");
}
