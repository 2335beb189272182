import type { NatsConnection } from "@nats-io/transport-node";
import type { ObjectStore } from "@docflow/infra";
import type { Logger } from "@docflow/telemetry";
import type { TokenRegistry } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import type { JobRecords, WorkQueue } from "./enqueue.ts";
import type { Metrics } from "./metrics.ts";
import type { Uploads } from "./uploads/tus.ts";

/** What the routes need; built once in server.ts, replaced piecewise in tests. */
export interface AppContext {
  config: GatewayConfig;
  log: Logger;
  tokens: TokenRegistry;
  store: ObjectStore;
  jobs: JobRecords;
  publisher: WorkQueue;
  nats: NatsConnection;
  metrics: Metrics;
  /** The resumable uploads (tus) served at `/v1/uploads`. */
  uploads: Uploads;
  /** Dependency checks for readiness, by name. */
  readiness: Record<string, () => Promise<void> | void>;
  /** True once SIGTERM arrived: readiness fails, new work is refused. */
  draining: () => boolean;
}
