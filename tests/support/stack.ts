import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { launchService, serviceEnv, stopAll, type ServiceProcess } from "@docflow/tools/launch";
import { freePort } from "@docflow/tools/ports";
import { testServices, uniqueName } from "./env.ts";

export { freePort };

const ROOT = resolve(import.meta.dirname, "../..");

/** The built web app (`npm run build -w services/web`; `npm test` builds it before the e2e project). */
export const WEB_DIST = join(ROOT, "services/web/dist");

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
    ...serviceEnv(
      {
        amqpUrl: services.amqpUrl,
        natsUrl: services.natsUrl,
        natsCreds: services.nats.credsFile,
        realtime: { signingSeed: services.nats.signingSeed, account: services.nats.account, wsUrl: services.natsWsUrl },
        s3: services.s3,
      },
      {
        storage: options.storage ?? "s3",
        dataDir,
        tokens: Object.fromEntries(Object.entries(tokens).map(([t, tok]) => [tok, t])),
        bucket: uniqueName("e2e"),
        amqpNamespace: uniqueName("e2e"),
        jobsBucket: uniqueName("jobs"),
        logLevel: process.env.DOCFLOW_TEST_LOG_LEVEL ?? "info",
      },
    ),
    DOCFLOW_HOST: "127.0.0.1",
    DOCFLOW_PORT: String(port),
    DOCFLOW_PROCESSOR_HOST: "127.0.0.1",
    DOCFLOW_PROCESSOR_PORT: "0",
    DOCFLOW_WORK_DIR: join(dataDir, "work"),
    DOCFLOW_DELIVERY_LIMIT: "2",
    ...(options.web ? { DOCFLOW_WEB_DIR: WEB_DIST } : {}),
    ...options.env,
  };
  const processors = options.processors ?? 1;
  const children: ServiceProcess[] = [launchService("gateway", { env })];
  for (let i = 0; i < processors; i++) children.push(launchService("processor", { env }));
  const logs = () => children.map((c) => c.logs()).join("");
  const stop = () => stopAll(children, { graceMs: 15_000 });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await Promise.all([children[0]!.waitReady(`${baseUrl}/readyz`), ...children.slice(1).map((p) => p.waitForLine((l) => l.includes('"msg":"processor consuming"'), "that it is consuming"))]);
  } catch (err) {
    await stop();
    throw new Error(`the stack did not start: ${(err as Error).message}\n--- all output:\n${logs()}`, { cause: err });
  }
  const pids = { gateway: children[0]!.pid, processor: children[1]?.pid ?? 0 };
  return { baseUrl, tokens, env, logs, pids, stop };
}

/** The metrics port of the stack's first processor (it picks a free one and logs it). */
export function processorPort(stack: Stack): number {
  const line = stack
    .logs()
    .split("\n")
    .find((l) => l.includes('"msg":"processor consuming"'));
  const port = line ? (JSON.parse(line) as { port?: number }).port : undefined;
  if (!port) throw new Error("the processor did not log its port");
  return port;
}
