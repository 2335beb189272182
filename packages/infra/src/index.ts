export * from "./object-store/index.ts";
export { sharedEnv, parseEnv } from "./config.ts";
export { openObjectStore, type StorageConfig } from "./stores.ts";
export { connectNats, publishEvent, type NatsOptions } from "./nats.ts";
export { JobStore, type Versioned } from "./job-store.ts";
export {
  AmqpConnection,
  WorkPublisher,
  SENT_AT_HEADER,
  assertTopology,
  workQueue,
  expressQueue,
  laneQueue,
  retryQueue,
  deadLetterQueue,
  deadLetterExchange,
  type AmqpOptions,
  type WorkPublisherOptions,
} from "./amqp.ts";
export { sniffContentType, sniffAhead, refusalDetail, NOT_A_DOCUMENT, SNIFF_BYTES } from "./sniff.ts";
export { closeAll, CLOSE_STEP_MS } from "./shutdown.ts";
