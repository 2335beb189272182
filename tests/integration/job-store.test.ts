import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { v7 as uuidv7 } from "uuid";
import type { JobRecord } from "@docflow/contracts";
import { Kvm } from "@nats-io/kv";
import { JobStore } from "@docflow/infra";
import { connectTestNats, uniqueName } from "../support/env.ts";

function record(tenant: string, id = uuidv7()): JobRecord {
  const now = new Date().toISOString();
  return {
    id,
    tenant,
    status: "queued",
    filename: "a.pdf",
    contentType: "application/pdf",
    size: 10,
    sha256: "0".repeat(64),
    pageCount: null,
    pagesDone: 0,
    createdAt: now,
    updatedAt: now,
    sourceKey: `tenants/${tenant}/jobs/${id}/source`,
    ranges: [],
    rangesDone: [],
  };
}

describe("JobStore on real NATS JetStream KV", () => {
  let nc: NatsConnection;
  let jobs: JobStore;
  let bucket: string;

  beforeAll(async () => {
    nc = await connectTestNats();
    bucket = uniqueName("jobs");
    jobs = await JobStore.open(nc, bucket);
  });

  /** The open jobs of the tenants given (other tests share the bucket). */
  const openOf = async (store: JobStore, ...tenants: string[]): Promise<string[]> => {
    const ids: string[] = [];
    for await (const { record } of store.openJobs()) if (tenants.includes(record.tenant)) ids.push(`${record.tenant}/${record.id}`);
    return ids.sort();
  };
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
      ranges.map((first) => jobs.update("acme", r.id, (cur) => (cur.rangesDone.includes(first) ? null : { ...cur, rangesDone: [...cur.rangesDone, first], pagesDone: cur.pagesDone + 1 }))),
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

  it("reads the jobs that have not ended, every tenant's, and none that ended or were deleted", async () => {
    const [t1, t2] = [uniqueName("open").toLowerCase(), uniqueName("open").toLowerCase()];
    const queued = record(t1);
    const processing = record(t2);
    const completed = record(t1);
    const deleted = record(t2);
    for (const r of [queued, processing, completed, deleted]) await jobs.create(r);
    await jobs.update(t2, processing.id, (r) => ({ ...r, status: "processing" }));
    await jobs.update(t1, completed.id, (r) => ({ ...r, status: "completed" }));
    await jobs.delete(t2, deleted.id);
    expect(await openOf(jobs, t1, t2)).toEqual([`${t1}/${queued.id}`, `${t2}/${processing.id}`].sort());
    // Only the open ones have a key: what the sweeper reads grows with the jobs in flight, not with all jobs kept.
    const index = await new Kvm(nc).open(`${bucket}-open`);
    const keys: string[] = [];
    for await (const key of await index.keys()) if (key.startsWith(`${t1}.`) || key.startsWith(`${t2}.`)) keys.push(key);
    expect(keys.sort()).toEqual([`${t1}.${queued.id}`, `${t2}.${processing.id}`].sort());
  });

  it("drops the key of a job that ended while its key was left behind (a crash between the two writes)", async () => {
    const tenant = uniqueName("crash").toLowerCase();
    const r = record(tenant);
    await jobs.create(r);
    // The record ends without its key going: written straight to the bucket, as if the process died in between.
    const records = await new Kvm(nc).open(bucket);
    await records.put(`${tenant}.${r.id}`, JSON.stringify({ ...r, status: "failed", error: { code: "pdf_invalid", message: "x" } }));
    expect(await openOf(jobs, tenant)).toEqual([]);
    const index = await new Kvm(nc).open(`${bucket}-open`);
    const left = await index.get(`${tenant}.${r.id}`);
    expect(left === null || left.operation !== "PUT").toBe(true);
  });

  it("indexes the open records a bucket held before the index existed, once", async () => {
    const older = uniqueName("jobs");
    const records = await new Kvm(nc).create(older, { history: 1 });
    const tenant = "acme";
    const open = record(tenant);
    const done = { ...record(tenant), status: "completed" as const, completedAt: new Date().toISOString() };
    for (const r of [open, done]) await records.put(`${tenant}.${r.id}`, JSON.stringify(r));
    const store = await JobStore.open(nc, older);
    expect(await openOf(store, tenant)).toEqual([`${tenant}/${open.id}`]);
    // A record written behind the store's back after that is not picked up by opening again: the index was built once.
    const later = record(tenant);
    await records.put(`${tenant}.${later.id}`, JSON.stringify(later));
    expect(await openOf(await JobStore.open(nc, older), tenant)).toEqual([`${tenant}/${open.id}`]);
  });

  it("keeps nothing of the jobs that ended in the index, not even a delete marker per job", async () => {
    const name = uniqueName("jobs");
    const store = await JobStore.open(nc, name);
    const [open, ended, deleted] = [record("acme"), record("acme"), record("acme")];
    for (const r of [open, ended, deleted]) await store.create(r);
    await store.update("acme", ended.id, (r) => ({ ...r, status: "completed" }));
    await store.delete("acme", deleted.id);
    // The open job's key and the "index built" marker: what a sweep reads grows with the jobs in
    // flight only, however many have come and gone.
    const index = await new Kvm(nc).open(`${name}-open`);
    expect((await index.status()).values).toBe(2);
  });

  it("keeps the key of a job whose record is not there yet (being created), and drops it once it is old", async () => {
    const name = uniqueName("jobs");
    const store = await JobStore.open(nc, name);
    const r = record("acme");
    // The moment between the two writes of create(): the key is in, the record is not.
    const index = await new Kvm(nc).open(`${name}-open`);
    await index.put(`acme.${r.id}`, "1");
    expect(await openOf(store, "acme")).toEqual([]);
    const records = await new Kvm(nc).open(name);
    await records.create(`acme.${r.id}`, JSON.stringify(r));
    expect(await openOf(store, "acme")).toEqual([`acme/${r.id}`]); // a sweep in between did not lose it
    // A key whose record never comes (its job deleted by a process that died before removing it) goes once old.
    const orphan = record("acme");
    await index.put(`acme.${orphan.id}`, "1");
    const impatient = await JobStore.open(nc, name, { orphanGraceMs: 0 });
    await new Promise((res) => setTimeout(res, 5));
    expect(await openOf(impatient, "acme")).toEqual([`acme/${r.id}`]);
    expect(await index.get(`acme.${orphan.id}`)).toBeNull();
  });
});
