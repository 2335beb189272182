/**
 * `npm start`: the whole docflow stack on this machine. Starts RabbitMQ, NATS
 * (JetStream + WebSocket) and, for DOCFLOW_STORAGE=s3 without an endpoint, an
 * S3 server; then the gateway (serving the web app) and DOCFLOW_PROCESSORS
 * processors. Prints the URL (with a sign-in token) and stops everything on
 * Ctrl-C, SIGTERM or SIGHUP, sent to it alone or to its whole process group.
 *
 * Environment: DOCFLOW_PORT (8080), DOCFLOW_DEV_TOKENS (token=tenant,...; one
 * token for tenant `dev` is generated if unset), DOCFLOW_PROCESSORS (1),
 * DOCFLOW_DATA_DIR (.docflow), DOCFLOW_STORAGE (fs | s3, with the usual
 * AWS_* and DOCFLOW_S3_ENDPOINT / DOCFLOW_S3_BUCKET settings).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, statSync, readdirSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { generateNatsAuth, type NatsAuth } from "@docflow/infra/nats-auth";
import { launchService, realtimeEnv, serviceEnv, stopAll as stopServices, type ServiceName, type ServiceProcess } from "@docflow/tools/launch";
import { startNats, startRabbitMq, startS3, type RabbitMqHandle, type ServiceHandle } from "@docflow/tools/services";

const ROOT = resolve(import.meta.dirname, "..");
const env = process.env;
const port = Number(env.DOCFLOW_PORT ?? 8080);
const processors = Number(env.DOCFLOW_PROCESSORS ?? 1);
const dataDir = resolve(env.DOCFLOW_DATA_DIR ?? join(ROOT, ".docflow"));
const storage = (env.DOCFLOW_STORAGE ?? "fs") as "fs" | "s3";
if (!Number.isInteger(port) || port < 1 || port > 65535) fail("DOCFLOW_PORT must be a port number");
if (!Number.isInteger(processors) || processors < 1 || processors > 32) fail("DOCFLOW_PROCESSORS must be 1-32");
if (storage !== "fs" && storage !== "s3") fail("DOCFLOW_STORAGE must be 'fs' or 's3'");

function fail(message: string): never {
  console.error(`docflow: ${message}`);
  process.exit(2);
}

const started = Date.now();
const step = (what: string) => console.log(`docflow: ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

/** The newest modification time under a directory (sources of the web app). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && !entry.parentPath.includes("node_modules")) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

function buildWeb(): string | undefined {
  const web = join(ROOT, "services/web");
  if (!existsSync(join(web, "package.json"))) return undefined;
  const index = join(web, "dist/index.html");
  if (!existsSync(index) || statSync(index).mtimeMs < newest(join(web, "src"))) {
    step("building the web app");
    const built = spawnSync("npm", ["run", "build", "-w", "services/web"], { cwd: ROOT, stdio: "inherit" });
    if (built.status !== 0) fail("the web app did not build");
  }
  return join(web, "dist");
}

const services: ServiceHandle[] = [];
const children: ServiceProcess[] = [];
let stopping = false;

async function stopAll(code: number): Promise<void> {
  // Once: a group's signal often arrives twice (npm forwards the one it got to this process too),
  // and a second one must not cut the stop short. The stop is bounded (20 s per child, then the
  // services' own SIGTERM-then-SIGKILL).
  if (stopping) return;
  stopping = true;
  console.log("\ndocflow: stopping...");
  await stopServices(children, { graceMs: 20_000 });
  await Promise.all(services.map((s) => s.stop().catch(() => {})));
  console.log("docflow: stopped");
  process.exit(code);
}
// Ctrl-C, a SIGTERM to the whole process group (a supervisor, `kill -- -PGID`) and a closing
// terminal's SIGHUP all stop everything: the gateway and processors share this process group, but
// RabbitMQ, NATS and the S3 server run in groups of their own (tools/src/services.ts) and are
// stopped only here. Once `npm` or the terminal is gone, writing to the output may fail (EPIPE):
// that must not end this process before its services are stopped.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stopAll(0));
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});

/**
 * NATS auth material, generated once and kept in the data dir: JetStream data
 * belongs to the account, so the account must survive restarts.
 */
async function natsAuth(): Promise<{ auth: NatsAuth; credsFile: string }> {
  const file = join(dataDir, "nats-auth.json");
  const credsFile = join(dataDir, "nats-service.creds");
  let auth: NatsAuth;
  if (existsSync(file)) {
    auth = JSON.parse(await readFile(file, "utf8")) as NatsAuth;
  } else {
    auth = await generateNatsAuth();
    await writeFile(file, JSON.stringify(auth), { mode: 0o600 });
  }
  await writeFile(credsFile, auth.serviceCreds, { mode: 0o600 });
  return { auth, credsFile };
}

/**
 * RabbitMQ's node name and password, kept in the data dir after its first start: the next start
 * boots on the broker's data (its queues and the work messages in them), as NATS keeps JetStream.
 */
