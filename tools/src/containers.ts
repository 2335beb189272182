/**
 * The tests' dependency services (RabbitMQ, NATS with JetStream + WebSocket, an S3 server) as
 * containers, through Testcontainers: the path a laptop with Docker (or podman) takes, and the one
 * CI proves on every run (scripts/containers.sh provisions podman there). The handles carry the
 * same fields as the host-process ones of tools/src/services.ts, so scripts/test.ts exports the
 * same DOCFLOW_TEST_* variables whichever path started them.
 *
 * Images (env, with public defaults; scripts/containers.sh --print-env points them at the local
 * builds on machines without a registry):
 *   DOCFLOW_TEST_RABBITMQ_IMAGE  rabbitmq:3.13-management  (AMQP 5672, management 15672)
 *   DOCFLOW_TEST_NATS_IMAGE      nats:2.10                 (nats-server as entrypoint)
 *   DOCFLOW_TEST_S3_IMAGE        versity/versitygw:v1.8.0  (versitygw as entrypoint)
 *
 * Isolation per test file is by name, as on the host path: each suite uses its own queue
 * namespace, KV bucket, subjects (tenants) and S3 bucket (tests/support/env.ts `uniqueName`).
 * Containers are removed on stop(); Ryuk (the reaper) may be disabled, as it is on podman here,
 * so stop() is always called, also on a signal (scripts/test.ts).
 */
import { randomBytes } from "node:crypto";
import { RabbitMQContainer, type StartedRabbitMQContainer } from "@testcontainers/rabbitmq";
import { NatsContainer, type StartedNatsContainer } from "@testcontainers/nats";
import { GenericContainer, Wait, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import { createBuckets } from "./services.ts";

export const DEFAULT_IMAGES = {
  rabbitmq: "rabbitmq:3.13-management",
  nats: "nats:2.10",
  s3: "versity/versitygw:v1.8.0",
} as const;

export function imageOf(service: keyof typeof DEFAULT_IMAGES, env: NodeJS.ProcessEnv = process.env): string {
  const name = { rabbitmq: "DOCFLOW_TEST_RABBITMQ_IMAGE", nats: "DOCFLOW_TEST_NATS_IMAGE", s3: "DOCFLOW_TEST_S3_IMAGE" }[service];
  return env[name] || DEFAULT_IMAGES[service];
}

export interface ContainerHandle {
  /** Image and container id, for the log. */
  readonly describe: string;
  stop(): Promise<void>;
}

/**
 * Joins the container to a user-defined network under an alias, for other containers (the system
 * test runs docflow's own images beside the services). The handle's `internal` addresses use it.
 */
export interface OnNetwork {
  network?: StartedNetwork | undefined;
  alias?: string | undefined;
}

function joinNetwork<C extends GenericContainer>(container: C, options: OnNetwork, fallbackAlias: string): C {
  if (!options.network) return container;
  return container.withNetwork(options.network).withNetworkAliases(options.alias ?? fallbackAlias);
}

function stopper(container: StartedTestContainer): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => (stopping ??= container.stop({ timeout: 3_000, remove: true, removeVolumes: true }).then(() => undefined));
}

const AMQP_PORT = 5672;
const MANAGEMENT_PORT = 15672;

export interface RabbitMqContainerHandle extends ContainerHandle {
  readonly url: string;
  readonly managementUrl?: string;
  /** The AMQP URL for containers on `options.network`. */
  readonly internalUrl?: string;
}

export async function startRabbitMqContainer(options: { management: boolean } & OnNetwork): Promise<RabbitMqContainerHandle> {
  const image = imageOf("rabbitmq");
  const password = randomBytes(12).toString("hex");
  // The module's defaults (guest/guest) are replaced: a broker reachable on a published port gets
  // a real password. Only the ports used are published (podman: unpublished exposed ports break
  // the port wait).
  const container: StartedRabbitMQContainer = await joinNetwork(new RabbitMQContainer(image), options, "rabbitmq")
    .withEnvironment({ RABBITMQ_DEFAULT_USER: "docflow", RABBITMQ_DEFAULT_PASS: password })
    .withExposedPorts(AMQP_PORT, ...(options.management ? [MANAGEMENT_PORT] : []))
    .withStartupTimeout(90_000)
    .start();
  const host = container.getHost();
  const creds = await ensureUser(container, password);
  return {
    describe: `${image} (${container.getId().slice(0, 12)})`,
    url: `amqp://${creds}@${host}:${container.getMappedPort(AMQP_PORT)}`,
    ...(options.management ? { managementUrl: `http://${host}:${container.getMappedPort(MANAGEMENT_PORT)}` } : {}),
    ...(options.network ? { internalUrl: `amqp://${creds}@${options.alias ?? "rabbitmq"}:${AMQP_PORT}` } : {}),
    stop: stopper(container),
  };
}

