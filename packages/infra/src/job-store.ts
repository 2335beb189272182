import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { JobRecord, TERMINAL_STATUSES, recordKey, type JobId, type TenantId } from "@docflow/contracts";

export interface Versioned {
  record: JobRecord;
  revision: number;
}

/**
 * Job records in a JetStream KV bucket, keyed `<tenant>.<job>`. Every change is
 * a compare-and-set on the entry's revision, so concurrent processors never
 * overwrite each other's progress.
 *
 * A second bucket, `<bucket>-open`, holds a key per job that has not ended
 * (queued or processing), so that the sweeper reads the jobs still in flight
 * instead of every job ever made. It is kept by this class alone: the key is
 * written before the record is created and removed after the record has
 * ended (or been deleted). A crash between the two leaves an extra key, never
 * a missing one; `openJobs()` drops the extra ones it meets. A key is removed
 * by purging its subject from the bucket's stream, not with the KV's purge,
 * which leaves a marker per key behind: one per job ever ended, that every
 * scan of the keys would read.
 */
export class JobStore {
  readonly #kv: KV;
  readonly #open: KV;
  readonly #openBucket: string;
  readonly #jsm: JetStreamManager;
  readonly #orphanGraceMs: number;

  private constructor(kv: KV, open: KV, openBucket: string, jsm: JetStreamManager, orphanGraceMs: number) {
    this.#kv = kv;
    this.#open = open;
    this.#openBucket = openBucket;
    this.#jsm = jsm;
    this.#orphanGraceMs = orphanGraceMs;
  }

  /**
   * `orphanGraceMs`: how old an open-jobs key without a record must be before `openJobs()`
   * removes it (10 minutes; a job's key exists a moment before its record does).
   */
  static async open(nc: NatsConnection, bucket: string, options: { orphanGraceMs?: number } = {}): Promise<JobStore> {
    const kvm = new Kvm(nc);
    const kv = await kvm.create(bucket, { history: 1 });
    const openBucket = `${bucket}-open`;
    const open = await kvm.create(openBucket, { history: 1 });
    const store = new JobStore(kv, open, openBucket, await jetstreamManager(nc), options.orphanGraceMs ?? 10 * 60_000);
    // Records written before the index existed (an upgrade): index the open ones, once per bucket.
    if ((await open.get(INDEX_BUILT)) === null) {
      await store.#indexOpenRecords();
      await open.put(INDEX_BUILT, new Date().toISOString());
    }
    return store;
  }

  async create(record: JobRecord): Promise<Versioned> {
    const parsed = JobRecord.parse(record);
    const key = recordKey(parsed.tenant, parsed.id);
    if (!TERMINAL_STATUSES.has(parsed.status)) await this.#open.put(key, "1");
    const revision = await this.#kv.create(key, JSON.stringify(parsed));
    return { record: parsed, revision };
  }

  async get(tenant: TenantId, id: JobId): Promise<Versioned | null> {
    const entry = await this.#kv.get(recordKey(tenant, id));
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return null;
    return { record: JobRecord.parse(entry.json()), revision: entry.revision };
  }

  /**
   * Applies `mutate` with compare-and-set, retrying on conflicting writes.
   * `mutate` gets a copy and returns the new record, or `null` to leave it unchanged.
   * Returns `null` when the job does not exist (or was deleted meanwhile).
   */
  async update(tenant: TenantId, id: JobId, mutate: (record: JobRecord) => JobRecord | null): Promise<(Versioned & { changed: boolean }) | null> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const current = await this.get(tenant, id);
      if (!current) return null;
      const next = mutate(structuredClone(current.record));
      if (next === null) return { ...current, changed: false };
      next.updatedAt = new Date().toISOString();
      const parsed = JobRecord.parse(next);
      try {
        const revision = await this.#kv.update(recordKey(tenant, id), JSON.stringify(parsed), current.revision);
        if (TERMINAL_STATUSES.has(parsed.status) && !TERMINAL_STATUSES.has(current.record.status)) await this.#unindex(tenant, id);
        return { record: parsed, revision, changed: true };
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
      }
    }
    throw new Error(`job ${id}: too many concurrent updates`);
  }

  /** A tenant's jobs, newest first; `after` is the last id of the previous page. */
  async list(tenant: TenantId, options: { limit: number; after?: string | undefined }): Promise<JobRecord[]> {
    const keys: string[] = [];
    for await (const key of await this.#kv.keys(`${tenant}.*`)) keys.push(key);
    const ids = keys
      .map((k) => k.slice(tenant.length + 1))
      .sort()
      .reverse();
    const start = options.after ? ids.findIndex((id) => id < options.after!) : 0;
    if (start < 0) return [];
    const page = ids.slice(start, start + options.limit);
    const records = await Promise.all(page.map((id) => this.get(tenant, id)));
    return records.flatMap((r) => (r ? [r.record] : []));
  }

  /**
   * The jobs that have not ended (queued or processing), every tenant's: the
   * sweeper's scan, O(jobs in flight) whatever the number of jobs kept.
   */
  async *openJobs(): AsyncGenerator<Versioned> {
    for await (const { key, found } of this.#recordsOf(this.#open)) {
      if (found && !TERMINAL_STATUSES.has(found.record.status)) {
        yield found;
      } else if (found) {
        // The record ended, and a crash between the two writes left its key.
        await this.#removeKey(key);
      } else {
        // No record: a job being created right now (its key is written first), or one deleted by
        // a process that died before removing the key. Only the second kind is ever old.
        const entry = await this.#open.get(key);
        if (entry !== null && Date.now() - entry.created.getTime() > this.#orphanGraceMs) await this.#removeKey(key);
      }
    }
  }

  async delete(tenant: TenantId, id: JobId): Promise<void> {
    await this.#kv.purge(recordKey(tenant, id));
    await this.#unindex(tenant, id);
  }

  /**
   * Drops an ended job's key. The record's change has happened by then, so a
   * failure here does not fail it: the key left over is dropped by the next
   * `openJobs()` that meets it.
   */
  async #unindex(tenant: TenantId, id: JobId): Promise<void> {
    await this.#removeKey(recordKey(tenant, id)).catch(() => {});
  }

  /** Removes every message of `key` from the open-jobs stream: no marker is left. */
  async #removeKey(key: string): Promise<void> {
    await this.#jsm.streams.purge(`KV_${this.#openBucket}`, { filter: `$KV.${this.#openBucket}.${key}` });
  }

  /** Indexes every record that has not ended (the one full scan, for records older than the index). */
  async #indexOpenRecords(): Promise<void> {
    for await (const { key, found } of this.#recordsOf(this.#kv)) {
      if (found && !TERMINAL_STATUSES.has(found.record.status)) await this.#open.put(key, "1");
    }
  }

  /** Each `<tenant>.<job>` key of `kv` (listed first, then read one by one) with the job's record, if it has one. */
  async *#recordsOf(kv: KV): AsyncGenerator<{ key: string; found: Versioned | null }> {
    const keys: string[] = [];
    for await (const key of await kv.keys()) if (key !== INDEX_BUILT) keys.push(key);
    for (const key of keys) {
      const [tenant, id] = key.split(".");
      yield { key, found: tenant && id ? await this.get(tenant, id) : null };
    }
  }
}

/** The open-jobs bucket's marker that every record older than the index has been indexed (not a job: job ids are UUIDs). */
const INDEX_BUILT = "_index.built";

function isWrongRevision(err: unknown): boolean {
  const e = err as { message?: string; api_error?: { err_code?: number }; code?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(e?.message ?? "");
}
