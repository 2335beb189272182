/**
 * The one way docflow's own processes (gateway, processor, operator) are started outside a
 * container: by `npm start` (scripts/stack.ts), the tests (tests/support) and the benchmarks
 * (bench/lib). Two parts:
 *
 * - `serviceEnv(deps, options)`: the environment every service reads, built from where the
 *   dependency services are (RabbitMQ, NATS, S3) and the few choices a caller makes (storage,
 *   data dir, tokens, isolation names). Per-role settings (ports, concurrency) are added by the
 *   caller as plain variables.
 * - `launchService(service, options)`: `node <the service's nodeArgs> [--import
 *   @docflow/telemetry/register] services/<service>/src/server.ts`, as the images run it, with its
 *   output collected, readiness waits that fail at once (with the output) when the process exits,
 *   and an idempotent, bounded stop: SIGTERM, then SIGKILL after the grace period.
 *
 * Every launched process is SIGKILLed if this Node process exits without stopping it, so a
 * crashed test or benchmark leaves nothing running.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { serviceNodeArgs } from "./node-args.ts";

const ROOT = resolve(import.meta.dirname, "../..");

export type ServiceName = "gateway" | "processor" | "operator";

// ---------------------------------------------------------------------------------------------
// The environment

/** Where the dependency services are. */
export interface Dependencies {
  amqpUrl: string;
  natsUrl: string;
  /** The services' NATS credentials file (decentralised auth); omitted for an open server. */
  natsCreds?: string;
  /** What the gateway mints browsers' NATS credentials with, and where browsers connect. */
  realtime?: { signingSeed: string; account: string; wsUrl: string };
  /** An S3 server; required for storage "s3" (an absent endpoint means AWS itself). */
  s3?: { endpoint?: string; accessKeyId: string; secretAccessKey: string; region: string };
}

export interface ServiceEnvOptions {
  storage: "fs" | "s3";
  /** DOCFLOW_DATA_DIR: the fs object store and the services' local state. */
  dataDir: string;
  /** token -> tenant (DOCFLOW_DEV_TOKENS). */
  tokens?: Record<string, string>;
  /** The S3 bucket; created by the services when missing (DOCFLOW_S3_CREATE_BUCKET). */
  bucket?: string;
  /** Isolation of a run on shared services: queue-name prefix and job-records KV bucket. */
  amqpNamespace?: string;
  jobsBucket?: string;
  /** LOG_LEVEL (the services' default when omitted). */
  logLevel?: string;
  /**
   * The variables passed on from this process: "minimal" (PATH and HOME: tests and benchmarks,
   * so that a developer's shell cannot change what they measure) or "all" (`npm start`, where the
   * user's DOCFLOW_* settings are meant to reach the services).
   */
  inherit?: "minimal" | "all";
}

/** `token=tenant,...` as DOCFLOW_DEV_TOKENS spells it. */
export function devTokens(tokens: Record<string, string>): string {
  return Object.entries(tokens)
    .map(([token, tenant]) => `${token}=${tenant}`)
    .join(",");
}

/** What the gateway mints browsers' NATS credentials with (only the gateway needs the seed). */
export function realtimeEnv(realtime: NonNullable<Dependencies["realtime"]>): Record<string, string> {
  return { DOCFLOW_REALTIME_SIGNING_SEED: realtime.signingSeed, DOCFLOW_REALTIME_ACCOUNT: realtime.account, DOCFLOW_REALTIME_WS_URL: realtime.wsUrl };
}

