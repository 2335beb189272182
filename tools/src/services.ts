/**
 * Real dependency services (RabbitMQ, NATS with JetStream + WebSocket, an S3 server) started as
 * child processes on free loopback ports, each in its own fresh data directory.
 *
 * Used by scripts/test.ts (test runs) and scripts/stack.ts (local stack). Node 24 type stripping:
 * no enums, no parameter properties, no namespaces, `.ts` import extensions.
 *
 * Every child runs in its own process group (spawned detached), writes its output to log files in
 * its data dir, and is stopped by an idempotent `stop()` that ends the whole group. As a last
 * resort, groups still alive when this Node process exits are SIGKILLed (see `liveGroups`).
 *
 * Binaries (override with env):
 *   DOCFLOW_RABBITMQ_BIN_DIR  default /usr/lib/rabbitmq/bin (rabbitmq-server, rabbitmqctl;
 *                             the /usr/sbin wrappers ignore SIGTERM and switch users)
 *   DOCFLOW_NATS_SERVER_BIN   default /usr/sbin/nats-server
 *   DOCFLOW_VERSITYGW_BIN     default $HOME/.cache/docflow/bin/versitygw
 * DOCFLOW_KEEP_SERVICE_DIRS=1 keeps temporary data dirs (logs) after stop().
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, writeSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { connect as netConnect, createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findFreePorts } from "./ports.ts";

// ---------------------------------------------------------------------------------------------
// Public types

export interface ServiceHandle {
  /** Data directory of this service (logs, config, state). */
  readonly dataDir: string;
  /** Main log file (child stdout/stderr). */
  readonly logFile: string;
  /** PID of the child (also its process-group id). */
  readonly pid: number;
  /** Terminates the service and all its children. Idempotent; safe to call concurrently. */
  stop(): Promise<void>;
}

export interface RabbitMqOptions {
  /** Fresh data dir to use (created if missing). Default: a temp dir removed on stop(). */
  dataDir?: string;
  /** AMQP port; default (or 0): a free port. */
  port?: number;
  /** Enables rabbitmq_management + rabbitmq_prometheus on this port (0 = a free port). Omit to disable. */
  managementPort?: number;
  /** Readiness timeout in ms (default 60 000). */
  timeoutMs?: number;
  /**
   * The node name and password of an earlier broker on the same `dataDir` and `port`: it boots on
   * that broker's data (its durable queues and messages), as a restarted pod on its volume does.
   */
  identity?: { nodeName: string; password: string };
}

export interface RabbitMqHandle extends ServiceHandle {
  /** amqp://docflow:<password>@127.0.0.1:<port> */
  readonly url: string;
  /** http://127.0.0.1:<managementPort> (same credentials as `url`), when management is enabled. */
  readonly managementUrl?: string;
  /** http://127.0.0.1:<port>/metrics, when management is enabled. */
  readonly prometheusUrl?: string;
  readonly username: string;
  readonly password: string;
  readonly port: number;
  /** Erlang node name, e.g. docflow-1234-ab12cd@localhost. */
  readonly nodeName: string;
  /** SIGKILL of the broker's whole process group (a crash: no clean shutdown); keeps its data dir. */
  kill(): Promise<void>;
}

export interface NatsOptions {
  dataDir?: string;
  /** Keep what an earlier run left in `dataDir` (JetStream data) instead of starting empty. */
  keepData?: boolean;
  /** Client port; default (or 0): a free port. */
  port?: number;
  /** WebSocket port; default (or 0): a free port. */
  wsPort?: number;
  /**
   * Extra top-level configuration appended to the generated nats.conf, e.g. the operator /
   * resolver lines of decentralised auth (@docflow/infra/nats-auth `generateNatsAuth().serverConfig`).
   */
  config?: string;
  /** Readiness timeout in ms (default 30 000). */
  timeoutMs?: number;
}

export interface NatsHandle extends ServiceHandle {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  /** ws://127.0.0.1:<wsPort> */
  readonly wsUrl: string;
  readonly port: number;
  readonly wsPort: number;
}

