import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@docflow/telemetry";
import { FsObjectStore, S3ObjectStore, type ObjectStore } from "./object-store/index.ts";

export interface StorageConfig {
  DOCFLOW_STORAGE: "fs" | "s3";
  DOCFLOW_DATA_DIR: string;
  DOCFLOW_S3_BUCKET: string;
  DOCFLOW_S3_ENDPOINT?: string | undefined;
  DOCFLOW_S3_CREATE_BUCKET: boolean;
  AWS_REGION: string;
  AWS_ACCESS_KEY_ID?: string | undefined;
  AWS_SECRET_ACCESS_KEY?: string | undefined;
}

/** Network errors that mean "the object store is not up yet", as opposed to a refusal. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EPIPE"]);

export function isUnreachable(err: unknown): boolean {
  const e = err as { code?: string; errno?: string; cause?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
  if (!e) return false;
  if (UNREACHABLE.has(e.code ?? "") || UNREACHABLE.has(e.errno ?? "")) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  return e.cause !== undefined && e.cause !== err && isUnreachable(e.cause);
}

/**
 * Runs `attempt` until it succeeds, waiting 0.5 s, 1 s, 2 s ... (at most 5 s) while it fails with
 * `retryable` errors, each logged; any other error is thrown at once. Dependencies start in any
 * order on Kubernetes: a service waits for its object store as it waits for NATS and RabbitMQ,
 * rather than exiting and being restarted.
 */
export async function untilAvailable<T>(what: string, attempt: () => Promise<T>, log?: Logger, retryable: (err: unknown) => boolean = isUnreachable): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      if (!retryable(err)) throw err;
      const waitMs = Math.min(5000, 250 * 2 ** tries);
      log?.warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code }, tries, retryInMs: waitMs }, `${what} not reachable yet; retrying`);
      await sleep(waitMs);
    }
  }
}

/**
 * Builds the configured object store (and creates its bucket where asked to). An S3 endpoint that
 * cannot be reached yet is waited for (logged through `log`); a refusal (bad keys, no permission)
 * fails at once.
 */
export async function openObjectStore(config: StorageConfig, log?: Logger): Promise<ObjectStore> {
  if (config.DOCFLOW_STORAGE === "fs") {
    const store = new FsObjectStore(join(resolve(config.DOCFLOW_DATA_DIR), "objects"));
    await store.check();
    return store;
  }
  const store = new S3ObjectStore({
    bucket: config.DOCFLOW_S3_BUCKET,
    endpoint: config.DOCFLOW_S3_ENDPOINT,
    region: config.AWS_REGION,
    credentials: config.AWS_ACCESS_KEY_ID && config.AWS_SECRET_ACCESS_KEY ? { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY } : undefined,
  });
  if (config.DOCFLOW_S3_CREATE_BUCKET) await untilAvailable(`object store ${config.DOCFLOW_S3_ENDPOINT ?? "(AWS)"}`, () => store.ensureBucket(), log);
  return store;
}
