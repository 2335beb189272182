/**
 * The evaluation dependencies as rendered (ci/evaluation-values.yaml) run on real servers and
 * serve the services' own clients: the rendered nats.conf (with the operator-mode auth that
 * charts/docflow/scripts/nats-auth.ts puts in the Secret), RabbitMQ's conf.d files and plugins, and
 * versitygw's arguments start nats-server, RabbitMQ and versitygw on loopback ports; the chart's
 * probes answer; and @docflow/infra, configured from the rendered ConfigMap and Secret exactly as
 * the pods' env is, stores objects, opens its JetStream bucket and declares its quorum queues.
 *
 * Local binaries stand in for the images (scripts/bootstrap.sh installs them: Debian's
 * nats-server and rabbitmq-server, versitygw v1.8.0): this checks the configuration, not the images.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect as amqpConnect } from "amqplib";
import { connect as natsConnect } from "@nats-io/transport-node";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { AmqpConnection, JobStore, S3ObjectStore, WorkPublisher, connectNats, openObjectStore, parseEnv, sharedEnv, workQueue } from "@docflow/infra";
import { createLogger } from "@docflow/telemetry";
import { CHART, find, render, type K8sObject } from "./support.ts";
import { freePort } from "../support/stack.ts";
import { eventually } from "../support/poll.ts";

const CACHE_BIN = join(process.env["DOCFLOW_CACHE_DIR"] ?? join(homedir(), ".cache", "docflow"), "bin");
const BINARIES = {
  nats: "/usr/sbin/nats-server",
  rabbitmq: "/usr/lib/rabbitmq/bin/rabbitmq-server",
  rabbitmqctl: "/usr/lib/rabbitmq/bin/rabbitmqctl",
  diagnostics: "/usr/lib/rabbitmq/bin/rabbitmq-diagnostics",
  versitygw: join(CACHE_BIN, "versitygw"),
};
const log = createLogger("evaluation-servers-test");

function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, logFile?: string): Promise<T> {
  return eventually(what, probe, { timeoutMs, context: () => (logFile && existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").slice(-25).join("\n") : "") });
}

const tcpOpen = (port: number) =>
  new Promise<true | undefined>((done) => {
    const socket = tcpConnect(port, "127.0.0.1", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(undefined));
  });

/** An httpGet probe of the chart's container, as the kubelet runs it (2xx/3xx passes). */
async function httpProbe(container: { [probe: string]: { httpGet?: { path: string; port: string } } }, probe: string, ports: Map<string, number>): Promise<number> {
  const get = container[probe]?.httpGet;
  if (!get) throw new Error(`${probe} is not an httpGet probe`);
  const port = ports.get(get.port);
  if (port === undefined) throw new Error(`no local port for ${get.port}`);
  return (await fetch(`http://127.0.0.1:${port}${get.path}`)).status;
}

function replaceLine(text: string, from: RegExp, to: string): string {
  if (!from.test(text)) throw new Error(`${from} not found in:\n${text}`);
  return text.replace(from, to);
}

