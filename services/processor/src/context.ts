import type { NatsConnection } from "@nats-io/transport-node";
import type { JobStore, ObjectStore, WorkPublisher } from "@docflow/core";
import type { Logger } from "@docflow/telemetry";
import type { ProcessorConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";

export interface ProcessorContext {
  config: ProcessorConfig;
  log: Logger;
  store: ObjectStore;
  jobs: JobStore;
  publisher: WorkPublisher;
  nats: NatsConnection;
  metrics: Metrics;
}
