import { z } from "zod";
import { parseEnv, sharedEnv } from "@docflow/infra";

const MiB = 1024 * 1024;

/** Everything the gateway reads from its environment, parsed once at start-up. */
export const gatewayEnv = {
  ...sharedEnv,
  /** Interface to listen on. */
  DOCFLOW_HOST: z.string().default("0.0.0.0"),
  /** Port for the API (and, in local mode, the web app). */
  DOCFLOW_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /**
   * Bearer tokens, `token=tenant` pairs separated by commas. Unset: one token
   * for tenant `dev` is generated and printed (local mode only).
   */
  DOCFLOW_DEV_TOKENS: z.string().optional(),
  /** Largest accepted upload in bytes (default 512 MiB). */
  DOCFLOW_MAX_UPLOAD_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(512 * MiB),
  /**
   * Seed of the NATS account signing key the gateway signs browser credentials
   * with (`SA...`). Unset: `POST /v1/realtime/credentials` answers 501 and the
   * web app polls instead.
   */
  DOCFLOW_REALTIME_SIGNING_SEED: z
    .string()
    .regex(/^SA[A-Z2-7]{56}$/, "must be a NATS account seed (SA...)")
    .optional(),
  /** Public key of the NATS account the signing key belongs to (`A...`). */
  DOCFLOW_REALTIME_ACCOUNT: z
    .string()
    .regex(/^A[A-Z2-7]{55}$/, "must be a NATS account public key (A...)")
    .optional(),
  /**
   * NATS WebSocket URL as browsers reach it: `ws://` or `wss://`, or a path (`/nats`) on the
   * web app's own host, which the browser resolves against the page (https -> wss).
   */
  DOCFLOW_REALTIME_WS_URL: z.union([z.string().regex(/^wss?:\/\/[^\s]+$/, "must be a ws:// or wss:// URL"), z.string().regex(/^\/[^\s]*$/, "or a path on the app's host, such as /nats")]).optional(),
  /** Lifetime of browser credentials; the web app renews them before they expire. */
  DOCFLOW_REALTIME_TTL_SECONDS: z.coerce.number().int().min(30).max(86_400).default(900),
  /** Directory of the built web app to serve at `/` (local mode); unset serves the API only. */
  DOCFLOW_WEB_DIR: z.string().optional(),
  /**
   * Keep-alive must outlive the load balancer's idle timeout (60 s on common
   * LBs), or the LB reuses a socket the gateway is closing (502s).
   */
  DOCFLOW_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().positive().default(65_000),
  /** Must be greater than the keep-alive timeout (Node's rule). */
  DOCFLOW_HEADERS_TIMEOUT_MS: z.coerce.number().int().positive().default(66_000),
  /**
   * No request may outlive the edge's origin timeout (60 s): the gateway ends
   * any request still running after this long with a 408 `request_timeout`
   * (an app-level deadline; Node's own requestTimeout must be >= its
   * headersTimeout, so it only backs this up). Files that a slow client cannot
   * send in this time go through resumable uploads.
   */
  DOCFLOW_REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(55_000),
  /** The edge's (CDN or load balancer) origin response timeout: no single request may take longer. */
  DOCFLOW_EDGE_TIMEOUT_MS: z.coerce.number().int().positive().default(60_000),
  /** The slowest client upload bandwidth to support, in bytes per second (default 1 Mbit/s). */
  DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS: z.coerce.number().int().positive().default(125_000),
  /**
   * tus chunk size in bytes. Default: what the slowest supported client sends
   * in 4/5 of the request timeout (5 MiB at 1 Mbit/s and 55 s), so every PATCH
   * finishes inside it (see uploadChunkBytes).
   */
  DOCFLOW_UPLOAD_CHUNK_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .optional(),
  /** Unfinished resumable uploads are removed this long after they were created. */
  DOCFLOW_UPLOAD_EXPIRATION_MS: z.coerce
    .number()
    .int()
    .positive()
    .default(24 * 3600_000),
  /** How often expired uploads are cleaned up (S3 multipart uploads aborted, temporary objects removed). */
  DOCFLOW_UPLOAD_CLEANUP_INTERVAL_MS: z.coerce
    .number()
    .int()
    .positive()
    .default(15 * 60_000),
  /** KV bucket of the upload locks shared by all gateway replicas. */
  DOCFLOW_UPLOAD_LOCKS_BUCKET: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default("docflow-upload-locks"),
  /** A lock whose holder died is free again after this long. */
  DOCFLOW_UPLOAD_LOCK_TTL_MS: z.coerce.number().int().min(1000).default(10_000),
  /** Uploads (single requests or chunks) streaming at once per tenant, per replica; more get 429. */
  DOCFLOW_MAX_UPLOADS_PER_TENANT: z.coerce.number().int().positive().default(8),
  /** Uploads streaming at once on this replica, all tenants; more get 429. */
  DOCFLOW_MAX_UPLOADS: z.coerce.number().int().positive().default(64),
  /** After SIGTERM, readiness fails for this long before the server stops accepting (endpoint removal). */
  DOCFLOW_SHUTDOWN_DELAY_MS: z.coerce.number().int().nonnegative().default(0),
  /** In-flight requests get this long to finish after SIGTERM. */
  DOCFLOW_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(25_000),
  /**
   * Where browser spans (`POST /v1/telemetry/traces`, OTLP/HTTP) are forwarded: an OTLP/HTTP
   * traces URL (`http://collector:4318/v1/traces`), or `off`. Unset: the gateway's own OTLP/HTTP
   * traces endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT +
   * /v1/traces) when its protocol is HTTP; otherwise browser tracing is off.
   */
  DOCFLOW_BROWSER_TRACES_URL: z.union([z.literal("off"), z.string().url()]).optional(),
  /** Largest batch of browser spans accepted (bytes). */
  DOCFLOW_BROWSER_TRACES_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(16 * MiB)
    .default(512 * 1024),
  /** How long forwarding one batch to the collector may take. */
  DOCFLOW_BROWSER_TRACES_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
};