describe("the evaluation dependencies' rendered configuration, on real servers", () => {
  const dir = mkdtempSync(join(tmpdir(), "docflow-evaluation-servers-"));
  const processes: ChildProcess[] = [];
  const logs = { nats: join(dir, "nats.log"), rabbitmq: join(dir, "rabbitmq.log"), s3: join(dir, "s3.log") };
  let objects: K8sObject[];
  let secret: Record<string, string>;
  let env: NodeJS.ProcessEnv;
  let rabbitEnv: NodeJS.ProcessEnv;
  const ports = { nats: new Map<string, number>(), rabbitmq: new Map<string, number>(), s3: new Map<string, number>() };

  const container = (dep: string) => find(objects, "StatefulSet", `docflow-${dep}`).spec.template.spec.containers[0];
  function start(name: keyof typeof logs, command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): void {
    writeFileSync(logs[name], "");
    const child = spawn("sh", ["-c", `exec "$0" "$@" >>"${logs[name]}" 2>&1`, command, ...args], { stdio: "ignore", env: { ...process.env, ...extraEnv } });
    processes.push(child);
    const reap = () => child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.removeListener("exit", reap));
  }

  beforeAll(async () => {
    const missing = Object.values(BINARIES).filter((path) => !existsSync(path));
    if (missing.length > 0) throw new Error(`missing ${missing.join(", ")}: run \`bash scripts/bootstrap.sh\` (Debian's nats-server and rabbitmq-server, versitygw)`);

    // NATS auth material as an operator would make it, and the chart rendered for it.
    const auth = spawnSync(process.execPath, [join(CHART, "scripts", "nats-auth.ts"), "--out", join(dir, "nats-auth")], { encoding: "utf8" });
    if (auth.status !== 0) throw new Error(`nats-auth.ts failed: ${auth.stderr}`);
    const natsSecret = (parse(readFileSync(join(dir, "nats-auth", "nats-secret.yaml"), "utf8")) as { stringData: Record<string, string> }).stringData;
    objects = render({ valuesFiles: [join(CHART, "ci", "evaluation-values.yaml")] });
    secret = find(objects, "Secret", "docflow-evaluation").stringData as Record<string, string>;
    for (const [dep, names] of Object.entries({ nats: ["client", "websocket", "monitor"], rabbitmq: ["amqp", "management", "prometheus", "dist"], s3: ["s3"] }) as [keyof typeof ports, string[]][]) {
      for (const name of names) ports[dep].set(name, await freePort());
    }
    const port = (dep: keyof typeof ports, name: string) => String(ports[dep].get(name));

    // NATS: the rendered nats.conf, its ports and store moved here, auth.conf from the Secret's key.
    mkdirSync(join(dir, "nats"));
    let natsConf = find(objects, "ConfigMap", "docflow-nats").data["nats.conf"] as string;
    natsConf = replaceLine(natsConf, /^port: 4222$/m, `port: ${port("nats", "client")}`);
    natsConf = replaceLine(natsConf, /^http_port: 8222$/m, `http_port: ${port("nats", "monitor")}`);
    natsConf = replaceLine(natsConf, /^ {2}port: 8080$/m, `  port: ${port("nats", "websocket")}`);
    natsConf = replaceLine(natsConf, /^ {2}store_dir: \/data$/m, `  store_dir: ${join(dir, "nats", "data")}`);
    writeFileSync(join(dir, "nats", "nats.conf"), natsConf);
    writeFileSync(join(dir, "nats", "auth.conf"), natsSecret["nats-server-auth.conf"] ?? "");
    writeFileSync(join(dir, "nats.creds"), natsSecret["nats.creds"] ?? "", { mode: 0o600 });
    start("nats", BINARIES.nats, ["-c", join(dir, "nats", "nats.conf")]);

    // RabbitMQ: conf.d from the ConfigMap and the Secret, the container's env with paths moved here.
    const rabbit = join(dir, "rabbitmq");
    mkdirSync(join(rabbit, "conf.d"), { recursive: true });
    const rabbitConfig = find(objects, "ConfigMap", "docflow-rabbitmq").data as Record<string, string>;
    let conf = rabbitConfig["10-docflow.conf"] ?? "";
    conf = replaceLine(conf, /^listeners\.tcp\.default = 5672$/m, `listeners.tcp.default = ${port("rabbitmq", "amqp")}`);
    conf = replaceLine(conf, /^management\.tcp\.port = 15672$/m, `management.tcp.port = ${port("rabbitmq", "management")}`);
    conf = replaceLine(conf, /^prometheus\.tcp\.port = 15692$/m, `prometheus.tcp.port = ${port("rabbitmq", "prometheus")}`);
    writeFileSync(join(rabbit, "conf.d", "10-docflow.conf"), conf);
    writeFileSync(join(rabbit, "conf.d", "20-credentials.conf"), secret["rabbitmq-credentials.conf"] ?? "");
    writeFileSync(join(rabbit, "enabled_plugins"), rabbitConfig["enabled_plugins"] ?? "");
    const moved: Record<string, string> = {
      RABBITMQ_CONFIG_FILES: join(rabbit, "conf.d"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(rabbit, "enabled_plugins"),
      RABBITMQ_MNESIA_BASE: join(rabbit, "mnesia"),
      HOME: rabbit,
    };
    rabbitEnv = { RABBITMQ_LOG_BASE: join(rabbit, "log"), RABBITMQ_DIST_PORT: port("rabbitmq", "dist") };
    for (const e of container("rabbitmq").env as { name: string; value: string }[]) rabbitEnv[e.name] = moved[e.name] ?? e.value;
    // A node name of its own (the rendered rabbit@localhost may be taken on a shared machine).
    expect(rabbitEnv["RABBITMQ_NODENAME"]).toBe("rabbit@localhost");
    rabbitEnv["RABBITMQ_NODENAME"] = `docflow-evaluation-${process.pid}@localhost`;
    start("rabbitmq", BINARIES.rabbitmq, [], rabbitEnv);

    // versitygw: the container's args with the address and data directory moved here, keys from the Secret.
    mkdirSync(join(dir, "s3"));
    const args = (container("s3").args as string[]).map((a) => (a === ":7070" ? `127.0.0.1:${port("s3", "s3")}` : a === "/data" ? join(dir, "s3") : a));
    start("s3", BINARIES.versitygw, args, { ROOT_ACCESS_KEY_ID: secret["s3-access-key-id"], ROOT_SECRET_ACCESS_KEY: secret["s3-secret-access-key"] });

    // The services' env: the ConfigMap and the Secret's keys, in-cluster addresses mapped to loopback.
    const toLocal = (value: string) =>
      value
        .replace("docflow-rabbitmq.docflow.svc:5672", `127.0.0.1:${port("rabbitmq", "amqp")}`)
        .replace("docflow-nats:4222", `127.0.0.1:${port("nats", "client")}`)
        .replace("docflow-s3:7070", `127.0.0.1:${port("s3", "s3")}`);
    env = Object.fromEntries(Object.entries(find(objects, "ConfigMap", "docflow-config").data as Record<string, string>).map(([k, v]) => [k, toLocal(v)]));
    Object.assign(env, {
      DOCFLOW_AMQP_URL: toLocal(secret["amqp-url"] ?? ""),
      AWS_ACCESS_KEY_ID: secret["s3-access-key-id"],
      AWS_SECRET_ACCESS_KEY: secret["s3-secret-access-key"],
      DOCFLOW_NATS_CREDS: join(dir, "nats.creds"),
    });

    await until("NATS did not start", async () => ((await httpProbe(container("nats"), "startupProbe", ports.nats)) === 200 ? true : undefined), 30_000, logs.nats);
    await until("versitygw did not start", async () => ((await httpProbe(container("s3"), "startupProbe", ports.s3)) === 200 ? true : undefined), 30_000, logs.s3);
    await until("RabbitMQ did not open its AMQP port", () => tcpOpen(ports.rabbitmq.get("amqp") ?? 0), 120_000, logs.rabbitmq);
  }, 180_000);

  afterAll(async () => {
    if (rabbitEnv) spawnSync(BINARIES.rabbitmqctl, ["-n", rabbitEnv["RABBITMQ_NODENAME"] ?? "", "stop"], { env: { ...process.env, ...rabbitEnv }, timeout: 30_000 });
    for (const child of processes) {
      if (child.exitCode !== null) continue;
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
    }
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("gives the services an environment their own configuration accepts", () => {
    const config = parseEnv(sharedEnv, env);
    expect(config.DOCFLOW_STORAGE).toBe("s3");
    expect(config.DOCFLOW_S3_CREATE_BUCKET).toBe(true);
  });

  it("NATS: the chart's probes pass; the services' credentials open their JetStream bucket; no credentials, no connection", async () => {
    for (const probe of ["livenessProbe", "readinessProbe"]) expect(await httpProbe(container("nats"), probe, ports.nats), probe).toBe(200);
    const config = parseEnv(sharedEnv, env);
    const nc = await connectNats({ url: config.DOCFLOW_NATS_URL, name: "evaluation-test", credsFile: config.DOCFLOW_NATS_CREDS }, log);
    try {
      await JobStore.open(nc, config.DOCFLOW_JOBS_BUCKET);
    } finally {
      await nc.close();
    }
    await expect(natsConnect({ servers: config.DOCFLOW_NATS_URL, reconnect: false })).rejects.toThrow(/authoriz|auth/i);
  });

  it("S3: the chart's probes pass; the services' object store creates the bucket and reads back what it wrote; a wrong key is refused", async () => {
    for (const probe of ["livenessProbe", "readinessProbe"]) expect(await httpProbe(container("s3"), probe, ports.s3), probe).toBe(200);
    const config = parseEnv(sharedEnv, env);
    const store = await openObjectStore(config);
    const bytes = Buffer.from("%PDF-1.7 evaluation\n");
    await store.put("tenants/t/jobs/j/source", bytes);
    const got = await store.get("tenants/t/jobs/j/source");
    expect(got).not.toBeNull();
    const chunks: Buffer[] = [];
    for await (const chunk of got?.body ?? []) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    const wrong = new S3ObjectStore({
      bucket: config.DOCFLOW_S3_BUCKET,
      endpoint: config.DOCFLOW_S3_ENDPOINT,
      region: config.AWS_REGION,
      credentials: { accessKeyId: config.AWS_ACCESS_KEY_ID ?? "", secretAccessKey: "not-the-secret" },
    });
    await expect(wrong.check()).rejects.toThrow();
  });

  it("RabbitMQ: the user from the Secret, quorum queues with confirms, the plugins, consumer_timeout and the liveness command", async () => {
    const config = parseEnv(sharedEnv, env);
    const publisher = new WorkPublisher(config.DOCFLOW_AMQP_NAMESPACE);
    // The broker may take a moment after its port opens before it authenticates.
    const conn = await until(
      "docflow could not connect to RabbitMQ",
      async () =>
        AmqpConnection.open(
          { url: config.DOCFLOW_AMQP_URL, connectionName: "evaluation-test", namespace: config.DOCFLOW_AMQP_NAMESPACE, deliveryLimit: config.DOCFLOW_DELIVERY_LIMIT, setup: publisher.setup },
          log,
        ),
      60_000,
      logs.rabbitmq,
    );
    const jobId = uuidv7();
    try {
      await publisher.publish({ v: 1, stage: "inspect", jobId, tenant: "acme" });
    } finally {
      await conn.close();
    }
    const raw = await amqpConnect(config.DOCFLOW_AMQP_URL);
    try {
      const ch = await raw.createChannel();
      const msg = await ch.get(workQueue(config.DOCFLOW_AMQP_NAMESPACE, "inspect"), { noAck: true });
      expect(msg && JSON.parse(msg.content.toString()).jobId).toBe(jobId);
    } finally {
      await raw.close();
    }
    // Management API (plugin on, the Secret's user is an administrator): the queue is a quorum queue.
    const basic = `Basic ${Buffer.from(`${secret["rabbitmq-username"]}:${secret["rabbitmq-password"]}`).toString("base64")}`;
    const queue = (await (
      await fetch(`http://127.0.0.1:${ports.rabbitmq.get("management")}/api/queues/%2F/${encodeURIComponent(workQueue(config.DOCFLOW_AMQP_NAMESPACE, "inspect"))}`, {
        headers: { authorization: basic },
      })
    ).json()) as { type: string; arguments: Record<string, unknown> };
    expect(queue.type).toBe("quorum");
    // The Prometheus plugin, per queue, as the ServiceMonitor scrapes it for the queue alerts.
    // (Queue samples appear after the statistics interval, collect_statistics_interval.)
    const readyMetric = new RegExp(`rabbitmq_queue_messages_ready\\{[^}]*queue="${workQueue(config.DOCFLOW_AMQP_NAMESPACE, "inspect").replace(/\./g, "\\.")}"`);
    await until(
      "no per-queue metric",
      async () => (readyMetric.test(await (await fetch(`http://127.0.0.1:${ports.rabbitmq.get("prometheus")}/metrics/per-object`)).text()) ? true : undefined),
      30_000,
    );
    const timeout = spawnSync(BINARIES.rabbitmqctl, ["-n", rabbitEnv["RABBITMQ_NODENAME"] ?? "", "eval", "application:get_env(rabbit, consumer_timeout)."], {
      env: { ...process.env, ...rabbitEnv },
      encoding: "utf8",
    });
    expect(timeout.stdout.trim()).toBe("{ok,1800000}");
    // The liveness probe's command, with the container's env.
    const [command, ...args] = container("rabbitmq").livenessProbe.exec.command as string[];
    expect(command).toBe("rabbitmq-diagnostics");
    const ping = spawnSync(BINARIES.diagnostics, args, { env: { ...process.env, ...rabbitEnv }, encoding: "utf8" });
    expect(ping.status, ping.stderr).toBe(0);
  }, 120_000);
});
