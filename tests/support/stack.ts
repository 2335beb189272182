import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { once } from "node:events";
import { serviceNodeArgs } from "../../scripts/lib/node-args.ts";
import { testServices, uniqueName } from "./env.ts";

const ROOT = resolve(import.meta.dirname, "../..");

/** The built web app (`npm run build -w services/web`; `npm test` builds it before the e2e project). */
export const WEB_DIST = join(ROOT, "services/web/dist");

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

export interface Stack {
  baseUrl: string;
  /** tenant -> token */
  tokens: Record<string, string>;
  env: Record<string, string>;
  logs: () => string;
  /** Process ids of the gateway and of the first processor. */
  pids: { gateway: number; processor: number };
  stop: () => Promise<void>;
}

export interface StackOptions {
  storage?: "fs" | "s3";
  processors?: number;
  tenants?: string[];
  env?: Record<string, string>;
  /**
   * Have the gateway serve the built web app at `/` (DOCFLOW_WEB_DIR=services/web/dist), on the
   * same origin as the API, as `npm start` does. Fails at once when the app has not been built.
   */
  web?: boolean;
}

/**
 * The real docflow processes (gateway and processors) on the real services,
 * isolated by their own queue namespace, KV bucket, S3 bucket and tenants.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const services = testServices();
  if (options.web && !existsSync(join(WEB_DIST, "index.html"))) {
    throw new Error(`the web app is not built (no ${join(WEB_DIST, "index.html")}): run the tests with 'npm test' (it builds it), or 'npm run build -w services/web' first`);
  }
  const tenants = options.tenants ?? [uniqueName("acme"), uniqueName("globex")];
  const tokens = Object.fromEntries(tenants.map((t) => [t, `tok-${t}-${Math.random().toString(36).slice(2)}`]));
  const dataDir = await mkdtemp(join(tmpdir(), "docflow-e2e-"));
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/root",
    LOG_LEVEL: process.env.DOCFLOW_TEST_LOG_LEVEL ?? "info",
    DOCFLOW_AMQP_URL: services.amqpUrl,
    DOCFLOW_AMQP_NAMESPACE: uniqueName("e2e"),
    DOCFLOW_NATS_URL: services.natsUrl,
    DOCFLOW_NATS_CREDS: services.nats.credsFile,
    DOCFLOW_REALTIME_SIGNING_SEED: services.nats.signingSeed,
    DOCFLOW_REALTIME_ACCOUNT: services.nats.account,
    DOCFLOW_REALTIME_WS_URL: services.natsWsUrl,
    DOCFLOW_JOBS_BUCKET: uniqueName("jobs"),
    DOCFLOW_DATA_DIR: dataDir,
    DOCFLOW_STORAGE: options.storage ?? "s3",
    DOCFLOW_S3_ENDPOINT: services.s3.endpoint,
    DOCFLOW_S3_BUCKET: uniqueName("e2e"),
    DOCFLOW_S3_CREATE_BUCKET: "true",
    AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
    AWS_REGION: services.s3.region,
    DOCFLOW_DEV_TOKENS: Object.entries(tokens).map(([t, tok]) => `${tok}=${t}`).join(","),
    DOCFLOW_HOST: "127.0.0.1",
    DOCFLOW_PORT: String(port),
    DOCFLOW_PROCESSOR_HOST: "127.0.0.1",
    DOCFLOW_PROCESSOR_PORT: "0",
    DOCFLOW_WORK_DIR: join(dataDir, "work"),
    DOCFLOW_DELIVERY_LIMIT: "2",
    ...(options.web ? { DOCFLOW_WEB_DIR: WEB_DIST } : {}),
    ...options.env,
  };
  let output = "";
  const children: ChildProcess[] = [];
  const launch = (service: string) => {
    const child = spawn(process.execPath, [...serviceNodeArgs(service), "--import", "@docflow/telemetry/register", join(ROOT, "services", service, "src/server.ts")], {
      cwd: ROOT,
      env: { OTEL_SERVICE_NAME: service, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    children.push(child);
  };
  launch("gateway");
  for (let i = 0; i < (options.processors ?? 1); i++) launch("processor");

  const stop = async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        c.kill("SIGTERM");
        const exited = once(c, "exit");
        const timer = setTimeout(() => c.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  };
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const dead = children.find((c) => c.exitCode !== null);
    if (dead) {
      await new Promise((r) => setTimeout(r, 200)); // let its last output arrive
      await stop();
      throw new Error(`a docflow process exited during start-up:\n${output}`);
    }
    const ready = await fetch(`${baseUrl}/readyz`).then((r) => r.ok, () => false);
    if (ready && output.split("processor consuming").length - 1 >= (options.processors ?? 1)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the stack did not become ready in 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const pids = { gateway: children[0]?.pid ?? 0, processor: children[1]?.pid ?? 0 };
  return { baseUrl, tokens, env, logs: () => output, pids, stop };
}

/** The metrics port of the stack's first processor (it picks a free one and logs it). */
export function processorPort(stack: Stack): number {
  const line = stack.logs().split("\n").find((l) => l.includes('"msg":"processor consuming"'));
  const port = line ? (JSON.parse(line) as { port?: number }).port : undefined;
  if (!port) throw new Error("the processor did not log its port");
  return port;
}