export type GatewayConfig = ReturnType<typeof loadConfig>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = parseEnv(gatewayEnv, env);
  if (config.DOCFLOW_HEADERS_TIMEOUT_MS <= config.DOCFLOW_KEEP_ALIVE_TIMEOUT_MS) {
    throw new Error("invalid configuration:\n  DOCFLOW_HEADERS_TIMEOUT_MS must be greater than DOCFLOW_KEEP_ALIVE_TIMEOUT_MS");
  }
  const chunk = uploadChunkBytes(config);
  if ((chunk / config.DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS) * 1000 >= Math.min(config.DOCFLOW_EDGE_TIMEOUT_MS, config.DOCFLOW_REQUEST_TIMEOUT_MS)) {
    throw new Error(
      "invalid configuration:\n  DOCFLOW_UPLOAD_CHUNK_BYTES / DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS must be below DOCFLOW_EDGE_TIMEOUT_MS and DOCFLOW_REQUEST_TIMEOUT_MS: the slowest client could not send one chunk in time",
    );
  }
  if (config.DOCFLOW_REQUEST_TIMEOUT_MS >= config.DOCFLOW_EDGE_TIMEOUT_MS) {
    throw new Error("invalid configuration:\n  DOCFLOW_REQUEST_TIMEOUT_MS must be below DOCFLOW_EDGE_TIMEOUT_MS: the edge would cut requests the gateway still serves");
  }
  const realtime = [config.DOCFLOW_REALTIME_SIGNING_SEED, config.DOCFLOW_REALTIME_ACCOUNT, config.DOCFLOW_REALTIME_WS_URL];
  if (realtime.some(Boolean) && !realtime.every(Boolean)) {
    throw new Error("invalid configuration:\n  DOCFLOW_REALTIME_SIGNING_SEED, DOCFLOW_REALTIME_ACCOUNT and DOCFLOW_REALTIME_WS_URL are set together or not at all");
  }
  return { ...config, browserTracesUrl: browserTracesUrl(config.DOCFLOW_BROWSER_TRACES_URL, env) };
}

/**
 * The OTLP/HTTP traces URL browser spans are forwarded to, or null (browser tracing off): the
 * explicit setting, else the gateway's own exporter's, by the OpenTelemetry environment rules
 * (a signal-specific endpoint is used as is; the generic one gets /v1/traces), but only where that
 * exporter speaks OTLP/HTTP (gRPC endpoints take no HTTP posts) and the SDK is not disabled.
 */
export function browserTracesUrl(setting: string | undefined, env: NodeJS.ProcessEnv): string | null {
  if (setting === "off") return null;
  if (setting) return setting;
  if (env.OTEL_SDK_DISABLED === "true") return null;
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf";
  if (!protocol.startsWith("http/")) return null;
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return null;
}

const CHUNK_ALIGN = 256 * 1024;

/**
 * The tus chunk size: the configured one, or what the slowest supported client
 * sends in 4/5 of the time one request may take (the request timeout, or the
 * edge timeout if that is shorter), rounded down to 256 KiB. The fifth left
 * over is for the final PATCH, which also completes the S3 upload and creates
 * the job. With the defaults (1 Mbit/s, 55 s) that is 5 MiB, 42 s at 1 Mbit/s:
 * S3's minimum part, so each PATCH streams into object storage as one part.
 * A smaller chunk still works, staged by the store before it becomes a part.
 */
export function uploadChunkBytes(config: {
  DOCFLOW_UPLOAD_CHUNK_BYTES?: number | undefined;
  DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS: number;
  DOCFLOW_EDGE_TIMEOUT_MS: number;
  DOCFLOW_REQUEST_TIMEOUT_MS: number;
}): number {
  if (config.DOCFLOW_UPLOAD_CHUNK_BYTES) return config.DOCFLOW_UPLOAD_CHUNK_BYTES;
  const seconds = Math.min(config.DOCFLOW_EDGE_TIMEOUT_MS, config.DOCFLOW_REQUEST_TIMEOUT_MS) / 1000;
  const budget = (config.DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS * seconds * 4) / 5;
  return Math.max(CHUNK_ALIGN, Math.floor(budget / CHUNK_ALIGN) * CHUNK_ALIGN);
}
