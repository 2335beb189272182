import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { MemoryLocker } from "@tus/server";
import { onTestFinished } from "vitest";
import { JobRecord, recordKey, type JobId, type TenantId, type WorkMessage } from "@docflow/contracts";
import { FsObjectStore, type Versioned } from "@docflow/infra";
import { createLogger } from "@docflow/telemetry";
import { createApp } from "../src/app.ts";
import { TokenRegistry } from "../src/auth.ts";
import { loadConfig } from "../src/config.ts";
import type { AppContext } from "../src/context.ts";
import type { JobRecords } from "../src/enqueue.ts";
import { createMetrics } from "../src/metrics.ts";
import { createUploads } from "../src/uploads/tus.ts";

/*
 * The gateway's dependencies in memory, for its unit tests: an AppContext whose job store,
 * broker and NATS are fakes and whose object store and uploads live in a temporary directory.
 * The service itself never imports this file.
 */

/** Bearer tokens of the two test tenants. */
export const TOKENS = { acme: "acme-token-0123456789", globex: "globex-token-0123456789" } as const;
export type TestTenant = keyof typeof TOKENS;

/** The job records in a Map, with the JetStream KV semantics the gateway relies on. */
export class MemoryJobStore implements JobRecords {
  readonly #records = new Map<string, Versioned>();
  #sequence = 0;

