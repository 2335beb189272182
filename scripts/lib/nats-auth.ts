/**
 * NATS decentralised auth for docflow: the generator lives with the gateway, which signs browser
 * credentials and whose image generates the material in a cluster (src/nats-auth-secret.ts).
 */
export { generateNatsAuth, type NatsAuth } from "../../services/gateway/src/nats-auth.ts";
