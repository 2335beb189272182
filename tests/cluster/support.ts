import { execFile, spawn } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { jobsClient, type JobsClient } from "../support/jobs-api.ts";
import { eventually as poll } from "../support/poll.ts";

/**
 * The cluster tests' view of a docflow install on a real Kubernetes cluster: the local one of
 * `scripts/cluster.sh` (which scripts/test.ts starts and deploys once per run), or any cluster
 * DOCFLOW_TEST_KUBECONFIG points at, with docflow installed from this chart.
 *
 * Env (scripts/test.ts sets them for the local cluster):
 *   DOCFLOW_TEST_KUBECONFIG           kubeconfig of the cluster
 *   DOCFLOW_TEST_CLUSTER_URL          the web app's URL through the ingress (http://127.0.0.1:8480)
 *   DOCFLOW_TEST_CLUSTER_NAMESPACE    docflow's namespace (docflow); the release is `docflow`
 *   DOCFLOW_TEST_CLUSTER_VALUES       the values files of the install, space-separated (the
 *                                     upgrade scenarios reinstall with them plus their change)
 * Everything is asserted the way an SRE would check it: kubectl and helm against the live objects.
 */

export const ROOT = resolve(import.meta.dirname, "../..");
export const CHART = resolve(ROOT, "charts/docflow");
const run = promisify(execFile);

export interface ClusterTarget {
  kubeconfig: string;
  namespace: string;
  release: string;
  baseUrl: string;
  values: string[];
}

export function target(): ClusterTarget {
  const kubeconfig = process.env.DOCFLOW_TEST_KUBECONFIG;
  const baseUrl = process.env.DOCFLOW_TEST_CLUSTER_URL;
  if (!kubeconfig || !baseUrl) {
    throw new Error("DOCFLOW_TEST_KUBECONFIG and DOCFLOW_TEST_CLUSTER_URL must be set: `npm test` starts the local cluster (scripts/cluster.sh) and sets them");
  }
  return {
    kubeconfig,
    baseUrl: baseUrl.replace(/\/$/, ""),
    namespace: process.env.DOCFLOW_TEST_CLUSTER_NAMESPACE ?? "docflow",
    release: "docflow",
    values: (process.env.DOCFLOW_TEST_CLUSTER_VALUES ?? "").split(/\s+/).filter(Boolean),
  };
}

/** kubectl in docflow's namespace; resolves with stdout, rejects with stderr. */
export async function kubectl(args: string[], options: { namespace?: string | null; timeoutMs?: number; input?: string } = {}): Promise<string> {
  const t = target();
  const ns = options.namespace === null ? [] : ["-n", options.namespace ?? t.namespace];
  const full = ["--kubeconfig", t.kubeconfig, ...ns, ...args];
  if (options.input !== undefined) return withInput("kubectl", full, options.input, options.timeoutMs ?? 60_000);
  try {
    const { stdout } = await run("kubectl", full, { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(" ")}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

function withInput(cmd: string, args: string[], input: string, timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], timeout: timeoutMs });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`${cmd} ${args.slice(2).join(" ")}: ${err.trim()}`))));
    child.stdin.end(input);
  });
}

export async function kubectlJson<T = KubeObject>(args: string[], options: { namespace?: string | null } = {}): Promise<T> {
  return JSON.parse(await kubectl([...args, "-o", "json"], options)) as T;
}

/** helm against the cluster, in docflow's namespace. */
export async function helm(args: string[], timeoutMs = 600_000): Promise<string> {
  const t = target();
  try {
    const { stdout } = await run("helm", ["--kubeconfig", t.kubeconfig, "-n", t.namespace, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`helm ${args.join(" ")}: ${e.stderr?.trim() || e.message}\n${e.stdout ?? ""}`, { cause: err });
  }
}

/** `helm upgrade` of the release with the install's values plus `extra` (`--set` pairs), waiting for it. */
export async function upgrade(extra: string[] = [], options: { wait?: boolean } = {}): Promise<string> {
  const t = target();
  return helm(["upgrade", t.release, CHART, ...t.values.flatMap((f) => ["-f", f]), ...extra, ...(options.wait === false ? [] : ["--wait", "--timeout", "10m"])]);
}

// --- objects ---------------------------------------------------------------------------------

export interface KubeObject {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; uid?: string; deletionTimestamp?: string; generation?: number };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface Container {
  name: string;
  image: string;
  securityContext?: Record<string, unknown>;
  livenessProbe?: Record<string, unknown>;
  readinessProbe?: Record<string, unknown>;
  startupProbe?: Record<string, unknown>;
  lifecycle?: Record<string, unknown>;
}

export interface Pod extends KubeObject {
  spec: { containers: Container[]; securityContext?: Record<string, unknown>; terminationGracePeriodSeconds?: number; nodeName?: string };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; containerID?: string; state?: Record<string, unknown> }[];
  };
}

export interface List<T> {
  items: T[];
}

/** The release's pods of one component (gateway, processor, web, rabbitmq, nats, s3). */
export async function pods(component: string): Promise<Pod[]> {
  const list = await kubectlJson<List<Pod>>(["get", "pods", "-l", `app.kubernetes.io/instance=${target().release},app.kubernetes.io/component=${component}`]);
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

export function isReady(pod: Pod): boolean {
  return pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

export function restarts(pod: Pod): number {
  return (pod.status.containerStatuses ?? []).reduce((sum, c) => sum + c.restartCount, 0);
}

/** Polls `fn` every `everyMs` until it returns something other than undefined. */
/** Polls `fn` every `everyMs` until it returns a value (see tests/support/poll.ts). */
export function eventually<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 1000): Promise<T> {
  return poll(what, fn, { timeoutMs, everyMs });
}

/** The last lines of every pod of a component, for failure messages. */
export async function componentLogs(component: string, lines = 60): Promise<string> {
  try {
    return await kubectl(["logs", "-l", `app.kubernetes.io/instance=${target().release},app.kubernetes.io/component=${component}`, "--tail", String(lines), "--prefix", "--all-containers"]);
  } catch (err) {
    return `(no logs: ${String(err)})`;
  }
}

// --- the public API through the ingress ---------------------------------------------------------

/** tenant -> token, read from the release's Secret (auth.devTokens), as an operator would find them. */
export async function tokens(): Promise<Record<string, string>> {
  const t = target();
  const secret = await kubectlJson<{ data: Record<string, string> }>(["get", "secret", `${t.release}-credentials`]);
  const raw = Buffer.from(secret.data["dev-tokens"] ?? "", "base64").toString();
  const result: Record<string, string> = {};
  for (const pair of raw.split(",")) {
    const [token, tenant] = pair.split("=");
    if (token && tenant) result[tenant.trim()] = token.trim();
  }
  if (Object.keys(result).length === 0) throw new Error(`no dev-tokens in secret ${t.release}-credentials`);
  return result;
}

/** The public API through the ingress, as the holder of `token`. */
export function api(token: string): JobsClient {
  return jobsClient(target().baseUrl, token, { pollMs: 500 });
}
