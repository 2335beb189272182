/**
 * Makes sure the Secret with the evaluation NATS' operator-mode auth exists: the chart's
 * pre-install/pre-upgrade hook Job runs this in the gateway image
 * (charts/docflow/templates/evaluation-nats-auth.yaml).
 *
 * The Secret is created once and then kept: a NATS server, the services' credentials and the
 * browsers' signing key only work together, so an upgrade must never make new ones. An existing
 * Secret is left alone; a lost race with another run (409) counts as done.
 *
 * Keys: `nats.creds` (the services' credentials file), `signing-seed` (the account signing key
 * the gateway signs browser credentials with), `account` (the account's public key) and
 * `nats-server-auth.conf` (operator, system account and resolver lines for nats-server).
 *
 * Env: DOCFLOW_NATS_AUTH_SECRET (the Secret's name), DOCFLOW_POD_NAMESPACE, DOCFLOW_KUBE_TOKEN_DIR
 * (holds `token`, the service account's token), KUBERNETES_SERVICE_HOST/PORT (set by the kubelet);
 * NODE_EXTRA_CA_CERTS names the API server's certificate authority.
 * Talks to the API with fetch: one GET and at most one POST do not justify a Kubernetes client
 * library in the gateway's image.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { generateNatsAuth } from "@docflow/infra/nats-auth";

interface Settings {
  secret: string;
  namespace: string;
  api: string;
  tokenFile: string;
}

function settings(env: NodeJS.ProcessEnv): Settings {
  const missing = ["DOCFLOW_NATS_AUTH_SECRET", "DOCFLOW_POD_NAMESPACE", "KUBERNETES_SERVICE_HOST"].filter((name) => !env[name]);
  if (missing.length > 0) throw new Error(`nats-auth-secret: ${missing.join(", ")} must be set (it runs as the chart's hook Job)`);
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  return {
    secret: env.DOCFLOW_NATS_AUTH_SECRET!,
    namespace: env.DOCFLOW_POD_NAMESPACE!,
    api: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    tokenFile: join(env.DOCFLOW_KUBE_TOKEN_DIR ?? "/var/run/secrets/kubernetes.io/serviceaccount", "token"),
  };
}

async function kube(s: Settings, method: "GET" | "POST", path: string, body?: unknown): Promise<Response> {
  const token = (await readFile(s.tokenFile, "utf8")).trim();
  return fetch(`${s.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: "application/json", ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(15_000),
  });
}

/** "exists" or "created". */
export async function ensureNatsAuthSecret(env: NodeJS.ProcessEnv = process.env): Promise<"exists" | "created"> {
  const s = settings(env);
  const secrets = `/api/v1/namespaces/${encodeURIComponent(s.namespace)}/secrets`;
  const found = await kube(s, "GET", `${secrets}/${encodeURIComponent(s.secret)}`);
  if (found.ok) return "exists";
  if (found.status !== 404) throw new Error(`GET secret ${s.namespace}/${s.secret}: ${found.status} ${await found.text()}`);
  const auth = await generateNatsAuth();
  const created = await kube(s, "POST", secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: s.secret,
      namespace: s.namespace,
      labels: { "app.kubernetes.io/part-of": "docflow", "app.kubernetes.io/component": "nats-auth" },
      annotations: { "docflow.io/generated-by": "nats-auth-secret (chart hook): delete it to start over with new keys" },
    },
    type: "Opaque",
    stringData: {
      "nats.creds": auth.serviceCreds,
      "signing-seed": auth.signingSeed,
      account: auth.account,
      "nats-server-auth.conf": `${auth.serverConfig}\n`,
    },
  });
  if (created.status === 409) return "exists";
  if (!created.ok) throw new Error(`POST secret ${s.namespace}/${s.secret}: ${created.status} ${await created.text()}`);
  return "created";
}

if (import.meta.main) {
  ensureNatsAuthSecret().then(
    (result) => {
      process.stdout.write(`${JSON.stringify({ msg: `NATS auth Secret ${result}`, secret: process.env.DOCFLOW_NATS_AUTH_SECRET })}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