export interface S3Options {
  dataDir?: string;
  /** Keep what an earlier run left in `dataDir` (stored objects) instead of starting empty. */
  keepData?: boolean;
  /** HTTP port; default (or 0): a free port. */
  port?: number;
  /** Root access key; default: random. */
  accessKey?: string;
  /** Root secret key; default: random. */
  secretKey?: string;
  /** Buckets created (through the S3 API) before the handle is returned. */
  buckets?: string[];
  /** Readiness timeout in ms (default 30 000). */
  timeoutMs?: number;
}

export interface S3Handle extends ServiceHandle {
  /** http://127.0.0.1:<port> (use path-style addressing: forcePathStyle: true) */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: "us-east-1";
  readonly port: number;
  readonly buckets: readonly string[];
  /** "xattr" (object metadata in extended attributes) or "sidecar" (filesystem without xattrs). */
  readonly metadata: "xattr" | "sidecar";
}

export interface StartAllOptions {
  /** Parent dir; services get <baseDir>/rabbitmq, <baseDir>/nats, <baseDir>/s3. Default: a temp dir. */
  baseDir?: string;
  rabbitmq?: Omit<RabbitMqOptions, "dataDir">;
  nats?: Omit<NatsOptions, "dataDir">;
  s3?: Omit<S3Options, "dataDir">;
}

export interface AllServices {
  readonly baseDir: string;
  readonly rabbitmq: RabbitMqHandle;
  readonly nats: NatsHandle;
  readonly s3: S3Handle;
  /** Stops the three in parallel. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Process groups: bookkeeping, termination, last-resort cleanup on exit

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL whatever was not stopped properly.
  process.on("exit", () => {
    for (const pgid of liveGroups) signalGroup(pgid, "SIGKILL");
  });
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  // Never signal -1/0/1...: process.kill(-(-1)) would hit PID 1. No pid means never spawned.
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: no process left in the group
  }
}

async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (signalGroup(pgid, 0)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** SIGTERM the group, wait, then SIGKILL it, and wait until no member is left. */
async function killGroup(pgid: number, graceMs = 5_000): Promise<void> {
  if (signalGroup(pgid, "SIGTERM") && !(await waitGroupGone(pgid, graceMs))) {
    signalGroup(pgid, "SIGKILL");
    await waitGroupGone(pgid, 5_000);
  }
  liveGroups.delete(pgid);
}

interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code/signal once the leader has exited. */
  exited: Promise<string>;
  hasExited(): boolean;
}

