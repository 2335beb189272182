import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { WorkQueue } from "./workqueue.ts";

describe("WorkQueue", () => {
  it("queues a waiting key once however often it is added", async () => {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(
      async (key) => {
        seen.push(key);
        if (key === "block") await gate;
      },
      { workers: 1 },
    );
    q.add("block");
    q.add("a");
    q.add("a");
    q.add("a");
    expect(q.length).toBe(1);
    release();
    await sleep(10);
    expect(seen).toEqual(["block", "a"]);
  });

  it("never runs one key twice at once; added while running, it runs again after", async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        running++;
        most = Math.max(most, running);
        runs++;
        await sleep(20);
        running--;
      },
      { workers: 4 },
    );
    q.add("k");
    await sleep(5);
    q.add("k");
    q.add("k");
    await sleep(80);
    expect(most).toBe(1);
    expect(runs).toBe(2);
  });

  it("backs off exponentially per key until forgotten", () => {
    const q = new WorkQueue(async () => {}, { baseDelayMs: 100, maxDelayMs: 1000 });
    expect([q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k")]).toEqual([100, 200, 400, 800, 1000]);
    expect(q.addRateLimited("other")).toBe(100);
    q.forget("k");
    expect(q.failures("k")).toBe(0);
    void q.shutDown();
  });

  it("retries a key whose handler threw, after its back-off", async () => {
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls++;
        if (calls === 1) throw new Error("conflict");
      },
      { baseDelayMs: 20 },
    );
    q.add("k");
    await sleep(100);
    expect(calls).toBe(2);
  });

  it("shutDown waits for the keys being processed and takes no more", async () => {
    let done = false;
    const q = new WorkQueue(async () => {
      await sleep(30);
      done = true;
    });
    q.add("k");
    await sleep(1);
    await q.shutDown();
    expect(done).toBe(true);
    q.add("later");
    expect(q.length).toBe(0);
  });
});
