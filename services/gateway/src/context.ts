import type { NatsConnection } from "@nats-io/transport-node";
import type { Server as TusServer } from "@tus/server";
import type { JobStore, ObjectStore, WorkPublisher } from "@docflow/core";
import type { Logger } from "@docflow/telemetry";
import type { TokenRegistry } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";

/** What the routes need; built once in server.ts, replaced piecewise in tests. */
export interface AppContext {
  config: GatewayConfig;
  log: Logger;
  tokens: TokenRegistry;
  store: ObjectStore;
  jobs: JobStore;
  publisher: WorkPublisher;
  nats: NatsConnection;
  metrics: Metrics;
  /** The resumable-upload server mounted at `/v1/uploads`. */
  tus: TusServer;
  /** Dependency checks for readiness, by name. */
  readiness: Record<string, () => Promise<void> | void>;
  /** True once SIGTERM arrived: readiness fails, new work is refused. */
  draining: () => boolean;
}
