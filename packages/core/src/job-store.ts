import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { JobRecord, recordKey, type JobId, type TenantId } from "@docflow/contracts";

export interface Versioned {
  record: JobRecord;
  revision: number;
}

/**
 * Job records in a JetStream KV bucket, keyed `<tenant>.<job>`. Every change is
 * a compare-and-set on the entry's revision, so concurrent processors never
 * overwrite each other's progress.
 */
export class JobStore {
  readonly #kv: KV;

  private constructor(kv: KV) {
    this.#kv = kv;
  }

  static async open(nc: NatsConnection, bucket: string): Promise<JobStore> {
    const kv = await new Kvm(nc).create(bucket, { history: 1 });
    return new JobStore(kv);
  }

  async create(record: JobRecord): Promise<Versioned> {
    const parsed = JobRecord.parse(record);
    const revision = await this.#kv.create(recordKey(parsed.tenant, parsed.id), JSON.stringify(parsed));
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
  async update(
    tenant: TenantId,
    id: JobId,
    mutate: (record: JobRecord) => JobRecord | null,
  ): Promise<(Versioned & { changed: boolean }) | null> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const current = await this.get(tenant, id);
      if (!current) return null;
      const next = mutate(structuredClone(current.record));
      if (next === null) return { ...current, changed: false };
      next.updatedAt = new Date().toISOString();
      const parsed = JobRecord.parse(next);
      try {
        const revision = await this.#kv.update(recordKey(tenant, id), JSON.stringify(parsed), current.revision);
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
    const ids = keys.map((k) => k.slice(tenant.length + 1)).sort().reverse();
    const start = options.after ? ids.findIndex((id) => id < options.after!) : 0;
    if (start < 0) return [];
    const page = ids.slice(start, start + options.limit);
    const records = await Promise.all(page.map((id) => this.get(tenant, id)));
    return records.flatMap((r) => (r ? [r.record] : []));
  }

  /** Every job record of every tenant (the sweeper's scan; O(jobs)). */
  async *scan(): AsyncGenerator<Versioned> {
    const keys: string[] = [];
    for await (const key of await this.#kv.keys()) keys.push(key);
    for (const key of keys) {
      const [tenant, id] = key.split(".");
      const found = tenant && id ? await this.get(tenant, id) : null;
      if (found) yield found;
    }
  }

  async delete(tenant: TenantId, id: JobId): Promise<void> {
    await this.#kv.purge(recordKey(tenant, id));
  }
}

function isWrongRevision(err: unknown): boolean {
  const e = err as { message?: string; api_error?: { err_code?: number }; code?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(e?.message ?? "");
}