async function startBroker(): Promise<RabbitMqHandle> {
  const file = join(dataDir, "rabbitmq-identity.json");
  const brokerDir = join(dataDir, "rabbitmq");
  const identity = existsSync(file) && existsSync(brokerDir) ? (JSON.parse(await readFile(file, "utf8")) as { nodeName: string; password: string }) : undefined;
  if (identity) {
    try {
      return await startRabbitMq({ dataDir: brokerDir, identity });
    } catch (err) {
      console.error(`docflow: RabbitMQ did not start on its earlier data (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); starting it empty`);
    }
  }
  const broker = await startRabbitMq({ dataDir: brokerDir });
  await writeFile(file, JSON.stringify({ nodeName: broker.nodeName, password: broker.password }), { mode: 0o600 });
  return broker;
}

async function main(): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const { auth, credsFile } = await natsAuth();
  const webDir = buildWeb();
  step("starting RabbitMQ, NATS" + (storage === "s3" && !env.DOCFLOW_S3_ENDPOINT ? " and the S3 server" : ""));
  // Each is stopped with the stack from the moment it runs, even if a signal comes mid-start.
  const started = <T extends ServiceHandle>(service: T): T => {
    services.push(service);
    if (stopping) void service.stop().catch(() => {});
    return service;
  };
  const [rabbitmq, nats, s3] = await Promise.all([
    startBroker().then(started),
    startNats({ dataDir: join(dataDir, "nats"), config: auth.serverConfig, keepData: true }).then(started),
    storage === "s3" && !env.DOCFLOW_S3_ENDPOINT ? startS3({ dataDir: join(dataDir, "s3"), buckets: [env.DOCFLOW_S3_BUCKET ?? "docflow"], keepData: true }).then(started) : undefined,
  ]);
  if (stopping) return;

  let tokens = env.DOCFLOW_DEV_TOKENS;
  let printedToken: string | undefined;
  if (!tokens) {
    printedToken = randomBytes(24).toString("base64url");
    tokens = `${printedToken}=dev`;
  } else {
    printedToken = tokens.split(",")[0]?.split("=")[0];
  }

  const common = serviceEnv(
    {
      amqpUrl: rabbitmq.url,
      natsUrl: nats.url,
      natsCreds: credsFile,
      ...(s3 ? { s3: { endpoint: s3.endpoint, accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey, region: s3.region } } : {}),
    },
    // The user's environment reaches the services (their DOCFLOW_* settings, AWS_* for a real S3).
    { storage, dataDir, inherit: "all", ...(s3 ? { bucket: env.DOCFLOW_S3_BUCKET ?? "docflow" } : {}) },
  );
  const launch = (service: ServiceName, extra: Record<string, string>) => {
    const child = launchService(service, {
      env: { ...common, ...extra },
      output: "inherit",
      onUnexpectedExit: (info) => {
        console.error(`docflow: the ${service} exited (${info}); stopping the stack`);
        void stopAll(1);
      },
    });
    children.push(child);
  };
  launch("gateway", {
    DOCFLOW_HOST: env.DOCFLOW_HOST ?? "127.0.0.1",
    DOCFLOW_PORT: String(port),
    DOCFLOW_DEV_TOKENS: tokens,
    // Browsers on this machine reach NATS's WebSocket listener directly.
    ...realtimeEnv({ signingSeed: auth.signingSeed, account: auth.account, wsUrl: nats.wsUrl.replace("127.0.0.1", "localhost") }),
    ...(webDir ? { DOCFLOW_WEB_DIR: webDir } : {}),
  });
  for (let i = 0; i < processors; i++) launch("processor", { DOCFLOW_PROCESSOR_HOST: "127.0.0.1", DOCFLOW_PROCESSOR_PORT: "0" });

  const base = `http://localhost:${port}`;
  for (let i = 0; ; i++) {
    if (
      await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 300) {
      console.error("docflow: the gateway did not become ready in 60 s");
      return void stopAll(1);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  step("ready");
  console.log(`
  docflow is running.

    Web app:  ${base}/#token=${printedToken}
    API:      ${base}/v1   (OpenAPI: ${base}/v1/openapi.json)
    Token:    ${printedToken}   (tenant ${tokens.split(",")[0]?.split("=")[1]})
    Storage:  ${storage === "fs" ? join(dataDir, "objects") : (s3?.endpoint ?? env.DOCFLOW_S3_ENDPOINT)}
    RabbitMQ: ${rabbitmq.url.replace(/:[^:@/]*@/, ":***@")}
    NATS:     ${nats.url} (WebSocket ${nats.wsUrl})

  Try:  curl -H "Authorization: Bearer ${printedToken}" --data-binary @file.pdf "${base}/v1/documents?filename=file.pdf"

  Ctrl-C (or SIGTERM, SIGHUP) stops everything.
`);
}

main().catch((err: unknown) => {
  console.error("docflow: failed to start:", err instanceof Error ? err.message : err);
  void stopAll(1);
});
