import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";

/**
 * Where the real dependency services of the integration and end-to-end tests
 * are: `scripts/test.ts` starts them and sets these variables. A test never
 * falls back to a fake: without them it fails and says how to run it.
 */
export interface TestServices {
  amqpUrl: string;
  natsUrl: string;
  natsWsUrl: string;
  /** NATS runs with decentralised auth: the services' credentials file, and the signing key the gateway mints browser credentials with. */
  nats: { credsFile: string; signingSeed: string; account: string };
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string };
}

export function testServices(): TestServices {
  const need = (name: string): string => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set: run the tests with 'npm test' (scripts/test.ts starts RabbitMQ, NATS and the S3 server)`);
    return value;
  };
  return {
    amqpUrl: need("DOCFLOW_TEST_AMQP_URL"),
    natsUrl: need("DOCFLOW_TEST_NATS_URL"),
    natsWsUrl: need("DOCFLOW_TEST_NATS_WS_URL"),
    nats: { credsFile: need("DOCFLOW_TEST_NATS_CREDS"), signingSeed: need("DOCFLOW_TEST_NATS_SIGNING_SEED"), account: need("DOCFLOW_TEST_NATS_ACCOUNT") },
    s3: {
      endpoint: need("DOCFLOW_TEST_S3_ENDPOINT"),
      accessKeyId: need("DOCFLOW_TEST_S3_ACCESS_KEY"),
      secretAccessKey: need("DOCFLOW_TEST_S3_SECRET_KEY"),
      region: "us-east-1",
    },
  };
}

/** A name unique to this test run, safe as a bucket, queue, KV bucket or tenant id. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Connects to the test NATS as a service (with the services' credentials). */
export async function connectTestNats(): Promise<NatsConnection> {
  const services = testServices();
  return connect({ servers: services.natsUrl, authenticator: credsAuthenticator(readFileSync(services.nats.credsFile)) });
}
