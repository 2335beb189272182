import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "@docflow/telemetry";

/**
 * A cache of one kind of object, kept current by list + watch (client-node's ListWatch): it lists
 * once, then watches from the list's resourceVersion, resumes from the last one it saw after a
 * watch ends, and lists again when the server answers 410 Gone (the resourceVersion is too old).
 * On top of it:
 * - watch bookmarks are asked for (`allowWatchBookmarks`), so a quiet watch still advances its
 *   resourceVersion and a restart does not fall back to a full list;
 * - ListWatch stops on any other error (an API server restart, a network cut): it is started
 *   again after a back-off, forever, and the error is logged once per streak;
 * - `synced` resolves after the first list, which is what /readyz waits for.
 */
export class Informer<T extends KubernetesObject> {
  readonly #lw: ListWatch<T>;
  readonly #name: string;
  readonly #log: Logger;
  #failures = 0;
  #stopped = false;
  #synced = false;
  #restart: NodeJS.Timeout | undefined;
  readonly synced: Promise<void>;

  constructor(kc: KubeConfig, name: string, path: string, list: () => Promise<KubernetesListObject<T>>, log: Logger, labelSelector?: string) {
    this.#name = name;
    this.#log = log;
    const watch = new Watch(kc);
    // Ask for bookmarks on every watch this ListWatch opens.
    const withBookmarks = {
      watch: (p: string, params: Record<string, unknown>, cb: Parameters<Watch["watch"]>[2], done: Parameters<Watch["watch"]>[3]) => watch.watch(p, { ...params, allowWatchBookmarks: true }, cb, done),
    } as unknown as Watch;
    let resolveSynced!: () => void;
    this.synced = new Promise((resolve) => (resolveSynced = resolve));
    this.#lw = new ListWatch<T>(
      path,
      withBookmarks,
      async () => {
        const result = await list();
        this.#synced = true;
        if (this.#failures > 0) this.#log.info({ informer: this.#name }, "watch restored");
        this.#failures = 0;
        resolveSynced();
        return result;
      },
      false,
      labelSelector,
    );
    this.#lw.on("error", (err: unknown) => this.#onError(err));
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  on(verb: "add" | "update" | "delete", cb: (obj: T) => void): void {
    this.#lw.on(verb, cb);
  }

  list(namespace?: string): readonly T[] {
    return this.#lw.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#lw.get(name, namespace);
  }

  async start(): Promise<void> {
    await this.#lw.start().catch((err: unknown) => this.#onError(err));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restart);
    await this.#lw.stop();
  }

  #onError(err: unknown): void {
    if (this.#stopped) return;
    this.#failures++;
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.#failures, 6));
    if (this.#failures === 1) this.#log.warn({ err, informer: this.#name, retryInMs: delay }, "watch failed; restarting it");
    clearTimeout(this.#restart);
    this.#restart = setTimeout(() => void this.#lw.start().catch((e: unknown) => this.#onError(e)), delay);
    this.#restart.unref();
  }
}