function spawnLogged(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }): Spawned {
  const fd = openSync(opts.logFile, "a");
  writeSync(fd, `\n==== ${new Date().toISOString()} ${cmd} ${args.join(" ")}\n`);
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  let done = false;
  const exited = new Promise<string>((resolveExit) => {
    child.once("error", (err) => {
      done = true;
      resolveExit(`failed to spawn: ${err.message}`);
    });
    child.once("exit", (code, signal) => {
      done = true;
      resolveExit(signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) {
    liveGroups.add(pid);
    installExitHook();
  }
  return { child, pid, exited, hasExited: () => done };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const MARKER = ".docflow-service-dir";

/**
 * Prepares a fresh data dir. A given dir is created if missing; if it exists it must be empty or
 * have been prepared by this module before (marker file), in which case its contents are wiped.
 * Returns the dir and whether it is a temp dir owned by the handle (removed on stop()).
 */
async function prepareDataDir(dataDir: string | undefined, name: string, keepData = false): Promise<{ dir: string; temporary: boolean }> {
  if (dataDir === undefined) {
    const dir = await mkdtemp(join(tmpdir(), `docflow-${name}-`));
    await writeFile(join(dir, MARKER), `${name}\n`);
    return { dir, temporary: true };
  }
  const dir = resolve(dataDir);
  await mkdir(dir, { recursive: true });
  const entries = await readdir(dir);
  if (entries.length > 0) {
    if (!entries.includes(MARKER)) {
      throw new Error(`${name}: data dir ${dir} is not empty and was not created by tools/src/services.ts; refusing to wipe it`);
    }
    if (!keepData) await Promise.all(entries.map((e) => rm(join(dir, e), { recursive: true, force: true })));
  }
  await writeFile(join(dir, MARKER), `${name}\n`);
  return { dir, temporary: false };
}

async function removeTempDir(dir: string, temporary: boolean): Promise<void> {
  if (temporary && process.env.DOCFLOW_KEEP_SERVICE_DIRS !== "1") {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Free TCP ports on 127.0.0.1, found by binding port 0 (all held open together, so distinct). */
async function assertPortFree(port: number): Promise<void> {
  const server = createServer();
  try {
    await new Promise<void>((res, rej) => {
      server.once("error", rej);
      server.listen(port, "127.0.0.1", () => res());
    });
  } catch (err) {
    throw new Error(`port 127.0.0.1:${port} is not available: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    await new Promise<void>((res) => server.close(() => res()));
  }
}

/**
 * Resolves `wanted` ports: 0/undefined become free ports; explicit ones are checked first (a
 * server that binds with SO_REUSEPORT, like versitygw, would otherwise share a taken port).
 */
async function resolvePorts(wanted: (number | undefined)[]): Promise<number[]> {
  for (const p of wanted) if (p) await assertPortFree(p);
  const free = await findFreePorts(wanted.filter((p) => !p).length);
  return wanted.map((p) => (p ? p : (free.shift() as number)));
}

export async function tailFile(file: string, lines = 40): Promise<string> {
  try {
    const fh = await open(file, "r");
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return buf.toString("utf8").split("\n").slice(-lines).join("\n");
    } finally {
      await fh.close();
    }
  } catch {
    return `(no log at ${file})`;
  }
}

async function logTails(files: string[], lines = 30): Promise<string> {
  const parts: string[] = [];
  for (const f of files) parts.push(`--- last lines of ${f} ---\n${await tailFile(f, lines)}`);
  return parts.join("\n");
}

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/** Env for children: the caller's, without variables that would redirect the services. */
function childEnv(extra: Record<string, string>, dropPrefixes: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !dropPrefixes.some((p) => k.startsWith(p))) env[k] = v;
  }
  return { ...env, ...extra };
}

class StartupError extends Error {
  /** The child exited before it became ready (e.g. a port taken in the meantime): worth a retry. */
  readonly exitedEarly: boolean;
  constructor(message: string, exitedEarly: boolean) {
    super(message);
    this.name = "StartupError";
    this.exitedEarly = exitedEarly;
  }
}

/**
 * Polls `probe` until it resolves true, the child exits, or the timeout passes. On failure the
 * group is killed and the error carries the last lines of the logs.
 */
async function waitReady(name: string, proc: Spawned, probe: () => Promise<boolean>, opts: { timeoutMs: number; intervalMs: number; logs: string[] }): Promise<void> {
  const started = Date.now();
  let lastError = "";
  while (true) {
    if (proc.hasExited()) {
      const how = await proc.exited;
      await killGroup(proc.pid, 1_000);
      throw new StartupError(`${name} ${how} before it was ready\n${await logTails(opts.logs)}`, true);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() - started > opts.timeoutMs) {
      await killGroup(proc.pid, 2_000);
      throw new StartupError(`${name} was not ready after ${opts.timeoutMs} ms${lastError ? ` (last probe error: ${lastError})` : ""}\n${await logTails(opts.logs)}`, false);
    }
    await Promise.race([sleep(opts.intervalMs, undefined, { ref: false }), proc.exited]);
  }
}

/**
 * Retries a start whose child died early because a port was taken between our probe and its bind
 * (explicitly requested ports are checked before, so this only concerns the ones chosen here).
 */
async function withRetry<T>(attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!(n < 3 && err instanceof StartupError && err.exitedEarly && /address.{0,20}in use|eaddrinuse/i.test(err.message))) throw err;
    }
  }
}

function tcpProbe(port: number, readLine: boolean, timeoutMs = 2_000): Promise<string> {
  return new Promise((res, rej) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      rej(new Error(`timeout connecting to 127.0.0.1:${port}`));
    }, timeoutMs);
    const finish = (err: Error | null, value = ""): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) rej(err);
      else res(value);
    };
    socket.once("error", (err) => finish(err));
    socket.once("connect", () => {
      if (!readLine) finish(null);
    });
    socket.on("data", (chunk: Buffer) => {
      data += chunk.toString("utf8");
      const nl = data.indexOf("\r\n");
      if (nl >= 0) finish(null, data.slice(0, nl));
    });
    socket.once("end", () => finish(new Error("connection closed before a line was read")));
  });
}

function httpProbe(port: number, timeoutMs = 2_000): Promise<number> {
  return new Promise((res, rej) => {
    const req = request({ host: "127.0.0.1", port, path: "/", method: "GET", timeout: timeoutMs, agent: false, headers: { connection: "close" } }, (resp) => {
      resp.resume();
      res(resp.statusCode ?? 0);
    });
    req.once("timeout", () => req.destroy(new Error("http timeout")));
    req.once("error", rej);
    req.end();
  });
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<{ ok: boolean; output: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { env: opts.env, cwd: opts.cwd, timeout: opts.timeoutMs, killSignal: "SIGKILL", maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ ok: !err, output: `${stdout}${stderr}${err ? `\n${err.message}` : ""}` });
    });
  });
}

function makeStopper(impl: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => (stopping ??= impl());
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

const EPMD_ENV = { ERL_EPMD_ADDRESS: "127.0.0.1" };

/**
 * Starts epmd ourselves (detached, stdio to /dev/null) before the broker, so the epmd the broker
 * would otherwise start does not live in the broker's process group (our group kill would end an
 * epmd other brokers use) nor hold the broker's log or a caller's stdout pipe open. A no-op when
 * an epmd is already running. epmd is left running on stop: other nodes may use it.
 */
async function ensureEpmd(env: NodeJS.ProcessEnv): Promise<void> {
  const status = await run("epmd", ["-names"], { env, timeoutMs: 5_000 });
  if (status.ok) return;
  await new Promise<void>((res) => {
    const child = spawn("epmd", ["-daemon"], { env, stdio: "ignore", detached: true });
    child.once("error", () => res());
    child.once("exit", () => res());
  });
  for (let i = 0; i < 50; i++) {
    if ((await run("epmd", ["-names"], { env, timeoutMs: 5_000 })).ok) return;
    await sleep(100);
  }
}

export async function startRabbitMq(options: RabbitMqOptions = {}): Promise<RabbitMqHandle> {
  const binDir = process.env.DOCFLOW_RABBITMQ_BIN_DIR ?? "/usr/lib/rabbitmq/bin";
  // A restart (identity given) boots on the data that is there; a new broker starts empty.
  const { dir, temporary } = await prepareDataDir(options.dataDir, "rabbitmq", options.identity !== undefined);
  const management = options.managementPort !== undefined;
  try {
    return await withRetry(async () => {
      const [port, distPort, mgmtPort, promPort] = await resolvePorts([options.port, undefined, options.managementPort, undefined]);
      return await startRabbitMqOnce({
        binDir,
        dir,
        temporary,
        port: port as number,
        distPort: distPort as number,
        managementPort: management ? (mgmtPort as number) : undefined,
        prometheusPort: promPort as number,
        timeoutMs: options.timeoutMs ?? 60_000,
        identity: options.identity,
      });
    });
  } catch (err) {
    await removeTempDir(dir, temporary);
    throw err;
  }
}

async function startRabbitMqOnce(o: {
  binDir: string;
  dir: string;
  temporary: boolean;
  port: number;
  distPort: number;
  managementPort: number | undefined;
  prometheusPort: number;
  timeoutMs: number;
  identity: { nodeName: string; password: string } | undefined;
}): Promise<RabbitMqHandle> {
  const username = "docflow";
  const password = o.identity?.password ?? randomHex(16);
  const nodeName = o.identity?.nodeName ?? `docflow-${process.pid}-${randomHex(3)}@localhost`;
  const home = join(o.dir, "home");
  const mnesiaBase = join(o.dir, "mnesia");
  const logBase = join(o.dir, "log");
  await Promise.all([home, mnesiaBase, logBase].map((d) => mkdir(d, { recursive: true })));
  // Own Erlang cookie (HOME) so concurrent brokers do not race on creating ~/.erlang.cookie; a
  // restarted broker keeps its own.
  const cookie = join(home, ".erlang.cookie");
  if (!existsSync(cookie)) await writeFile(cookie, randomHex(20).toUpperCase(), { mode: 0o400 });
  const configFile = join(o.dir, "rabbitmq.conf");
  const pluginsFile = join(o.dir, "enabled_plugins");
  const conf = [
    `listeners.tcp.default = 127.0.0.1:${o.port}`,
    "loopback_users = none",
    `default_user = ${username}`,
    `default_pass = ${password}`,
    "collect_statistics_interval = 1000",
    "log.console = false",
    "log.file.level = info",
  ];
  if (o.managementPort !== undefined) {
    conf.push(`management.tcp.port = ${o.managementPort}`, "management.tcp.ip = 127.0.0.1", `prometheus.tcp.port = ${o.prometheusPort}`, "prometheus.tcp.ip = 127.0.0.1");
  }
  await writeFile(configFile, `${conf.join("\n")}\n`);
  // The offline equivalent of `rabbitmq-plugins enable --offline ...`: the enabled-plugins file
  // lists the explicitly enabled plugins; dependencies are resolved at boot.
  await writeFile(pluginsFile, o.managementPort !== undefined ? "[rabbitmq_management,rabbitmq_prometheus].\n" : "[].\n");
  await writeFile(join(o.dir, "rabbitmq-env.conf"), "# intentionally empty (keeps /etc/rabbitmq/rabbitmq-env.conf out)\n");

  const env = childEnv(
    {
      HOME: home,
      RABBITMQ_NODENAME: nodeName,
      RABBITMQ_MNESIA_BASE: mnesiaBase,
      RABBITMQ_LOG_BASE: logBase,
      RABBITMQ_CONFIG_FILE: configFile,
      RABBITMQ_ADVANCED_CONFIG_FILE: join(o.dir, "advanced.config"),
      RABBITMQ_CONF_ENV_FILE: join(o.dir, "rabbitmq-env.conf"),
      RABBITMQ_ENABLED_PLUGINS_FILE: pluginsFile,
      RABBITMQ_PID_FILE: join(o.dir, "rabbitmq.pid"),
      RABBITMQ_DIST_PORT: String(o.distPort),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
      ...EPMD_ENV,
    },
    ["RABBITMQ_", "ERL_"],
  );
  await ensureEpmd(env);

  const logFile = join(o.dir, "rabbitmq.out.log");
  const nodeLog = join(logBase, `${nodeName}.log`);
  const proc = spawnLogged(join(o.binDir, "rabbitmq-server"), [], { cwd: o.dir, env, logFile });
  const url = `amqp://${username}:${password}@127.0.0.1:${o.port}`;

  const amqp = await import("amqplib");
  await waitReady(
    "rabbitmq",
    proc,
    async () => {
      await tcpProbe(o.port, false); // cheap check first: is the listener up at all?
      const conn = await amqp.connect(url, { timeout: 5_000 });
      await conn.close();
      return true;
    },
    { timeoutMs: o.timeoutMs, intervalMs: 250, logs: [logFile, nodeLog] },
  );
  if (o.managementPort !== undefined) {
    // The management listener starts slightly after AMQP on some boots: wait for it too.
    const mgmtPort = o.managementPort;
    await waitReady("rabbitmq management", proc, async () => (await httpProbe(mgmtPort)) > 0, {
      timeoutMs: 30_000,
      intervalMs: 100,
      logs: [logFile, nodeLog],
    });
  }

  const stop = makeStopper(async () => {
    if (!proc.hasExited()) {
      const [ctlPort] = await findFreePorts(1);
      const ctlEnv = { ...env, RABBITMQ_CTL_DIST_PORT_MIN: String(ctlPort), RABBITMQ_CTL_DIST_PORT_MAX: String(ctlPort) };
      const res = await run(join(o.binDir, "rabbitmqctl"), ["-n", nodeName, "stop"], { env: ctlEnv, cwd: o.dir, timeoutMs: 30_000 });
      if (!res.ok) {
        const fd = openSync(logFile, "a");
        writeSync(fd, `\n==== rabbitmqctl stop failed, killing the process group\n${res.output}\n`);
        closeSync(fd);
      } else {
        await Promise.race([proc.exited, sleep(15_000, undefined, { ref: false })]);
      }
    }
    await killGroup(proc.pid, 5_000);
    await removeTempDir(o.dir, o.temporary);
  });

  return {
    dataDir: o.dir,
    logFile,
    pid: proc.pid,
    url,
    ...(o.managementPort !== undefined ? { managementUrl: `http://127.0.0.1:${o.managementPort}`, prometheusUrl: `http://127.0.0.1:${o.prometheusPort}/metrics` } : {}),
    username,
    password,
    port: o.port,
    nodeName,
    stop,
    kill: async () => {
      signalGroup(proc.pid, "SIGKILL");
      await waitGroupGone(proc.pid, 10_000);
      liveGroups.delete(proc.pid);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// NATS

export async function startNats(options: NatsOptions = {}): Promise<NatsHandle> {
  const bin = process.env.DOCFLOW_NATS_SERVER_BIN ?? "/usr/sbin/nats-server";
  const { dir, temporary } = await prepareDataDir(options.dataDir, "nats", options.keepData);
  try {
    return await withRetry(async () => {
      const [port, wsPort] = (await resolvePorts([options.port, options.wsPort])) as [number, number];
      const storeDir = join(dir, "jetstream");
      await mkdir(storeDir, { recursive: true });
      const configFile = join(dir, "nats.conf");
      await writeFile(
        configFile,
        [
          `listen: ${JSON.stringify(`127.0.0.1:${port}`)}`,
          `server_name: ${JSON.stringify(`docflow-${process.pid}-${randomHex(3)}`)}`,
          `jetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n}`,
          `websocket {\n  listen: ${JSON.stringify(`127.0.0.1:${wsPort}`)}\n  no_tls: true\n}`,
          ...(options.config ? [options.config] : []),
          "",
        ].join("\n"),
      );
      const logFile = join(dir, "nats.log");
      const proc = spawnLogged(bin, ["-c", configFile], { cwd: dir, env: childEnv({}, []), logFile });
      await waitReady(
        "nats",
        proc,
        async () => {
          const line = await tcpProbe(port, true);
          if (!line.startsWith("INFO ")) throw new Error(`unexpected greeting: ${line.slice(0, 80)}`);
          await tcpProbe(wsPort, false);
          return true;
        },
        { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 50, logs: [logFile] },
      );
      const stop = makeStopper(async () => {
        await killGroup(proc.pid, 5_000); // SIGTERM: nats-server shuts down cleanly
        await removeTempDir(dir, temporary);
      });
      return { dataDir: dir, logFile, pid: proc.pid, url: `nats://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${wsPort}`, port, wsPort, stop };
    });
  } catch (err) {
    await removeTempDir(dir, temporary);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// S3 (versitygw, posix backend)

function defaultVersitygwBin(): string {
  return process.env.DOCFLOW_VERSITYGW_BIN ?? join(homedir(), ".cache", "docflow", "bin", "versitygw");
}

export async function startS3(options: S3Options = {}): Promise<S3Handle> {
  const bin = defaultVersitygwBin();
  if (!existsSync(bin)) throw new Error(`versitygw not found at ${bin}: run scripts/bootstrap.sh (or set DOCFLOW_VERSITYGW_BIN)`);
  const { dir, temporary } = await prepareDataDir(options.dataDir, "s3", options.keepData);
  const accessKey = options.accessKey ?? `docflow${randomHex(6)}`;
  const secretKey = options.secretKey ?? randomHex(20);
  const root = join(dir, "root"); // buckets are the sub-directories of the gateway root
  const sidecarDir = join(dir, "sidecar");
  await mkdir(root, { recursive: true });
  let metadata: "xattr" | "sidecar" = "xattr";
  try {
    const handle = await withRetry(async () => {
      const [port] = (await resolvePorts([options.port])) as [number];
      const logFile = join(dir, "versitygw.log");
      const env = childEnv({ ROOT_ACCESS_KEY_ID: accessKey, ROOT_SECRET_ACCESS_KEY: secretKey, VGW_REGION: "us-east-1" }, ["VGW_", "ROOT_", "AWS_"]);
      // --keep-alive: as S3 itself does. Without it versitygw closes every connection after one
      // answer, and each request of the gateway and processors pays a new TCP connection.
      const launch = (): Spawned => {
        const backendArgs = metadata === "sidecar" ? ["--sidecar", sidecarDir, root] : [root];
        return spawnLogged(bin, ["--port", `127.0.0.1:${port}`, "--quiet", "--keep-alive", "posix", ...backendArgs], { cwd: dir, env, logFile });
      };
      const probe = async (): Promise<boolean> => (await httpProbe(port)) > 0;
      const readyOpts = { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 50, logs: [logFile] };
      let proc = launch();
      try {
        await waitReady("versitygw", proc, probe, readyOpts);
      } catch (err) {
        // The posix backend refuses to start where the filesystem has no user xattrs; keep the
        // metadata (content type, user metadata, ACLs) in a sidecar dir instead of dropping it.
        if (!(err instanceof StartupError && err.exitedEarly && /xattr/i.test(err.message))) throw err;
        metadata = "sidecar";
        await mkdir(sidecarDir, { recursive: true });
        proc = launch();
        await waitReady("versitygw", proc, probe, readyOpts);
      }
      const started = proc;
      const stop = makeStopper(async () => {
        await killGroup(started.pid, 5_000);
        await removeTempDir(dir, temporary);
      });
      return {
        dataDir: dir,
        logFile,
        pid: started.pid,
        endpoint: `http://127.0.0.1:${port}`,
        accessKey,
        secretKey,
        region: "us-east-1" as const,
        port,
        buckets: options.buckets ?? [],
        metadata,
        stop,
      };
    });
    if (handle.buckets.length > 0) {
      try {
        await createBuckets(handle, handle.buckets);
      } catch (err) {
        await handle.stop();
        throw err;
      }
    }
    return handle;
  } catch (err) {
    await removeTempDir(dir, temporary);
    throw err;
  }
}

/** Creates `buckets` through the S3 API of a server (one already there is fine). */
export async function createBuckets(h: { endpoint: string; accessKey: string; secretKey: string }, buckets: readonly string[]): Promise<void> {
  if (buckets.length === 0) return;
  const { S3Client, CreateBucketCommand } = await import("@aws-sdk/client-s3");
  const client = new S3Client({
    endpoint: h.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: h.accessKey, secretAccessKey: h.secretKey },
  });
  try {
    for (const bucket of buckets) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
      } catch (err) {
        if (!(err instanceof Error && err.name === "BucketAlreadyOwnedByYou")) throw err;
      }
    }
  } finally {
    client.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// All three

export async function startAll(options: StartAllOptions = {}): Promise<AllServices> {
  const temporary = options.baseDir === undefined;
  const baseDir = options.baseDir === undefined ? await mkdtemp(join(tmpdir(), "docflow-services-")) : resolve(options.baseDir);
  await mkdir(baseDir, { recursive: true });
  const results = await Promise.allSettled([
    startRabbitMq({ ...options.rabbitmq, dataDir: join(baseDir, "rabbitmq") }),
    startNats({ ...options.nats, dataDir: join(baseDir, "nats") }),
    startS3({ ...options.s3, dataDir: join(baseDir, "s3") }),
  ]);
  const [r, n, s] = results;
  if (r.status !== "fulfilled" || n.status !== "fulfilled" || s.status !== "fulfilled") {
    await Promise.all(results.map((x) => (x.status === "fulfilled" ? x.value.stop() : undefined)));
    const errors = results.flatMap((x) => (x.status === "rejected" ? [x.reason as unknown] : []));
    if (errors.length === 1) throw errors[0];
    throw new AggregateError(errors, `failed to start services:\n${errors.map((e) => (e instanceof Error ? e.message : String(e))).join("\n\n")}`);
  }
  const stop = makeStopper(async () => {
    await Promise.all([r.value.stop(), n.value.stop(), s.value.stop()]);
    await removeTempDir(baseDir, temporary);
  });
  return { baseDir, rabbitmq: r.value, nats: n.value, s3: s.value, stop };
}

/** The DOCFLOW_TEST_* variables the test suites read, for running services. */
export function testEnv(services: { rabbitmq: RabbitMqHandle; nats: NatsHandle; s3: S3Handle }): Record<string, string> {
  const env: Record<string, string> = {
    DOCFLOW_TEST_AMQP_URL: services.rabbitmq.url,
    DOCFLOW_TEST_NATS_URL: services.nats.url,
    DOCFLOW_TEST_NATS_WS_URL: services.nats.wsUrl,
    DOCFLOW_TEST_S3_ENDPOINT: services.s3.endpoint,
    DOCFLOW_TEST_S3_ACCESS_KEY: services.s3.accessKey,
    DOCFLOW_TEST_S3_SECRET_KEY: services.s3.secretKey,
  };
  if (services.rabbitmq.managementUrl !== undefined) env.DOCFLOW_TEST_AMQP_MGMT_URL = services.rabbitmq.managementUrl;
  return env;
}