/**
 * The official image creates RABBITMQ_DEFAULT_USER itself; a broker built from Debian's package
 * does not read those variables and has only guest. Either way the tests get the docflow user:
 * added with rabbitmqctl when missing.
 */
async function ensureUser(container: StartedRabbitMQContainer, password: string): Promise<string> {
  const list = await container.exec(["rabbitmqctl", "-q", "list_users"]);
  if (list.exitCode !== 0) throw new Error(`rabbitmqctl list_users failed in the RabbitMQ container: ${list.output}`);
  if (!/^docflow\s/m.test(list.output)) {
    for (const cmd of [
      ["rabbitmqctl", "add_user", "docflow", password],
      ["rabbitmqctl", "set_user_tags", "docflow", "administrator"],
      ["rabbitmqctl", "set_permissions", "-p", "/", "docflow", ".*", ".*", ".*"],
    ]) {
      const res = await container.exec(cmd);
      if (res.exitCode !== 0) throw new Error(`${cmd.slice(0, 2).join(" ")} failed in the RabbitMQ container: ${res.output}`);
    }
  }
  return `docflow:${password}`;
}

const NATS_PORT = 4222;
const NATS_WS_PORT = 8080;
const NATS_CONFIG = "/etc/docflow/nats.conf";

export interface NatsContainerHandle extends ContainerHandle {
  readonly url: string;
  readonly wsUrl: string;
  /** The client URL for containers on `options.network`. */
  readonly internalUrl?: string;
}

/** `config`: extra top-level configuration, e.g. the operator-mode auth of @docflow/infra/nats-auth. */
export async function startNatsContainer(options: { config: string } & OnNetwork): Promise<NatsContainerHandle> {
  const image = imageOf("nats");
  const config = [
    `listen: "0.0.0.0:${NATS_PORT}"`,
    `server_name: "docflow-test-${randomBytes(3).toString("hex")}"`,
    `jetstream {\n  store_dir: "/tmp/jetstream"\n}`,
    `websocket {\n  listen: "0.0.0.0:${NATS_WS_PORT}"\n  no_tls: true\n}`,
    options.config,
    "",
  ].join("\n");
  // NatsContainer replaces the image's command with its arguments: the configuration file is one
  // of them. Its default --user/--pass do not apply in operator mode (accounts come from JWTs).
  const container: StartedNatsContainer = await joinNetwork(new NatsContainer(image), options, "nats")
    .withCopyContentToContainer([{ content: config, target: NATS_CONFIG, mode: 0o644 }])
    .withArg("-c", NATS_CONFIG)
    .withExposedPorts(NATS_PORT, NATS_WS_PORT)
    .withStartupTimeout(60_000)
    .start();
  const host = container.getHost();
  return {
    describe: `${image} (${container.getId().slice(0, 12)})`,
    url: `nats://${host}:${container.getMappedPort(NATS_PORT)}`,
    wsUrl: `ws://${host}:${container.getMappedPort(NATS_WS_PORT)}`,
    ...(options.network ? { internalUrl: `nats://${options.alias ?? "nats"}:${NATS_PORT}` } : {}),
    stop: stopper(container),
  };
}

const S3_PORT = 7070;

export interface S3ContainerHandle extends ContainerHandle {
  readonly endpoint: string;
  /** The endpoint for containers on `options.network`. */
  readonly internalEndpoint?: string;
  readonly accessKey: string;
  readonly secretKey: string;
}

export async function startS3Container(options: { buckets: readonly string[] } & OnNetwork): Promise<S3ContainerHandle> {
  const image = imageOf("s3");
  const accessKey = `docflow${randomBytes(6).toString("hex")}`;
  const secretKey = randomBytes(20).toString("hex");
  // versitygw's posix backend: buckets are directories of /data, object metadata in a sidecar
  // directory (no dependency on the container file system's xattr support). Both are tmpfs: the
  // mounts create the directories in any image, and nothing outlives the container.
  const container = await joinNetwork(new GenericContainer(image), options, "s3")
    .withEnvironment({ ROOT_ACCESS_KEY_ID: accessKey, ROOT_SECRET_ACCESS_KEY: secretKey, VGW_REGION: "us-east-1" })
    .withCommand(["--port", `:${S3_PORT}`, "--keep-alive", "posix", "--sidecar", "/sidecar", "/data"])
    .withTmpFs({ "/data": "rw,size=4g", "/sidecar": "rw,size=256m" })
    .withExposedPorts(S3_PORT)
    .withWaitStrategy(Wait.forListeningPorts())
    .withStartupTimeout(60_000)
    .start();
  const handle: S3ContainerHandle = {
    describe: `${image} (${container.getId().slice(0, 12)})`,
    endpoint: `http://${container.getHost()}:${container.getMappedPort(S3_PORT)}`,
    ...(options.network ? { internalEndpoint: `http://${options.alias ?? "s3"}:${S3_PORT}` } : {}),
    accessKey,
    secretKey,
    stop: stopper(container),
  };
  try {
    await createBuckets(handle, options.buckets);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}
