/**
 * Generates docflow's NATS auth material (decentralised auth, @docflow/infra/nats-auth) for a
 * Kubernetes install, into a directory:
 *
 *   node charts/docflow/scripts/nats-auth.ts --out <dir> [--namespace docflow] [--secret docflow-nats]
 *
 *   <dir>/nats-secret.yaml        Secret for the chart (keys `nats.creds`: the services' credentials
 *                                 file; `signing-seed`: the account signing key the gateway signs
 *                                 browser credentials with; `nats-server-auth.conf`: the server's auth
 *                                 configuration, which the chart's evaluation NATS includes). Apply
 *                                 it, keep it out of git.
 *   <dir>/nats-server-auth.conf   operator, system account and resolver lines for nats-server
 *                                 (JWTs only, no seeds): include it in the server's configuration.
 *   <dir>/values-nats.yaml        chart values that use the Secret (add realtime.wsUrl yourself).
 *
 * Every run creates a new operator and accounts: the server configuration and the Secret belong
 * together. Files are written with mode 0600.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { generateNatsAuth, type NatsAuth } from "@docflow/infra/nats-auth";

export interface NatsAuthFiles {
  secret: string;
  serverConfig: string;
  values: string;
}

/** The three files' contents for given auth material. */
export function natsAuthFiles(auth: NatsAuth, options: { namespace: string; secretName: string }): NatsAuthFiles {
  const secret = stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: options.secretName, namespace: options.namespace, labels: { "app.kubernetes.io/part-of": "docflow" } },
    type: "Opaque",
    stringData: { "nats.creds": auth.serviceCreds, "signing-seed": auth.signingSeed, account: auth.account, "nats-server-auth.conf": `${auth.serverConfig}\n` },
  });
  const values = stringify({
    nats: { existingSecret: options.secretName, existingSecretCredsKey: "nats.creds" },
    realtime: {
      enabled: true,
      wsUrl: "wss://CHANGE-ME (the NATS WebSocket URL as browsers reach it)",
      account: auth.account,
      existingSecret: options.secretName,
      existingSecretSeedKey: "signing-seed",
    },
  });
  return { secret, serverConfig: `${auth.serverConfig}\n`, values };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      namespace: { type: "string", default: "docflow" },
      secret: { type: "string", default: "docflow-nats" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || !values.out) {
    process.stderr.write("usage: node charts/docflow/scripts/nats-auth.ts --out <dir> [--namespace docflow] [--secret docflow-nats]\n");
    process.exit(values.help ? 0 : 2);
  }
  const dir = resolve(values.out);
  const files = natsAuthFiles(await generateNatsAuth(), { namespace: values.namespace, secretName: values.secret });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "nats-secret.yaml"), files.secret, { mode: 0o600 });
  await writeFile(join(dir, "nats-server-auth.conf"), files.serverConfig, { mode: 0o600 });
  await writeFile(join(dir, "values-nats.yaml"), files.values, { mode: 0o600 });
  process.stdout.write(
    [
      `wrote ${dir}/nats-secret.yaml, nats-server-auth.conf, values-nats.yaml`,
      `  kubectl -n ${values.namespace} apply -f ${dir}/nats-secret.yaml`,
      "  include nats-server-auth.conf in nats-server's configuration (JetStream and websocket enabled)",
      `  helm upgrade --install docflow charts/docflow -n ${values.namespace} -f ${dir}/values-nats.yaml --set realtime.wsUrl=wss://...`,
      "",
    ].join("\n"),
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
