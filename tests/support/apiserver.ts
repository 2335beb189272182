/**
 * A real Kubernetes API server for tests (envtest style: etcd + kube-apiserver on loopback, no
 * kubelet, no controller-manager), from the binaries scripts/install-envtest.sh builds into
 * ~/.cache/docflow/bin. Missing binaries fail the caller, saying how to build them (no skip).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./stack.ts";

const BIN = join(process.env["DOCFLOW_CACHE_DIR"] ?? join(homedir(), ".cache", "docflow"), "bin");
const ETCD = join(BIN, "etcd");
const KUBE_APISERVER = join(BIN, "kube-apiserver");
/** A static token of system:masters. */
export const ADMIN_TOKEN = "docflow-test-admin-token";
export const START_TIMEOUT_MS = 150_000;

export interface ApiServer {
  dir: string;
  kubeconfig: string;
  server: string;
  processes: ChildProcess[];
  logs: string[];
}

export function tail(file: string, lines = 30): string {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").slice(-lines).join("\n") : "(no log)";
}

function start(cluster: ApiServer, name: string, command: string, args: string[]): ChildProcess {
  const log = join(cluster.dir, `${name}.log`);
  writeFileSync(log, "");
  const child = spawn("sh", ["-c", `exec "$0" "$@" >>"${log}" 2>&1`, command, ...args], { stdio: "ignore" });
  cluster.processes.push(child);
  cluster.logs.push(log);
  // Never outlive the test process (a killed vitest must not leave etcd running).
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  child.once("exit", () => process.removeListener("exit", reap));
  return child;
}

export function kubectl(cluster: ApiServer, args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const result = spawnSync("kubectl", ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`kubectl is needed for the API server tests: ${result.error.message}`);
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

export async function startApiServer(): Promise<ApiServer> {
  const missing = [ETCD, KUBE_APISERVER].filter((path) => !existsSync(path));
  if (missing.length > 0) throw new Error(`missing ${missing.join(" and ")}: run \`bash scripts/install-envtest.sh\` (builds kube-apiserver and etcd from the Go module proxy)`);
  const dir = mkdtempSync(join(tmpdir(), "docflow-apiserver-"));
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const cluster: ApiServer = { dir, kubeconfig: join(dir, "kubeconfig"), server: `https://127.0.0.1:${apiPort}`, processes: [], logs: [] };

  start(cluster, "etcd", ETCD, [
    "--name=default",
    `--data-dir=${join(dir, "etcd")}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
    "--unsafe-no-fsync=true",
    "--log-level=warn",
  ]);

  // Service account token signing keys, and one static admin token (system:masters).
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
  writeFileSync(join(dir, "sa.pub"), publicKey);
  writeFileSync(join(dir, "sa.key"), privateKey, { mode: 0o600 });
  writeFileSync(join(dir, "tokens.csv"), `${ADMIN_TOKEN},admin,admin,"system:masters"\n`, { mode: 0o600 });
  start(cluster, "kube-apiserver", KUBE_APISERVER, [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--cert-dir=${join(dir, "certs")}`, // a self-signed serving certificate is generated there
    `--token-auth-file=${join(dir, "tokens.csv")}`,
    "--authorization-mode=RBAC",
    `--service-account-issuer=https://127.0.0.1:${apiPort}`,
    `--service-account-key-file=${join(dir, "sa.pub")}`,
    `--service-account-signing-key-file=${join(dir, "sa.key")}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    "--allow-privileged=false",
    "--endpoint-reconciler-type=none", // no kubernetes Service endpoints on a loopback address
  ]);

  writeFileSync(
    cluster.kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{name: envtest, cluster: {server: 'https://127.0.0.1:" + apiPort + "', insecure-skip-tls-verify: true}}]",
      `users: [{name: admin, user: {token: ${ADMIN_TOKEN}}}]`,
      "contexts: [{name: envtest, context: {cluster: envtest, user: admin}}]",
      "current-context: envtest",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );

  try {
    await waitReady(cluster);
  } catch (err) {
    await stopApiServer(cluster);
    throw err;
  }
  return cluster;
}

async function waitReady(cluster: ApiServer): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const exited = cluster.processes.find((p) => p.exitCode !== null);
    if (exited) throw new Error(`${exited === cluster.processes[0] ? "etcd" : "kube-apiserver"} exited:\n${cluster.logs.map((l) => `${basename(l)}:\n${tail(l)}`).join("\n")}`);
    if (kubectl(cluster, ["get", "--raw=/readyz"]).stdout.trim() === "ok") break;
    if (Date.now() > deadline) throw new Error(`the API server was not ready within ${START_TIMEOUT_MS / 1000} s:\n${tail(join(cluster.dir, "kube-apiserver.log"))}`);
    await sleep(500);
  }
}

export async function stopApiServer(cluster: ApiServer): Promise<void> {
  for (const child of [...cluster.processes].reverse()) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
  }
  rmSync(cluster.dir, { recursive: true, force: true });
}
