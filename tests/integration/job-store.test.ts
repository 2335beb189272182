import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { v7 as uuidv7 } from "uuid";
import type { JobRecord } from "@docflow/contracts";
import { JobStore } from "@docflow/core";
import { connectTestNats, uniqueName } from "../support/env.ts";

function record(tenant: string, id = uuidv7()): JobRecord {
  const now = new Date().toISOString();
  return {
    id, tenant, status: "queued", filename: "a.pdf", contentType: "application/pdf", size: 10, sha256: "0".repeat(64),
    pageCount: null, pagesDone: 0, createdAt: now, updatedAt: now, sourceKey: `tenants/${tenant}/jobs/${id}/source`, ranges: [], rangesDone: [],
  };
}

describe("JobStore on real NATS JetStream KV", () => {
  let nc: NatsConnection;
  let jobs: JobStore;

  beforeAll(async () => {
    nc = await connectTestNats();
    jobs = await JobStore.open(nc, uniqueName("jobs"));
  });
  afterAll(async () => {
    await nc?.drain();
  });

  it("creates once: a second create of the same job fails", async () => {
    const r = record("acme");
    const created = await jobs.create(r);
    expect(created.revision).toBeGreaterThan(0);
    await expect(jobs.create(r)).rejects.toThrow();
    expect((await jobs.get("acme", r.id))?.record.filename).toBe("a.pdf");
  });

  it("never loses an update under concurrent compare-and-set writers", async () => {
    const r = record("acme");
    await jobs.create(r);
    const ranges = Array.from({ length: 25 }, (_, i) => i + 1);
    await Promise.all(
      ranges.map((first) =>
        jobs.update("acme", r.id, (cur) => (cur.rangesDone.includes(first) ? null : { ...cur, rangesDone: [...cur.rangesDone, first], pagesDone: cur.pagesDone + 1 })),
      ),
    );
    // A duplicate delivery of range 7 changes nothing.
    const dup = await jobs.update("acme", r.id, (cur) => (cur.rangesDone.includes(7) ? null : cur));
    expect(dup?.changed).toBe(false);
    const final = await jobs.get("acme", r.id);
    expect(final?.record.pagesDone).toBe(25);
    expect([...final!.record.rangesDone].sort((a, b) => a - b)).toEqual(ranges);
  });

  it("lists one tenant's jobs newest first with a cursor, and nothing of other tenants", async () => {
    const tenant = uniqueName("t").toLowerCase();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = record(tenant);
      ids.push(r.id);
      await jobs.create(r);
      await new Promise((res) => setTimeout(res, 2));
    }
    await jobs.create(record(`${tenant}-other`));
    const first = await jobs.list(tenant, { limit: 3 });
    expect(first.map((r) => r.id)).toEqual([...ids].reverse().slice(0, 3));
    const second = await jobs.list(tenant, { limit: 3, after: first.at(-1)!.id });
    expect(second.map((r) => r.id)).toEqual([...ids].reverse().slice(3));
    expect(first.concat(second).every((r) => r.tenant === tenant)).toBe(true);
  });

  it("get is scoped to the tenant; delete removes the record", async () => {
    const r = record("acme");
    await jobs.create(r);
    expect(await jobs.get("other", r.id)).toBeNull();
    await jobs.delete("acme", r.id);
    expect(await jobs.get("acme", r.id)).toBeNull();
    expect(await jobs.update("acme", r.id, (cur) => cur)).toBeNull();
  });
});
