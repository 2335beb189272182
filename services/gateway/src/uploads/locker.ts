import { createHash, randomUUID } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { ERRORS, type Lock, type Locker, type RequestRelease } from "@tus/utils";

export interface NatsLockerOptions {
  /** KV bucket for the locks. */
  bucket: string;
  /**
   * A held lock is refreshed every third of this; a lock whose holder died
   * (kill -9) disappears after it, so another replica can take the upload over.
   */
  ttlMs: number;
  /** How long a request waits for a lock before failing (tus answers 500 ERR_LOCK_TIMEOUT). */
  acquireTimeoutMs: number;
}

/**
 * A tus Locker shared by every gateway replica: a lock is a JetStream KV key
 * created with `create` (fails while it exists), refreshed by its holder,
 * and expiring with the bucket's TTL if the holder dies. A request that finds
 * the lock taken asks the holder, over NATS, to release it (tus's
 * requestRelease: the holder cancels its request), as MemoryLocker does in
 * one process.
 */
export class NatsKvLocker implements Locker {
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly #options: NatsLockerOptions;
  readonly #owner = randomUUID();

  private constructor(nc: NatsConnection, kv: KV, options: NatsLockerOptions) {
    this.#nc = nc;
    this.#kv = kv;
    this.#options = options;
  }

  static async open(nc: NatsConnection, options: NatsLockerOptions): Promise<NatsKvLocker> {
    const kv = await new Kvm(nc).create(options.bucket, { history: 1, ttl: options.ttlMs });
    return new NatsKvLocker(nc, kv, options);
  }

  newLock(id: string): Lock {
    return new NatsKvLock(this.#nc, this.#kv, createHash("sha256").update(id).digest("hex"), `${this.#owner}:${randomUUID()}`, this.#options);
  }
}

class NatsKvLock implements Lock {
  readonly #nc: NatsConnection;
  readonly #kv: KV;
  readonly #key: string;
  readonly #holder: string;
  readonly #options: NatsLockerOptions;
  #revision = 0;
  #refresh: NodeJS.Timeout | undefined;
  #releaseRequests: Subscription | undefined;

  constructor(nc: NatsConnection, kv: KV, key: string, holder: string, options: NatsLockerOptions) {
    this.#nc = nc;
    this.#kv = kv;
    this.#key = key;
    this.#holder = holder;
    this.#options = options;
  }

  get #releaseSubject(): string {
    return `docflow.uploads.lock-release.${this.#key}`;
  }

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const deadline = Date.now() + this.#options.acquireTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw ERRORS.ERR_LOCK_TIMEOUT;
      try {
        this.#revision = await this.#kv.create(this.#key, this.#holder);
        break;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      // Held elsewhere: ask the holder to let go, then try again shortly.
      this.#nc.publish(this.#releaseSubject);
      if (Date.now() > deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
      await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 500)));
    }
    this.#releaseRequests = this.#nc.subscribe(this.#releaseSubject, { callback: () => void requestRelease() });
    this.#refresh = setInterval(
      () => {
        this.#kv.update(this.#key, this.#holder, this.#revision).then(
          (revision) => {
            this.#revision = revision;
          },
          () => void requestRelease(), // lost the lock (expired or taken over): stop writing
        );
      },
      Math.max(100, Math.floor(this.#options.ttlMs / 3)),
    );
    this.#refresh.unref();
  }

  async unlock(): Promise<void> {
    clearInterval(this.#refresh);
    this.#releaseRequests?.unsubscribe();
    // Delete only our own lock: if it expired and someone else holds it now, leave theirs.
    await this.#kv.delete(this.#key, { previousSeq: this.#revision }).catch(() => {});
  }
}

function isAlreadyExists(err: unknown): boolean {
  const e = err as { message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(e?.message ?? "");
}
