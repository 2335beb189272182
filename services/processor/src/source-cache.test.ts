import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsObjectStore, type ObjectStore } from "@docflow/infra";
import { SourceCache, removeStaleCaches } from "./source-cache.ts";

/** A real filesystem store that counts the reads of each key. */
function counting(store: ObjectStore): { store: ObjectStore; gets: Map<string, number> } {
  const gets = new Map<string, number>();
  const wrapped: ObjectStore = {
    kind: store.kind,
    put: (key, body, options) => store.put(key, body, options),
    get: async (key) => {
      gets.set(key, (gets.get(key) ?? 0) + 1);
      return store.get(key);
    },
    head: (key) => store.head(key),
    delete: (key) => store.delete(key),
    deletePrefix: (prefix) => store.deletePrefix(prefix),
    check: () => store.check(),
  };
  return { store: wrapped, gets };
}

describe("SourceCache", () => {
  let root: string;
  let store: ObjectStore;
  let gets: Map<string, number>;
  const dir = () => join(root, "sources-1");
  const files = async () => (await readdir(dir())).sort();

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "docflow-source-cache-"));
    const fs = new FsObjectStore(join(root, "objects"));
    ({ store, gets } = counting(fs));
    await fs.put("tenants/t/jobs/a/source", Buffer.from("%PDF-a"));
    await fs.put("tenants/t/jobs/b/source", Buffer.from("%PDF-bb"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("downloads a document once for the ranges that use it, even at the same time", async () => {
    const cache = new SourceCache(store, { dir: dir(), maxBytes: 1024, idleMs: 60_000 });
    await cache.open();
    const read = (key: string) => cache.use(key, (path) => readFile(path, "utf8"));
    expect(await Promise.all([read("tenants/t/jobs/a/source"), read("tenants/t/jobs/a/source")])).toEqual(["%PDF-a", "%PDF-a"]);
    expect(await read("tenants/t/jobs/a/source")).toBe("%PDF-a");
    expect(gets.get("tenants/t/jobs/a/source")).toBe(1);
    expect(cache.bytes).toBe(6);
    await cache.dispose();
  });

  it("removes a job's document when the job ends, but not under a task still reading it", async () => {
    const cache = new SourceCache(store, { dir: dir(), maxBytes: 1024, idleMs: 60_000 });
    await cache.open();
    await cache.use("tenants/t/jobs/a/source", async (path) => {
      await cache.evictJob("tenants/t/jobs/a/");
      expect(await readFile(path, "utf8")).toBe("%PDF-a");
    });
    expect(await files()).toEqual([]);
    expect(cache.bytes).toBe(0);
    // Asked for again (a late duplicate): downloaded again.
    await cache.use("tenants/t/jobs/a/source", async () => {});
    expect(gets.get("tenants/t/jobs/a/source")).toBe(2);
    await cache.dispose();
  });

  it("keeps at most maxBytes of unused documents, dropping the least recently used", async () => {
    const cache = new SourceCache(store, { dir: dir(), maxBytes: 8, idleMs: 60_000 });
    await cache.open();
    await cache.use("tenants/t/jobs/a/source", async () => {});
    await cache.use("tenants/t/jobs/b/source", async () => {});
    expect(cache.bytes).toBe(7); // a (6 bytes) went: a + b would be 13
    await cache.use("tenants/t/jobs/b/source", async () => {});
    expect(gets.get("tenants/t/jobs/b/source")).toBe(1);
    expect(await files()).toHaveLength(1);
    await cache.dispose();
  });

  it("drops documents nobody used for idleMs", async () => {
    const cache = new SourceCache(store, { dir: dir(), maxBytes: 1024, idleMs: 30 });
    await cache.open();
    await cache.use("tenants/t/jobs/a/source", async () => {});
    await new Promise((r) => setTimeout(r, 60));
    await cache.use("tenants/t/jobs/b/source", async () => {});
    expect(cache.bytes).toBe(7);
    await cache.dispose();
  });

  it("fails the tasks of a failed download and downloads again for the next one", async () => {
    const cache = new SourceCache(store, { dir: dir(), maxBytes: 1024, idleMs: 60_000 });
    await cache.open();
    await expect(cache.use("tenants/t/jobs/c/source", async () => "never")).rejects.toThrow(/missing/);
    expect(await files()).toEqual([]);
    await store.put("tenants/t/jobs/c/source", Buffer.from("%PDF-c"));
    expect(await cache.use("tenants/t/jobs/c/source", (path) => readFile(path, "utf8"))).toBe("%PDF-c");
    await cache.dispose();
  });

  it("adopts a copy the caller downloaded itself, which outlives the caller's own file", async () => {
    const cache = new SourceCache(store, { dir: dir(), maxBytes: 1024, idleMs: 60_000 });
    await cache.open();
    const own = join(root, "inspect.pdf");
    await writeFile(own, "%PDF-a");
    await cache.adopt("tenants/t/jobs/a/source", own);
    await rm(own);
    expect(await cache.use("tenants/t/jobs/a/source", (path) => readFile(path, "utf8"))).toBe("%PDF-a");
    expect(gets.get("tenants/t/jobs/a/source")).toBeUndefined();
    expect(cache.bytes).toBe(6);
    await cache.evictJob("tenants/t/jobs/a/");
    expect(await files()).toEqual([]);
    await cache.dispose();
  });

  it("removes the caches of processes that are gone, not those of live ones", async () => {
    await mkdir(join(root, "sources-999999999"), { recursive: true });
    await mkdir(join(root, `sources-${process.pid}`), { recursive: true });
    await mkdir(join(root, "other"), { recursive: true });
    await removeStaleCaches(root, "sources-");
    expect((await readdir(root)).sort()).toEqual(["objects", "other", `sources-${process.pid}`]);
  });
});
