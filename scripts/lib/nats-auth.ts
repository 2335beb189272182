/**
 * NATS decentralised auth for docflow: the generator lives in @docflow/core (the gateway's image
 * runs it in a cluster, src/nats-auth-secret.ts); the local stack and the tests use it from here.
 */
export { generateNatsAuth, type NatsAuth } from "@docflow/core/nats-auth";