  async create(record: JobRecord): Promise<Versioned> {
    const parsed = JobRecord.parse(record);
    const key = recordKey(parsed.tenant, parsed.id);
    // As the KV's create: a second create of the same key fails.
    if (this.#records.has(key)) throw new Error("wrong last sequence: key exists");
    return this.#put(key, parsed);
  }

  async get(tenant: TenantId, id: JobId): Promise<Versioned | null> {
    const found = this.#records.get(recordKey(tenant, id));
    return found ? structuredClone(found) : null;
  }

  async update(tenant: TenantId, id: JobId, mutate: (record: JobRecord) => JobRecord | null): Promise<(Versioned & { changed: boolean }) | null> {
    const current = await this.get(tenant, id);
    if (!current) return null;
    const next = mutate(current.record);
    if (next === null) return { ...current, changed: false };
    return { ...this.#put(recordKey(tenant, id), JobRecord.parse({ ...next, updatedAt: new Date().toISOString() })), changed: true };
  }

  async list(tenant: TenantId, options: { limit: number; after?: string | undefined }): Promise<JobRecord[]> {
    const ids = [...this.#records.values()]
      .filter((v) => v.record.tenant === tenant)
      .map((v) => v.record.id)
      .sort()
      .reverse();
    const start = options.after ? ids.findIndex((id) => id < options.after!) : 0;
    if (start < 0) return [];
    return ids.slice(start, start + options.limit).map((id) => structuredClone(this.#records.get(recordKey(tenant, id))!.record));
  }

  async delete(tenant: TenantId, id: JobId): Promise<void> {
    this.#records.delete(recordKey(tenant, id));
  }

  /** Every record, of every tenant. */
  all(): JobRecord[] {
    return [...this.#records.values()].map((v) => structuredClone(v.record));
  }

  #put(key: string, record: JobRecord): Versioned {
    const stored = { record, revision: ++this.#sequence };
    this.#records.set(key, stored);
    return structuredClone(stored);
  }
}

/** The work messages published, as the broker confirmed them. */
export class MemoryPublisher {
  readonly messages: WorkMessage[] = [];

  async publish(message: WorkMessage): Promise<void> {
    this.messages.push(message);
  }
}

/** The live events published on NATS, by subject. */
export class MemoryNats {
  readonly events: { subject: string; event: { type: string; jobId: string } & Record<string, unknown> }[] = [];

  publish(subject: string, data?: string | Uint8Array): void {
    this.events.push({ subject, event: JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)) });
  }

  /** Only `publish` exists: the gateway uses nothing else of its NATS connection outside server.ts. */
  asConnection(): NatsConnection {
    return this as unknown as NatsConnection;
  }
}

export interface TestContext extends AppContext {
  jobs: MemoryJobStore;
  dataDir: string;
  publisher: MemoryPublisher;
  events: MemoryNats["events"];
}

/**
 * An AppContext on fakes, with the fs object store and resumable uploads in a fresh temporary
 * directory; `env` overrides the gateway's configuration (as environment variables).
 */
export async function testContext(env: Record<string, string> = {}): Promise<TestContext> {
  const dataDir = await mkdtemp(join(tmpdir(), "gateway-test-"));
  const config = loadConfig({
    DOCFLOW_STORAGE: "fs",
    DOCFLOW_DATA_DIR: dataDir,
    DOCFLOW_DEV_TOKENS: Object.entries(TOKENS)
      .map(([t, token]) => `${token}=${t}`)
      .join(","),
    ...env,
  });
  const log = createLogger("gateway-test");
  log.level = process.env.LOG_LEVEL ?? "silent";
  const tokens = TokenRegistry.parse(config.DOCFLOW_DEV_TOKENS!);
  const store = new FsObjectStore(join(dataDir, "objects"));
  const jobs = new MemoryJobStore();
  const publisher = new MemoryPublisher();
  const nats = new MemoryNats();
  const metrics = createMetrics();
  const deps = { config, log, tokens, store, jobs, publisher, nats: nats.asConnection(), metrics };
  return {
    ...deps,
    dataDir,
    events: nats.events,
    uploads: createUploads({ ...deps, locker: new MemoryLocker() }),
    readiness: {},
    draining: () => false,
  };
}

/** Listens on a free port of 127.0.0.1; `close` stops the server and its connections. */
export async function listen(server: Server): Promise<{ url: string; close: () => Promise<void> }> {
  if (!server.listening) server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => (server.listening ? resolve() : server.once("listening", () => resolve())));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What a client sees of an answer: its status, headers and body (parsed when it is JSON). */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: Record<string, unknown>;
}

export interface SendOptions {
  /** Sends the tenant's bearer token. */
  as?: TestTenant;
  /** Sends `Tus-Resumable: 1.0.0`. */
  tus?: boolean;
  headers?: Record<string, string>;
  body?: RequestInit["body"];
}

/** A client of the server at `url`: `send(method, path, options)`. */
export function clientOf(url: string) {
  return async function send(method: string, path: string, options: SendOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = {
      ...(options.as ? { authorization: `Bearer ${TOKENS[options.as]}` } : {}),
      ...(options.tus ? { "tus-resumable": "1.0.0" } : {}),
      ...options.headers,
    };
    const streamed = options.body instanceof ReadableStream;
    const res = await fetch(`${url}${path}`, { method, headers, body: options.body ?? null, ...(streamed ? { duplex: "half" } : {}) } as RequestInit);
    const text = await res.text();
    const json = /json/.test(res.headers.get("content-type") ?? "") && text ? (JSON.parse(text) as Record<string, unknown>) : {};
    return { status: res.status, headers: res.headers, text, body: json };
  };
}

/** `size` bytes that start like a PDF (what the gateway's sniffing accepts). */
export function pdfBytes(size: number): Buffer {
  return Buffer.concat([Buffer.from("%PDF-1.7\n"), randomBytes(size - 9)]);
}

/**
 * The app (`createApp`) on a fresh test context, listening on a free port; stopped, and its data
 * dir removed, when the calling test ends.
 */
export async function startApp(env: Record<string, string> = {}) {
  const ctx = await testContext(env);
  const { url, close } = await listen(createApp(ctx).listen(0, "127.0.0.1"));
  onTestFinished(async () => {
    await close();
    await rm(ctx.dataDir, { recursive: true, force: true });
  });
  return { ctx, url, send: clientOf(url) };
}