/** The environment shared by docflow's services on the given dependencies. */
export function serviceEnv(deps: Dependencies, options: ServiceEnvOptions): Record<string, string> {
  if (options.storage === "s3" && !deps.s3) throw new Error('storage "s3" needs the S3 server (deps.s3)');
  const inherited: Record<string, string> = {};
  if (options.inherit === "all") {
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) inherited[k] = v;
  } else {
    inherited.PATH = process.env.PATH ?? "";
    inherited.HOME = process.env.HOME ?? "/root";
  }
  const env: Record<string, string> = {
    ...inherited,
    DOCFLOW_AMQP_URL: deps.amqpUrl,
    DOCFLOW_NATS_URL: deps.natsUrl,
    DOCFLOW_DATA_DIR: options.dataDir,
    DOCFLOW_STORAGE: options.storage,
  };
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined) env[name] = value;
  };
  set("LOG_LEVEL", options.logLevel);
  set("DOCFLOW_NATS_CREDS", deps.natsCreds);
  if (deps.realtime) Object.assign(env, realtimeEnv(deps.realtime));
  set("DOCFLOW_AMQP_NAMESPACE", options.amqpNamespace);
  set("DOCFLOW_JOBS_BUCKET", options.jobsBucket);
  set("DOCFLOW_DEV_TOKENS", options.tokens ? devTokens(options.tokens) : undefined);
  if (deps.s3) {
    set("DOCFLOW_S3_ENDPOINT", deps.s3.endpoint);
    env.AWS_ACCESS_KEY_ID = deps.s3.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = deps.s3.secretAccessKey;
    env.AWS_REGION = deps.s3.region;
    if (options.bucket !== undefined) {
      env.DOCFLOW_S3_BUCKET = options.bucket;
      env.DOCFLOW_S3_CREATE_BUCKET = "true";
    }
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// The process

export interface LaunchOptions {
  /** The whole environment of the process (see `serviceEnv`); OTEL_SERVICE_NAME is added. */
  env: Record<string, string>;
  /** Extra `node` flags, after the service's own (e.g. --cpu-prof, --trace-gc). */
  nodeArgs?: string[];
  /** Preload @docflow/telemetry/register, as the images do (default true). */
  telemetry?: boolean;
  /** "pipe" (default): collected for `logs()`; "inherit": this process's stdout and stderr. */
  output?: "pipe" | "inherit";
  /** Keep only the last this many characters of the output (default: all of it). */
  keepChars?: number;
  /** Also write the whole output to this file. */
  logFile?: string;
  /** Called when the process exits without `stop()` having been called. */
  onUnexpectedExit?: (info: string, process: ServiceProcess) => void;
}

export interface StopOptions {
  signal?: NodeJS.Signals;
  /** SIGKILL after this long (default 20 s; 0: never). */
  graceMs?: number;
}

export interface ServiceProcess {
  readonly service: ServiceName;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Its output so far (empty with output "inherit"). */
  logs(): string;
  /** "exit code N, signal S" once it exited, undefined while it runs. */
  exitInfo(): string | undefined;
  /** Resolves when `url` answers 2xx; fails with the output when the process exits first or time runs out. */
  waitReady(url: string, timeoutMs?: number): Promise<void>;
  /** Resolves with the first output line for which `match` holds; fails like `waitReady`. */
  waitForLine(match: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** Ends it (idempotent): `signal` (SIGTERM), then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(options?: StopOptions): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** Starts one of docflow's services from source. */
export function launchService(service: ServiceName, options: LaunchOptions): ServiceProcess {
  const args = [...serviceNodeArgs(service), ...(options.nodeArgs ?? [])];
  if (options.telemetry ?? true) args.push("--import", "@docflow/telemetry/register");
  args.push(join(ROOT, "services", service, "src/server.ts"));
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { OTEL_SERVICE_NAME: service, ...options.env },
    stdio: ["ignore", options.output === "inherit" ? "inherit" : "pipe", options.output === "inherit" ? "inherit" : "pipe"],
  });
  if (child.pid === undefined) throw new Error(`could not start the ${service} (${process.execPath})`);
  trackUntilExit(child);

  let output = "";
  const keep = options.keepChars ?? Infinity;
  const lineWaiters = new Set<(line: string) => void>();
  let partial = "";
  const onData = (d: Buffer) => {
    const text = d.toString();
    output += text;
    if (output.length > keep) output = output.slice(-keep);
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    if (lineWaiters.size > 0) for (const line of lines) for (const waiter of lineWaiters) waiter(line);
  };
  if (options.output !== "inherit") {
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    if (options.logFile) {
      const file = createWriteStream(options.logFile);
      child.stdout!.pipe(file, { end: false });
      child.stderr!.pipe(file, { end: false });
      child.once("close", () => file.end());
    }
  }

  let stopping = false;
  let exitInfo: string | undefined;
  const exited = once(child, "exit").then(([code, signal]) => {
    exitInfo = `exit code ${(code as number | null) ?? "-"}, signal ${(signal as string | null) ?? "-"}`;
  });
  const failure = (what: string) => new Error(`the ${service} (pid ${child.pid}) ${what}:\n${output.slice(-6000)}`);

  const proc: ServiceProcess = {
    service,
    child,
    pid: child.pid,
    logs: () => output,
    exitInfo: () => exitInfo,
    async waitReady(url, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (exitInfo !== undefined) throw failure(`exited (${exitInfo}) before ${url} answered`);
        if (
          await fetch(url, { signal: AbortSignal.timeout(5_000) }).then(
            (r) => r.ok,
            () => false,
          )
        )
          return;
        if (Date.now() > deadline) throw failure(`did not answer ${url} within ${timeoutMs / 1000} s`);
        await Promise.race([sleep(100), exited]);
      }
    },
    waitForLine(match, what, timeoutMs = 60_000) {
      const seen = output.split("\n").find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolveLine, reject) => {
        const timer = setTimeout(() => settle(failure(`did not log ${what} within ${timeoutMs / 1000} s`)), timeoutMs);
        const waiter = (line: string) => {
          if (match(line)) settle(undefined, line);
        };
        const settle = (err: Error | undefined, line?: string) => {
          clearTimeout(timer);
          lineWaiters.delete(waiter);
          if (err) reject(err);
          else resolveLine(line!);
        };
        lineWaiters.add(waiter);
        void exited.then(() => settle(failure(`exited (${exitInfo}) before it logged ${what}`)));
      });
    },
    async stop({ signal = "SIGTERM", graceMs = 20_000 }: StopOptions = {}) {
      stopping = true;
      if (exitInfo === undefined && child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = graceMs > 0 ? setTimeout(() => child.kill("SIGKILL"), graceMs) : undefined;
        await exited;
        clearTimeout(timer);
      }
      await exited;
    },
  };
  void exited.then(() => {
    if (!stopping) options.onUnexpectedExit?.(exitInfo!, proc);
  });
  return proc;
}

/** Stops all of them side by side (each SIGTERM, SIGKILL after `graceMs`). */
export async function stopAll(processes: readonly ServiceProcess[], options: StopOptions = {}): Promise<void> {
  await Promise.all(processes.map((p) => p.stop(options)));
}

/** Last resort: children still running when this process exits are SIGKILLed. */
function trackUntilExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });
}
