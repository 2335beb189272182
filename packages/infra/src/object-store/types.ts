import type { Readable } from "node:stream";

export interface StoredObject {
  body: Readable;
  size: number;
}

export interface PutOptions {
  contentType?: string;
  /** Aborting stops the write and leaves no object behind. */
  signal?: AbortSignal;
}

/**
 * Where sources and results live. Every implementation must pass the
 * conformance suite in `object-store.conformance.ts`: bytes come back exactly as
 * written, a missing key is `null` (never an exception), an aborted or failed
 * put leaves nothing readable behind, and `deletePrefix` removes only that prefix.
 */
export interface ObjectStore {
  readonly kind: "fs" | "s3";
  /** Streams `body` to `key`, replacing any previous object. Resolves with the bytes written. */
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<{ size: number }>;
  get(key: string): Promise<StoredObject | null>;
  head(key: string): Promise<{ size: number } | null>;
  delete(key: string): Promise<void>;
  /** Deletes every object whose key starts with `prefix`; returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** Throws when the store cannot be reached (used by readiness). */
  check(): Promise<void>;
}

/** Keys are relative, slash-separated, without empty, `.` or `..` segments. */
export function assertValidKey(key: string): void {
  if (key.length === 0 || key.length > 1024 || key.startsWith("/") || key.split("/").some((s) => s === "" || s === "." || s === "..") || key.includes("\0")) {
    throw new Error(`invalid object key: ${JSON.stringify(key)}`);
  }
}
