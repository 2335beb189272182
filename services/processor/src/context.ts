import type { NatsConnection } from "@nats-io/transport-node";
import type { JobStore, ObjectStore, WorkPublisher } from "@docflow/infra";
import type { Logger } from "@docflow/telemetry";
import type { ProcessorConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";
import type { OfficeSlots } from "./office-slots.ts";
import type { SourceCache } from "./source-cache.ts";

export interface ProcessorContext {
  config: ProcessorConfig;
  log: Logger;
  store: ObjectStore;
  jobs: JobStore;
  publisher: WorkPublisher;
  nats: NatsConnection;
  metrics: Metrics;
  /** LibreOffice profile slots, one per concurrent conversion. */
  office: OfficeSlots;
  /** The documents of the jobs being rendered here, downloaded once per job. */
  sources: SourceCache;
}

/** What the consumer knows about one delivery of a work message. */
export interface TaskInfo {
  /**
   * This message was worked on before: RabbitMQ redelivered it (a processor died or
   * its channel closed while holding it) or it is a retry of a failed attempt.
   */
  repeated: boolean;
}
