import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ObjectStore } from "@docflow/infra";

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Streams `total` random bytes in chunks of `chunk`, remembering them. */
function randomStream(total: number, chunk = 256 * 1024): { stream: Readable; bytes: Buffer } {
  const bytes = randomBytes(total);
  const stream = Readable.from(
    (function* () {
      for (let at = 0; at < total; at += chunk) yield bytes.subarray(at, Math.min(total, at + chunk));
    })(),
  );
  return { stream, bytes };
}

/**
 * The behaviour every ObjectStore must have (tus-node-server's store suite is
 * the model). `open` returns a fresh, empty store for each run.
 */
export function objectStoreConformance(name: string, open: () => Promise<ObjectStore>): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    it("returns streamed bytes exactly as written, multi-part sized", async () => {
      const store = await open();
      const { stream, bytes } = randomStream(21 * 1024 * 1024 + 17);
      const { size } = await store.put("tenants/t1/jobs/j1/source", stream);
      expect(size).toBe(bytes.length);
      const got = await store.get("tenants/t1/jobs/j1/source");
      expect(got?.size).toBe(bytes.length);
      expect(sha(await readAll(got!.body))).toBe(sha(bytes));
      expect(await store.head("tenants/t1/jobs/j1/source")).toEqual({ size: bytes.length });
    });

    it("stores buffers, empty objects and overwrites", async () => {
      const store = await open();
      await store.put("a/b.json", Buffer.from('{"v":1}'));
      await store.put("a/b.json", Buffer.from('{"v":2}'));
      expect((await readAll((await store.get("a/b.json"))!.body)).toString()).toBe('{"v":2}');
      await store.put("a/empty", Buffer.alloc(0));
      expect(await store.head("a/empty")).toEqual({ size: 0 });
    });

    it("answers null for a missing key, never throws", async () => {
      const store = await open();
      expect(await store.get("nope/missing")).toBeNull();
      expect(await store.head("nope/missing")).toBeNull();
      await expect(store.delete("nope/missing")).resolves.toBeUndefined();
    });

    it("leaves nothing readable when the source stream fails midway", async () => {
      const store = await open();
      const failing = Readable.from(
        (async function* () {
          yield randomBytes(6 * 1024 * 1024);
          throw new Error("client went away");
        })(),
      );
      await expect(store.put("broken/source", failing)).rejects.toThrow();
      expect(await store.get("broken/source")).toBeNull();
    });

    it("leaves nothing readable when the put is aborted", async () => {
      const store = await open();
      const controller = new AbortController();
      const slow = Readable.from(
        (async function* () {
          yield randomBytes(1024 * 1024);
          controller.abort(new Error("aborted by test"));
          await new Promise((r) => setTimeout(r, 50));
          yield randomBytes(1024 * 1024);
        })(),
      );
      await expect(store.put("aborted/source", slow, { signal: controller.signal })).rejects.toThrow();
      expect(await store.head("aborted/source")).toBeNull();
    });

    it("deletes a prefix and only that prefix", async () => {
      const store = await open();
      for (const n of [1, 2, 3]) await store.put(`tenants/t/jobs/x/pages/${n}.json`, Buffer.from(String(n)));
      await store.put("tenants/t/jobs/x/source", Buffer.from("src"));
      await store.put("tenants/t/jobs/xy/source", Buffer.from("keep"));
      expect(await store.deletePrefix("tenants/t/jobs/x/")).toBe(4);
      expect(await store.head("tenants/t/jobs/x/source")).toBeNull();
      expect(await store.head("tenants/t/jobs/x/pages/2.json")).toBeNull();
      expect(await store.head("tenants/t/jobs/xy/source")).toEqual({ size: 4 });
      expect(await store.deletePrefix("tenants/t/jobs/none/")).toBe(0);
    });

    it("refuses keys that could escape their prefix", async () => {
      const store = await open();
      for (const key of ["../etc/passwd", "/abs", "a//b", "a/./b", ""]) {
        await expect(store.put(key, Buffer.from("x"))).rejects.toThrow(/invalid object key/);
      }
    });

    it("passes its readiness check", async () => {
      const store = await open();
      await expect(store.check()).resolves.toBeUndefined();
    });
  });
}
