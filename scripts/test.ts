/**
 * `npm test` (via scripts/run.sh test [vitest args]):
 *   1. type-check (`tsc --build`) and lint (`npm run lint`), while
 *   2. the dependency services start (RabbitMQ, NATS, S3; tools/src/services.ts) and the web app
 *      is built (`npm run build -w services/web`: vue-tsc, then vite into services/web/dist, which
 *      the e2e browser tests have the gateway serve), then
 *   3. `vitest run <args>` with DOCFLOW_TEST_* pointing at them, then the services are stopped.
 * Exits with vitest's exit code (or the failing phase's). Each phase prints its duration.
 *
 * The services run as containers through Testcontainers when a container engine is configured
 * (DOCKER_HOST or /var/run/docker.sock; scripts/containers.sh provisions podman on machines without
 * Docker; images from DOCFLOW_TEST_{RABBITMQ,NATS,S3}_IMAGE, tools/src/containers.ts), as host
 * processes otherwise (tools/src/services.ts); DOCFLOW_TEST_SERVICES=host|containers insists.
 * With containers, docflow's own images are built too (scripts/images.sh, alongside the checks)
 * and the system project (tests/system/: those images end to end) runs; without, the log says
 * that it did not.
 *
 * A service is not started when its variables are already set (it is used as given):
 *   DOCFLOW_TEST_AMQP_URL (+ DOCFLOW_TEST_AMQP_MGMT_URL),
 *   DOCFLOW_TEST_NATS_URL (+ _WS_URL, and for its operator-mode auth _CREDS, _SIGNING_SEED, _ACCOUNT),
 *   DOCFLOW_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY).
 * The web build is skipped with DOCFLOW_TEST_SKIP_WEB_BUILD=1 (the browser tests then use the
 * services/web/dist already there), and when the vitest args select projects (`--project x`) of
 * which none is e2e: only the e2e project needs it. Its output is shown only when it fails.
 * The faults project (tests/faults/: the stack under faults, with figures) runs on its own after
 * the others when no project is named (DOCFLOW_TEST_FAULTS_AFTER=1 keeps it out of the first run).
 * The cluster project (tests/cluster/: the SRE's day on a real Kubernetes node) runs last, on its
 * own: with DOCFLOW_TEST_KUBECONFIG (+ DOCFLOW_TEST_CLUSTER_URL) on that cluster as given;
 * otherwise, as root, on the local cluster of scripts/cluster.sh, which starts alongside the
 * checks (`up`) and gets docflow installed after the other tests (`deploy`), and is left running
 * for the next run (`bash scripts/cluster.sh down` stops it). Not root and no kubeconfig: the log
 * says the cluster tests did not run. DOCFLOW_TEST_SKIP_CLUSTER=1 leaves them out.
 * Knobs: DOCFLOW_TEST_SKIP_TYPECHECK=1, DOCFLOW_TEST_SKIP_LINT=1, DOCFLOW_TEST_SKIP_SERVICES=1,
 *   DOCFLOW_TEST_SKIP_IMAGE_BUILD=1 (the system tests use the images already built),
 *   DOCFLOW_TEST_RABBITMQ_MANAGEMENT=0 (no management plugin: no DOCFLOW_TEST_AMQP_MGMT_URL, and
 *   the broker stops ~5 s faster), DOCFLOW_TEST_S3_BUCKETS=a,b (buckets created up front),
 *   DOCFLOW_KEEP_SERVICE_DIRS=1 (keep the services' data dirs and logs even on success).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { generateNatsAuth, type NatsAuth } from "@docflow/infra/nats-auth";
import { startNats, startRabbitMq, startS3, type NatsHandle, type RabbitMqHandle, type S3Handle } from "@docflow/tools/services";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const vitestArgs = process.argv.slice(2);
const env = process.env;

function log(message: string): void {
  process.stderr.write(`[test] ${message}\n`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

async function timed<T>(phase: string, fn: () => Promise<T>, describe: (value: T) => string = () => "ok"): Promise<T> {
  const t0 = performance.now();
  try {
    const value = await fn();
    log(`${phase.padEnd(16)} ${describe(value)} (${seconds(performance.now() - t0)})`);
    return value;
  } catch (err) {
    log(`${phase.padEnd(16)} FAILED (${seconds(performance.now() - t0)})`);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Child commands (type-check, lint, vitest): foreground, output inherited, killed on a signal.

const children = new Set<ChildProcess>();

class PhaseFailed extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

function localBin(name: string): string {
  const bin = join(root, "node_modules", ".bin", name);
  return existsSync(bin) ? bin : name;
}

/** Runs a command to its end. With `output`, its stdout and stderr are collected there instead of shown. */
function runCommand(cmd: string, args: string[], extraEnv: Record<string, string> = {}, output?: string[]): Promise<number> {
  if (signalled) return Promise.resolve(130); // no new phase once we are shutting down
  return new Promise((res) => {
    // Own process group (detached), so that a signal reaches the whole tree: `npm run` does not
    // forward SIGTERM to its script's children, and vitest's workers or the stack processes of the
    // e2e tests must not outlive us. The terminal's Ctrl-C reaches us and is forwarded below.
    const child = spawn(cmd, args, { cwd: root, stdio: output ? ["ignore", "pipe", "pipe"] : "inherit", env: { ...env, ...extraEnv }, detached: true });
    child.stdout?.on("data", (d: Buffer) => output?.push(d.toString()));
    child.stderr?.on("data", (d: Buffer) => output?.push(d.toString()));
    children.add(child);
    child.once("error", (err) => {
      children.delete(child);
      log(`cannot run ${cmd}: ${err.message}`);
      res(127);
    });
    child.once("exit", (code, signal) => {
      children.delete(child);
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL"); // stragglers of the tree
      res(code ?? (signal ? 128 + signalNumber(signal) : 1));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 1;
}

function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false; // never -1 (everything) or PID 1
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM the child's process group, then SIGKILL what is left after 5 s. */
async function killTree(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + 5_000;
  while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(100);
  signalGroup(pid, "SIGKILL");
}

async function checked(phase: string, cmd: string, args: string[]): Promise<void> {
  await timed(phase, async () => {
    const code = await runCommand(cmd, args);
    if (code !== 0) throw new PhaseFailed(`${phase} failed (exit ${code})`, code);
  });
}

// ---------------------------------------------------------------------------------------------
// Web app build (for the e2e browser tests)

/** The `--project` values among the vitest args (`--project x` or `--project=x`). */
function selectedProjects(args: string[]): string[] {
  const projects: string[] = [];
  args.forEach((arg, i) => {
    if (arg === "--project" && args[i + 1] !== undefined) projects.push(args[i + 1]!);
    else if (arg.startsWith("--project=")) projects.push(arg.slice("--project=".length));
  });
  return projects;
}

/** Builds services/web/dist unless told not to, or unless no selected project needs it. Resolves with why it was skipped, if it was. */
async function buildWeb(): Promise<string | undefined> {
  if (env.DOCFLOW_TEST_SKIP_WEB_BUILD === "1") return "DOCFLOW_TEST_SKIP_WEB_BUILD=1";
  const projects = selectedProjects(vitestArgs);
  if (projects.length > 0 && !projects.some((p) => p.includes("e2e") || p.includes("*"))) return `projects ${projects.join(", ")} do not need it`;
  const output: string[] = [];
  const code = await runCommand("npm", ["run", "--silent", "build", "-w", "services/web"], {}, output);
  if (code !== 0) {
    process.stderr.write(output.join(""));
    throw new PhaseFailed(`web build failed (exit ${code})`, code);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// docflow's images (for the system project)

/**
 * Builds the gateway, processor, web and operator images (scripts/images.sh) when the services run as
 * containers and the system project is selected (no `--project`, or one naming it); resolves with
 * whether the system tests run, and why not. DOCFLOW_TEST_SKIP_IMAGE_BUILD=1 uses the images
 * already there.
 */
async function buildImages(): Promise<{ run: true } | { run: false; why: string }> {
  const projects = selectedProjects(vitestArgs);
  if (projects.length > 0 && !projects.some((p) => p.includes("system") || p.includes("*"))) return { run: false, why: `projects ${projects.join(", ")} do not include it` };
  if (env.DOCFLOW_TEST_SKIP_SERVICES === "1") return { run: false, why: "DOCFLOW_TEST_SKIP_SERVICES=1" };
  const mode = servicesMode();
  if (mode.kind !== "containers") return { run: false, why: "no container engine (services run as host processes; see README: Testcontainers path)" };
  if (env.DOCFLOW_TEST_SKIP_IMAGE_BUILD === "1") return { run: true };
  const output: string[] = [];
  const code = await runCommand("bash", ["scripts/images.sh"], {}, output);
  process.stderr.write(output.join(""));
  if (code !== 0) throw new PhaseFailed(`image build failed (exit ${code})`, code);
  return { run: true };
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes cluster (for the cluster project)

type ClusterPlan = { run: false; why: string; error?: true } | { run: true; local: boolean };

function clusterPlan(): ClusterPlan {
  const projects = selectedProjects(vitestArgs);
  if (projects.length > 0 && !projects.some((p) => p.includes("cluster") || p.includes("*"))) return { run: false, why: `projects ${projects.join(", ")} do not include it` };
  if (env.DOCFLOW_TEST_SKIP_CLUSTER === "1") return { run: false, why: "DOCFLOW_TEST_SKIP_CLUSTER=1" };
  if (env.DOCFLOW_TEST_KUBECONFIG) {
    if (!env.DOCFLOW_TEST_CLUSTER_URL) return { run: false, why: "DOCFLOW_TEST_KUBECONFIG needs DOCFLOW_TEST_CLUSTER_URL (the web app's URL through the cluster's ingress)", error: true };
    return { run: true, local: false };
  }
  if (process.getuid?.() !== 0) return { run: false, why: "the local cluster (scripts/cluster.sh) needs root; or set DOCFLOW_TEST_KUBECONFIG" };
  return { run: true, local: true };
}

/** `scripts/cluster.sh <command>`, its phase lines shown as they come. */
async function clusterScript(command: string): Promise<void> {
  const code = await runCommand("bash", ["scripts/cluster.sh", command]);
  if (code !== 0) throw new PhaseFailed(`scripts/cluster.sh ${command} failed (exit ${code})`, code);
}

/** What the cluster tests read: the given DOCFLOW_TEST_* of an existing cluster, or the local one's. */
async function clusterEnv(plan: { local: boolean }): Promise<Record<string, string>> {
  if (!plan.local) {
    return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[0].startsWith("DOCFLOW_TEST_CLUSTER_") || e[0] === "DOCFLOW_TEST_KUBECONFIG"));
  }
  const output: string[] = [];
  const code = await runCommand("bash", ["scripts/cluster.sh", "test-env"], {}, output);
  if (code !== 0) throw new PhaseFailed(`scripts/cluster.sh test-env failed: ${output.join("")}`, code);
  return Object.fromEntries(
    output
      .join("")
      .split("\n")
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

// ---------------------------------------------------------------------------------------------
// Services

interface Started {
  env: Record<string, string>;
  stops: (() => Promise<void>)[];
  baseDir?: string;
}

/**
 * Where the dependency services come from: host processes (tools/src/services.ts) or containers
 * through Testcontainers (tools/src/containers.ts). DOCFLOW_TEST_SERVICES=host|containers picks
 * one; by default (auto) containers when a container engine is configured (DOCKER_HOST, or a
 * Docker socket at /var/run/docker.sock), host processes otherwise.
 */
function servicesMode(): { kind: "host" | "containers"; reason: string } {
  const wanted = env.DOCFLOW_TEST_SERVICES ?? "auto";
  if (wanted === "host") return { kind: "host", reason: "as host processes (DOCFLOW_TEST_SERVICES=host)" };
  if (wanted === "containers") return { kind: "containers", reason: `as containers via Testcontainers (DOCFLOW_TEST_SERVICES=containers, ${env.DOCKER_HOST ?? "default Docker socket"})` };
  if (wanted !== "auto") throw new PhaseFailed(`DOCFLOW_TEST_SERVICES must be host, containers or auto, not ${JSON.stringify(wanted)}`, 2);
  if (env.DOCKER_HOST) return { kind: "containers", reason: `as containers via Testcontainers (DOCKER_HOST=${env.DOCKER_HOST})` };
  if (existsSync("/var/run/docker.sock")) return { kind: "containers", reason: "as containers via Testcontainers (/var/run/docker.sock)" };
  return { kind: "host", reason: "as host processes (no container engine configured; DOCFLOW_TEST_SERVICES=containers to insist)" };
}

async function startServices(): Promise<Started> {
  const started: Started = { env: {}, stops: [] };
  if (env.DOCFLOW_TEST_SKIP_SERVICES === "1") {
    log("services         skipped (DOCFLOW_TEST_SKIP_SERVICES=1)");
    return started;
  }
  const wantRabbit = !env.DOCFLOW_TEST_AMQP_URL;
  const wantNats = !env.DOCFLOW_TEST_NATS_URL;
  const wantS3 = !env.DOCFLOW_TEST_S3_ENDPOINT;
  if (!wantRabbit) log("rabbitmq         using DOCFLOW_TEST_AMQP_URL from the environment");
  if (!wantNats) log("nats             using DOCFLOW_TEST_NATS_URL from the environment");
  if (!wantS3) log("s3               using DOCFLOW_TEST_S3_ENDPOINT from the environment");
  if (!wantRabbit && !wantNats && !wantS3) return started;

  const mode = servicesMode();
  log(`services         ${mode.reason}`);
  const baseDir = await mkdtemp(join(tmpdir(), "docflow-test-services-"));
  started.baseDir = baseDir;
  const management = env.DOCFLOW_TEST_RABBITMQ_MANAGEMENT !== "0";
  const buckets = (env.DOCFLOW_TEST_S3_BUCKETS ?? "")
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
  const containers = mode.kind === "containers" ? await import("@docflow/tools/containers") : undefined;
  const redact = (url: string): string => url.replace(/:[^:@/]*@/, ":***@");

  const jobs: Promise<void>[] = [];
  if (wantRabbit) {
    jobs.push(
      timed(
        "rabbitmq",
        async (): Promise<{ url: string; managementUrl?: string | undefined; stop: () => Promise<void>; describe: string }> => {
          if (containers) {
            const c = await containers.startRabbitMqContainer({ management });
            return { ...c, describe: `container ${c.describe}` };
          }
          const h: RabbitMqHandle = await startRabbitMq({ dataDir: join(baseDir, "rabbitmq"), ...(management ? { managementPort: 0 } : {}) });
          return { url: h.url, managementUrl: h.managementUrl, stop: h.stop, describe: "process" };
        },
        (h) => `ready at ${redact(h.url)} (${h.describe})`,
      ).then((h) => {
        started.stops.push(h.stop);
        started.env.DOCFLOW_TEST_AMQP_URL = h.url;
        if (h.managementUrl !== undefined) started.env.DOCFLOW_TEST_AMQP_MGMT_URL = h.managementUrl;
      }),
    );
  }
  if (wantNats) {
    // NATS runs with decentralised auth (operator mode), as in production: the suites connect with
    // the services' credentials file and mint browser credentials with the account's signing key.
    jobs.push(
      timed(
        "nats",
        async () => {
          const auth = await generateNatsAuth();
          const credsFile = join(baseDir, "nats-service.creds");
          await writeFile(credsFile, auth.serviceCreds, { mode: 0o600 });
          if (containers) {
            const c = await containers.startNatsContainer({ config: auth.serverConfig });
            return { handle: { ...c, describe: `container ${c.describe}` }, auth, credsFile };
          }
          const h: NatsHandle = await startNats({ dataDir: join(baseDir, "nats"), config: auth.serverConfig });
          return { handle: { url: h.url, wsUrl: h.wsUrl, stop: h.stop, describe: "process" }, auth, credsFile };
        },
        ({ handle }) => `ready at ${handle.url} ${handle.wsUrl} (operator-mode auth, ${handle.describe})`,
      ).then(({ handle, auth, credsFile }: { handle: { url: string; wsUrl: string; stop: () => Promise<void> }; auth: NatsAuth; credsFile: string }) => {
        started.stops.push(handle.stop);
        started.env.DOCFLOW_TEST_NATS_URL = handle.url;
        started.env.DOCFLOW_TEST_NATS_WS_URL = handle.wsUrl;
        started.env.DOCFLOW_TEST_NATS_CREDS = credsFile;
        started.env.DOCFLOW_TEST_NATS_SIGNING_SEED = auth.signingSeed;
        started.env.DOCFLOW_TEST_NATS_ACCOUNT = auth.account;
      }),
    );
  }
  if (wantS3) {
    jobs.push(
      timed(
        "s3",
        async () => {
          if (containers) {
            const c = await containers.startS3Container({ buckets });
            return { ...c, describe: `container ${c.describe}` };
          }
          const h: S3Handle = await startS3({ dataDir: join(baseDir, "s3"), buckets });
          return { endpoint: h.endpoint, accessKey: h.accessKey, secretKey: h.secretKey, stop: h.stop, describe: `process, versitygw, ${h.metadata} metadata` };
        },
        (h) => `ready at ${h.endpoint} (${h.describe})`,
      ).then((h) => {
        started.stops.push(h.stop);
        started.env.DOCFLOW_TEST_S3_ENDPOINT = h.endpoint;
        started.env.DOCFLOW_TEST_S3_ACCESS_KEY = h.accessKey;
        started.env.DOCFLOW_TEST_S3_SECRET_KEY = h.secretKey;
      }),
    );
  }
  const results = await Promise.allSettled(jobs);
  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failures.length > 0) {
    await stopServices(started, false);
    for (const f of failures) log(f instanceof Error ? f.message : String(f));
    throw new PhaseFailed("services failed to start", 1);
  }
  return started;
}

let servicesStopped: Promise<void> | undefined;

function stopServices(started: Started, keepDir: boolean): Promise<void> {
  servicesStopped ??= (async () => {
    if (started.stops.length > 0) {
      await timed("stop services", async () => {
        await Promise.allSettled(started.stops.map((stop) => stop()));
      });
    }
    if (started.baseDir !== undefined) {
      if (keepDir || env.DOCFLOW_KEEP_SERVICE_DIRS === "1") log(`service data and logs kept in ${started.baseDir}`);
      else await rm(started.baseDir, { recursive: true, force: true, maxRetries: 3 });
    }
  })();
  return servicesStopped;
}

// ---------------------------------------------------------------------------------------------
// Main

let services: Promise<Started> | undefined;
let signalled = false;

async function shutdownOnSignal(signal: NodeJS.Signals): Promise<void> {
  if (signalled) {
    // Second signal: give up waiting. The 'exit' hook of services.ts SIGKILLs what is left.
    log(`${signal} again: exiting now`);
    process.exit(128 + signalNumber(signal));
  }
  signalled = true;
  log(`${signal} received: stopping (services shut down cleanly; send it again to kill everything at once)`);
  await Promise.all([...children].map((child) => killTree(child)));
  try {
    const started = await services;
    if (started !== undefined) await stopServices(started, false);
  } catch {
    // start failure already reported
  }
  process.exit(128 + signalNumber(signal));
}

process.on("exit", () => {
  for (const child of children) if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => void shutdownOnSignal(signal));
}

async function main(): Promise<number> {
  const t0 = performance.now();
  // Services boot (RabbitMQ: ~6-9 s) while the static checks run.
  services = startServices();
  services.catch(() => undefined); // handled below, after the checks
  // The web app builds (~20 s: vue-tsc, vite) alongside the checks and the services.
  const webBuild = timed("web build", buildWeb, (skipped) => (skipped ? `skipped (${skipped})` : "ok (services/web/dist)"));
  webBuild.catch(() => undefined); // awaited below, before vitest
  // docflow's own images, for the system test, when the services run as containers.
  const imageBuild = timed("images", buildImages, (r) => (r.run ? "ok (localhost/docflow/{gateway,processor,web,operator}:dev)" : `system tests not run: ${r.why}`));
  imageBuild.catch(() => undefined); // awaited below, before vitest
  // The local Kubernetes cluster starts alongside (its binaries are built and cached on first use).
  const cluster = clusterPlan();
  const clusterUp = cluster.run && cluster.local ? timed("cluster up", () => clusterScript("up")) : Promise.resolve();
  clusterUp.catch(() => undefined); // awaited below, before the cluster tests
  let exitCode = 1;
  let keepLogs = false;
  try {
    if (env.DOCFLOW_TEST_SKIP_TYPECHECK !== "1") {
      // Every project, the tooling and the benchmarks too (engines.ts needs bench's own packages:
      // bench/tsconfig.engines.json).
      await checked("typecheck", localBin("tsc"), ["--build"]);
    } else log("typecheck        skipped (DOCFLOW_TEST_SKIP_TYPECHECK=1)");
    if (env.DOCFLOW_TEST_SKIP_LINT !== "1") await checked("lint", "npm", ["run", "--silent", "lint"]);
    else log("lint             skipped (DOCFLOW_TEST_SKIP_LINT=1)");
    await webBuild;
    const images = await imageBuild;
    const started = await services;
    if (signalled) throw new PhaseFailed("interrupted", 130);
    const testEnv = { ...started.env, ...(images.run ? { DOCFLOW_TEST_SYSTEM: "1" } : {}) };
    for (const [k, v] of Object.entries(testEnv)) if (!/_KEY$|_SEED$|AMQP_URL$/.test(k)) log(`  ${k}=${v}`);
    const projects = selectedProjects(vitestArgs);
    const others = projects.length === 0 || projects.some((p) => p !== "cluster");
    // With no project named, the faults project runs on its own after the others: it loads the
    // machine on purpose (processes killed and restarted) and must not slow the timing-sensitive
    // e2e tests. Named (`--project faults`), it runs with whatever else is named.
    const faultsAfter = projects.length === 0;
    const rest = vitestArgs.filter((a, i) => a !== "--project" && vitestArgs[i - 1] !== "--project" && !a.startsWith("--project="));
    if (others) {
      // DOCFLOW_TEST_KUBECONFIG hidden: the cluster project (vitest.config.ts) is not part of this run.
      exitCode = await timed(
        "vitest",
        () => runCommand(localBin("vitest"), ["run", ...vitestArgs], { ...testEnv, DOCFLOW_TEST_KUBECONFIG: "", ...(faultsAfter ? { DOCFLOW_TEST_FAULTS_AFTER: "1" } : {}) }),
        (code) => `exit ${code}`,
      );
    } else {
      exitCode = 0;
    }
    if (faultsAfter) {
      const faultsCode = await timed(
        "vitest faults",
        () => runCommand(localBin("vitest"), ["run", ...rest, "--project", "faults"], { ...testEnv, DOCFLOW_TEST_KUBECONFIG: "" }),
        (code) => `exit ${code}`,
      );
      if (exitCode === 0) exitCode = faultsCode;
    }
    keepLogs = exitCode !== 0; // the services' logs may explain a failing test
    if (!cluster.run) {
      log(`cluster tests    not run: ${cluster.why}`);
      if (cluster.error && exitCode === 0) exitCode = 2;
    } else {
      // The cluster project on its own, after the others: a node's worth of pods loads the machine
      // in its own way and must not slow the timing-sensitive e2e tests.
      await clusterUp;
      if (cluster.local) await timed("cluster deploy", () => clusterScript("deploy"));
      const kube = await clusterEnv(cluster);
      for (const [k, v] of Object.entries(kube)) log(`  ${k}=${v}`);
      const clusterCode = await timed(
        "vitest cluster",
        () => runCommand(localBin("vitest"), ["run", ...rest, "--project", "cluster"], { ...testEnv, ...kube }),
        (code) => `exit ${code}`,
      );
      if (exitCode === 0) exitCode = clusterCode;
      if (cluster.local) log("cluster          left running for the next run (bash scripts/cluster.sh status | down)");
    }
  } catch (err) {
    if (err instanceof PhaseFailed) exitCode = err.exitCode;
    else log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    try {
      const started = await services;
      await stopServices(started, keepLogs && !signalled);
    } catch {
      // start failure: already stopped and reported in startServices
    }
  }
  log(`total            exit ${exitCode} (${seconds(performance.now() - t0)})`);
  return exitCode;
}

const code = await main();
if (!signalled) process.exit(code);
