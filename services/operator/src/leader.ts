import { CoordinationV1Api, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "@docflow/telemetry";
import { errorMessage, statusOf } from "./kube.ts";

/**
 * A Lease's times are MicroTime (RFC 3339 with exactly 6 fractional digits): the API server
 * refuses the 3 digits of Date's ISO form, and the client passes a MicroTime string through as is.
 */
function microTime(date = new Date()): Date {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z") as unknown as Date;
}

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  /** A holder that has not renewed for this long has lost the Lease. */
  leaseSeconds: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/**
 * Leader election on a coordination.k8s.io Lease, the way client-go's leaderelection does it:
 * every replica tries to acquire the Lease; the holder renews it every leaseSeconds/3 and gives up
 * leading when it could not renew for 2/3 of leaseSeconds (before another replica may take it
 * over, after leaseSeconds without renewal). Writes are compare-and-swap on the Lease's
 * resourceVersion, so two replicas never both believe they hold it. `release()` (graceful
 * shutdown) empties the holder so that the next replica takes over at once, not after a lease.
 */
export class LeaderElector {
  readonly #api: CoordinationV1Api;
  readonly #o: LeaderOptions;
  readonly #log: Logger;
  #leading = false;
  #lastRenewMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The holder as last observed and when it was observed to change (local clock: clock skew between nodes does not matter). */
  #observed: { holder: string | undefined; renewTime: string | undefined; atMs: number } = { holder: undefined, renewTime: undefined, atMs: 0 };

  constructor(kc: KubeConfig, options: LeaderOptions, log: Logger) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#o = options;
    this.#log = log;
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  start(): void {
    void this.#tick();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      const held = await this.#tryAcquireOrRenew();
      if (held) this.#lastRenewMs = Date.now();
      if (held && !this.#leading) {
        this.#leading = true;
        this.#log.info({ lease: this.#o.name, identity: this.#o.identity }, "became the leader");
        this.#o.onStartedLeading();
      }
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), lease: this.#o.name }, "could not acquire or renew the lease");
    }
    // Renewal failing for 2/3 of the lease: stop acting before anyone else may start.
    if (this.#leading && Date.now() - this.#lastRenewMs > (this.#o.leaseSeconds * 2000) / 3) this.#lose("the lease could not be renewed in time");
    const period = this.#leading ? (this.#o.leaseSeconds * 1000) / 3 : (this.#o.leaseSeconds * 1000) / 5;
    this.#timer = setTimeout(() => void this.#tick(), period * (0.9 + Math.random() * 0.2));
  }

  #lose(why: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#log.warn({ lease: this.#o.name, why }, "stopped leading");
    this.#o.onStoppedLeading();
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseSeconds } = this.#o;
    const now = microTime();
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      await this.#api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const renewTime = spec.renewTime ? new Date(spec.renewTime).toISOString() : undefined;
    if (spec.holderIdentity !== this.#observed.holder || renewTime !== this.#observed.renewTime) {
      this.#observed = { holder: spec.holderIdentity, renewTime, atMs: Date.now() };
    }
    const holder = spec.holderIdentity;
    const expired = Date.now() - this.#observed.atMs > (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder && holder !== identity && !expired) {
      if (this.#leading) this.#lose(`the lease is held by ${holder}`);
      return false;
    }
    const takeover = holder !== identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: now,
        ...(takeover ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + (holder ? 1 : 0) } : {}),
      },
    };
    try {
      await this.#api.replaceNamespacedLease({ name, namespace, body });
    } catch (err) {
      if (statusOf(err) === 409) return false; // someone else wrote first: re-read next time
      throw err;
    }
    if (takeover && holder) this.#log.info({ lease: name, previous: holder }, "took the lease over");
    return true;
  }

  /** Stops electing; a leader empties the Lease's holder so that another replica takes over at once. */
  async release(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#lose("shutting down");
    const { namespace, name, identity } = this.#o;
    try {
      const lease = await this.#api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const spec = { ...lease.spec };
      delete spec.holderIdentity;
      await this.#api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...spec, leaseDurationSeconds: 1, renewTime: microTime() } } });
      this.#log.info({ lease: name }, "released the lease");
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), lease: name }, "could not release the lease; another replica takes over when it expires");
    }
  }
}
