import { reactive, readonly } from "vue";
import { z } from "zod";
import { ClientConfig } from "@docflow/contracts";
import { api } from "@/api/client";

/**
 * Runtime configuration of the web app: the one place that reads it.
 *
 * The built bundle is the same for every install, so anything an operator may
 * change comes from the gateway at run time (`GET /v1/config`). Until the gateway
 * serves it (or when it cannot be read), the defaults below apply.
 */
export interface RuntimeConfig {
  /**
   * Largest file the browser offers to upload, in bytes. The gateway enforces its
   * own limit; this one only spares people a long upload that would be refused.
   * @defaultValue 536870912 (512 MiB)
   */
  maxUploadBytes: number;
  /**
   * Chunk size of the resumable (tus) uploads to `/v1/uploads`, in bytes: each chunk is one
   * request and must finish inside the load balancer's timeout.
   * @defaultValue 8388608 (8 MiB)
   */
  tusChunkBytes: number;
  /**
   * How often the app re-reads jobs when live updates are not available, in ms.
   * @defaultValue 3000
   */
  pollIntervalMs: number;
  /**
   * Where the browser sends its trace spans (OTLP/HTTP JSON, same origin), or null when the
   * gateway has no collector to forward them to: then the app records no traces at all.
   * @defaultValue null
   */
  tracesEndpoint: string | null;
}

export const DEFAULT_CONFIG: Readonly<RuntimeConfig> = Object.freeze({
  maxUploadBytes: 512 * 1024 * 1024,
  tusChunkBytes: 8 * 1024 * 1024,
  pollIntervalMs: 3000,
  tracesEndpoint: null,
});

/**
 * What the app takes from the gateway's `ClientConfig`, plus a `pollIntervalMs` that is not in
 * the contract (the default applies unless a server sends one); unknown fields are ignored,
 * invalid ones fall back to the default. The config's `uploadTransport` and `uploadEndpoint` are
 * among the ignored: the app always uploads through tus at `/v1/uploads`.
 */
const ServerConfig = ClientConfig.pick({ maxUploadBytes: true, tusChunkBytes: true, tracesEndpoint: true })
  .extend({ pollIntervalMs: z.number().int().min(1000) })
  .partial();

const state = reactive<RuntimeConfig>({ ...DEFAULT_CONFIG });

/** The current runtime configuration (reactive, read-only). */
export const runtimeConfig: Readonly<RuntimeConfig> = readonly(state);

/** Merges what the server sent over the defaults. Fields that do not validate keep their default. */
export function applyRuntimeConfig(raw: unknown): void {
  const next: RuntimeConfig = { ...DEFAULT_CONFIG };
  if (raw && typeof raw === "object") {
    for (const [key, schema] of Object.entries(ServerConfig.shape)) {
      const parsed = schema.safeParse((raw as Record<string, unknown>)[key]);
      if (parsed.success && parsed.data !== undefined) Object.assign(next, { [key]: parsed.data });
    }
  }
  Object.assign(state, next);
}

let loading: Promise<void> | null = null;

/**
 * Reads `GET /v1/config` (once it has succeeded, later calls do nothing). Never
 * fails: on any error (the endpoint does not exist yet, it wants a token and
 * nobody is signed in, the network is down) the defaults stay in force and the
 * next call tries again. Called at startup and after each sign-in.
 */
export function loadRuntimeConfig(): Promise<void> {
  loading ??= api.getConfig().then(
    (raw) => applyRuntimeConfig(raw),
    () => {
      loading = null;
    },
  );
  return loading;
}

/** For tests: back to the defaults. */
export function resetRuntimeConfig(): void {
  loading = null;
  Object.assign(state, DEFAULT_CONFIG);
}
