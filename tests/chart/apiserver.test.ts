/**
 * The chart against a real Kubernetes API server (envtest style: etcd + kube-apiserver on loopback,
 * no kubelet, built by scripts/install-envtest.sh): the KEDA and Prometheus Operator CRDs
 * (tests/chart/fixtures/crds) are applied, then `helm install` runs for every ci/*-values.yaml, so
 * the API server itself accepts every object the chart makes — Deployments, StatefulSets, RBAC,
 * the ValidatingAdmissionPolicy (its CEL compiles), the ScaledObject — and RBAC grants the
 * processor what it needs and nothing more. Pods are never scheduled (no kubelet).
 *
 * Binaries missing: every test fails, saying to run `bash scripts/install-envtest.sh` (no skip).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHART, CI_VALUES, HELM, ROOT, parseObjects } from "./support.ts";

const BIN = join(process.env["DOCFLOW_CACHE_DIR"] ?? join(homedir(), ".cache", "docflow"), "bin");
const ETCD = join(BIN, "etcd");
const KUBE_APISERVER = join(BIN, "kube-apiserver");
const CRDS = join(ROOT, "tests", "chart", "fixtures", "crds");
const TOKEN = "docflow-test-admin-token";
const START_TIMEOUT_MS = 150_000;

interface Cluster {
  dir: string;
  kubeconfig: string;
  server: string;
  processes: ChildProcess[];
  logs: string[];
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}

function tail(file: string, lines = 30): string {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").slice(-lines).join("\n") : "(no log)";
}

function start(cluster: Cluster, name: string, command: string, args: string[]): ChildProcess {
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

function kubectl(cluster: Cluster, args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const result = spawnSync("kubectl", ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`kubectl is needed for the API server tests: ${result.error.message}`);
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

function helmIn(cluster: Cluster, args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(HELM, [...args, "--kubeconfig", cluster.kubeconfig], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

async function startCluster(): Promise<Cluster> {
  const missing = [ETCD, KUBE_APISERVER].filter((path) => !existsSync(path));
  if (missing.length > 0) throw new Error(`missing ${missing.join(" and ")}: run \`bash scripts/install-envtest.sh\` (builds kube-apiserver and etcd from the Go module proxy)`);
  const dir = mkdtempSync(join(tmpdir(), "docflow-apiserver-"));
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const cluster: Cluster = { dir, kubeconfig: join(dir, "kubeconfig"), server: `https://127.0.0.1:${apiPort}`, processes: [], logs: [] };

  start(cluster, "etcd", ETCD, [
    "--name=default", `--data-dir=${join(dir, "etcd")}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`, `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
    "--unsafe-no-fsync=true", "--log-level=warn",
  ]);

  // Service account token signing keys, and one static admin token (system:masters).
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
  writeFileSync(join(dir, "sa.pub"), publicKey);
  writeFileSync(join(dir, "sa.key"), privateKey, { mode: 0o600 });
  writeFileSync(join(dir, "tokens.csv"), `${TOKEN},admin,admin,"system:masters"\n`, { mode: 0o600 });
  start(cluster, "kube-apiserver", KUBE_APISERVER, [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", `--secure-port=${apiPort}`,
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
      `users: [{name: admin, user: {token: ${TOKEN}}}]`,
      "contexts: [{name: envtest, context: {cluster: envtest, user: admin}}]",
      "current-context: envtest",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );

  try {
    await waitReady(cluster);
  } catch (err) {
    await stopCluster(cluster);
    throw err;
  }
  return cluster;
}

async function waitReady(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const exited = cluster.processes.find((p) => p.exitCode !== null);
    if (exited) throw new Error(`${exited === cluster.processes[0] ? "etcd" : "kube-apiserver"} exited:\n${cluster.logs.map((l) => `${basename(l)}:\n${tail(l)}`).join("\n")}`);
    if (kubectl(cluster, ["get", "--raw=/readyz"]).stdout.trim() === "ok") break;
    if (Date.now() > deadline) throw new Error(`the API server was not ready within ${START_TIMEOUT_MS / 1000} s:\n${tail(join(cluster.dir, "kube-apiserver.log"))}`);
    await sleep(500);
  }
}

async function stopCluster(cluster: Cluster): Promise<void> {
  for (const child of [...cluster.processes].reverse()) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
  }
  rmSync(cluster.dir, { recursive: true, force: true });
}

/**
 * A merge patch of a pod, as the processor's ServiceAccount from inside pod `asPod` (impersonated
 * with the `authentication.kubernetes.io/pod-name` extra that a bound token carries).
 */
async function patchPodAs(cluster: Cluster, namespace: string, pod: string, asPod: string, patch: unknown): Promise<{ status: number; body: string }> {
  const headers = {
    Authorization: `Bearer ${TOKEN}`,
    "Content-Type": "application/merge-patch+json",
    "Impersonate-User": `system:serviceaccount:${namespace}:docflow-processor`,
    "Impersonate-Extra-authentication.kubernetes.io%2fpod-name": asPod,
  };
  return new Promise((done, reject) => {
    const req = request(`${cluster.server}/api/v1/namespaces/${namespace}/pods/${pod}`, { method: "PATCH", headers, rejectUnauthorized: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => done({ status: res.statusCode ?? 0, body }));
    });
    req.once("error", reject);
    req.end(JSON.stringify(patch));
  });
}

/** Namespace of one ci values file's release: `ci-<name>` (`ci-keda` for keda-values.yaml). */
const namespaceOf = (file: string) => `ci-${basename(file).replace(/-values\.yaml$/, "")}`;

describe("a real API server (kube-apiserver + etcd)", () => {
  let cluster: Cluster | undefined;
  let startError: unknown;

  beforeAll(async () => {
    try {
      cluster = await startCluster();
    } catch (err) {
      startError = err;
    }
  }, START_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    if (cluster) await stopCluster(cluster);
  }, 60_000);

  /** The running cluster, or the reason it is not running (so each test fails with it). */
  function running(): Cluster {
    if (!cluster) throw startError instanceof Error ? startError : new Error(String(startError));
    return cluster;
  }

  it("reports the Kubernetes version the chart requires, and accepts the KEDA and Prometheus Operator CRDs", () => {
    const c = running();
    const version = JSON.parse(kubectl(c, ["get", "--raw=/version"]).stdout) as { major: string; minor: string; gitVersion: string };
    expect(Number(version.minor), version.gitVersion).toBeGreaterThanOrEqual(30);
    for (const file of ["keda.yaml", "prometheus-operator.yaml"]) {
      const applied = kubectl(c, ["apply", "-f", join(CRDS, file)]);
      expect(applied.stderr).toBe("");
      expect(applied.status).toBe(0);
    }
    const established = kubectl(c, ["wait", "--for=condition=Established", "--timeout=60s", "crd/scaledobjects.keda.sh", "crd/triggerauthentications.keda.sh", "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"]);
    expect(established.stderr).toBe("");
    expect(established.status).toBe(0);
  }, 90_000);

  it.each(CI_VALUES.map((file) => [basename(file), file]))("accepts every object of helm install with %s", (_name, file) => {
    const c = running();
    const namespace = namespaceOf(file);
    const install = helmIn(c, ["install", "docflow", CHART, "--namespace", namespace, "--create-namespace", "-f", file, "--timeout", "2m"]);
    expect(install.stderr.replace(/^WARNING: .*\n/gm, "")).toBe("");
    expect(install.status).toBe(0);
    // Every object of the release's manifest is stored by the API server as rendered.
    const manifest = helmIn(c, ["get", "manifest", "docflow", "--namespace", namespace]);
    expect(manifest.status).toBe(0);
    const rendered = parseObjects(manifest.stdout);
    expect(rendered.length).toBeGreaterThan(5);
    const stored = kubectl(c, ["get", "--namespace", namespace, "-f", "-", "-o", "json"], manifest.stdout);
    expect(stored.stderr).toBe("");
    const items = (JSON.parse(stored.stdout) as { items?: { kind: string; metadata: { name: string } }[]; kind: string; metadata: { name: string } });
    const storedNames = (items.items ?? [items]).map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(storedNames).toEqual(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort());
  }, 180_000);

  it("reports a field the API server does not know (so the installs above, with an empty stderr, had none)", () => {
    const c = running();
    // nodeAffinity's contents pass the chart's schema untouched: a typo there reaches the API server.
    const install = helmIn(c, ["install", "docflow", CHART, "--namespace", "unknown-field", "--create-namespace", "--set-json", 'gateway.affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecutionn":{}}}']);
    expect(install.status).toBe(0);
    expect(install.stderr).toMatch(/Warning: unknown field \W*spec\.template\.spec\.affinity\.nodeAffinity\.requiredDuringSchedulingIgnoredDuringExecutionn/);
  }, 60_000);

  it("accepts every object of helm install with values-evaluation.yaml (the documented evaluation install)", () => {
    const c = running();
    // Its pre-install hook, the Job that generates NATS' auth material, can never run without a
    // kubelet (tests/cluster/ runs it on a real node): install without hooks, and have the API
    // server check the hook's objects by a server-side dry run.
    const install = helmIn(c, ["install", "docflow", CHART, "--namespace", "evaluation", "--create-namespace", "--no-hooks", "-f", join(CHART, "values-evaluation.yaml")]);
    expect(install.stderr.replace(/^WARNING: .*\n/gm, "")).toBe("");
    expect(install.status).toBe(0);
    const hook = helmIn(c, ["template", "docflow", CHART, "--namespace", "evaluation", "-f", join(CHART, "values-evaluation.yaml"), "--show-only", "templates/evaluation-nats-auth.yaml"]);
    expect(hook.status).toBe(0);
    expect(parseObjects(hook.stdout).map((o) => o.kind).sort()).toEqual(["Job", "NetworkPolicy", "Role", "RoleBinding", "ServiceAccount"]);
    const dryRun = kubectl(c, ["apply", "--namespace", "evaluation", "--dry-run=server", "-f", "-"], hook.stdout);
    expect(dryRun.stderr).toBe("");
    expect(dryRun.status).toBe(0);
    expect(install.stdout).toContain("EVALUATION dependencies are running in this release");
    const statefulSets = kubectl(c, ["get", "statefulsets", "--namespace", "evaluation", "-o", "name"]);
    expect(statefulSets.stdout.trim().split("\n").sort()).toEqual(["statefulset.apps/docflow-nats", "statefulset.apps/docflow-rabbitmq", "statefulset.apps/docflow-s3"]);
  }, 120_000);

  it("lets the processor's ServiceAccount get and patch pods of its namespace, and nothing else", () => {
    const c = running();
    const namespace = namespaceOf(CI_VALUES.find((f) => basename(f) === "default-values.yaml") ?? "");
    const as = `--as=system:serviceaccount:${namespace}:docflow-processor`;
    const can = (args: string[], ns = namespace) => kubectl(c, ["auth", "can-i", ...args, "--namespace", ns, as]).stdout.trim();
    expect(can(["patch", "pods"])).toBe("yes");
    expect(can(["get", "pods"])).toBe("yes");
    for (const args of [["list", "pods"], ["watch", "pods"], ["delete", "pods"], ["create", "pods"], ["get", "secrets"], ["patch", "deployments"], ["patch", "pods", "--subresource=status"], ["create", "pods", "--subresource=eviction"]]) expect(can(args), args.join(" ")).toBe("no");
    expect(can(["patch", "pods"], "kube-system"), "another namespace").toBe("no");
    // The gateway's and web's ServiceAccounts get nothing at all.
    for (const sa of ["docflow-gateway", "docflow-web"]) expect(kubectl(c, ["auth", "can-i", "get", "pods", "--namespace", namespace, `--as=system:serviceaccount:${namespace}:${sa}`]).stdout.trim(), sa).toBe("no");
  }, 60_000);

  it("enforces processor.rbac.admissionPolicy: a processor patches only its own pod, and only its deletion cost", async () => {
    const c = running();
    const namespace = namespaceOf(CI_VALUES.find((f) => basename(f) === "production-values.yaml") ?? "");
    for (const name of ["processor-a", "processor-b"]) {
      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels: { app: "processor" } }, spec: { serviceAccountName: "docflow-processor", containers: [{ name: "processor", image: "processor:test" }] } };
      const created = kubectl(c, ["create", "-f", "-"], JSON.stringify(pod));
      expect(created.stderr).toBe("");
    }
    const cost = (value: string) => ({ metadata: { annotations: { "controller.kubernetes.io/pod-deletion-cost": value } } });
    // The policy takes effect once the API server has loaded it: retry the first denial briefly.
    let other = await patchPodAs(c, namespace, "processor-b", "processor-a", cost("1"));
    for (let i = 0; i < 40 && other.status < 400; i++) {
      await sleep(250);
      other = await patchPodAs(c, namespace, "processor-b", "processor-a", cost("1"));
    }
    expect(other.status, other.body).toBeGreaterThanOrEqual(400);
    expect(other.body).toContain("the processor may patch only its own pod");
    const own = await patchPodAs(c, namespace, "processor-a", "processor-a", cost("-5"));
    expect(own.status, own.body).toBe(200);
    expect(JSON.parse(own.body).metadata.annotations["controller.kubernetes.io/pod-deletion-cost"]).toBe("-5");
    const label = await patchPodAs(c, namespace, "processor-a", "processor-a", { metadata: { labels: { app: "hijacked" } } });
    expect(label.status).toBeGreaterThanOrEqual(400);
    expect(label.body).toContain("the processor may change only its pod-deletion-cost annotation");
  }, 60_000);

  it("keeps the evaluation credentials across helm upgrade, uninstall and reinstall (lookup of the stored Secret)", () => {
    const c = running();
    const file = CI_VALUES.find((f) => basename(f) === "evaluation-values.yaml");
    expect(file).toBeDefined();
    const namespace = namespaceOf(file ?? "");
    const read = () => kubectl(c, ["get", "secret", "docflow-evaluation", "--namespace", namespace, "-o", "jsonpath={.data}"]).stdout;
    const before = read();
    expect(JSON.parse(before)["rabbitmq-password"]).toBeTruthy();
    const upgrade = helmIn(c, ["upgrade", "docflow", CHART, "--namespace", namespace, "-f", file ?? "", "--set", "processor.replicaCount=2"]);
    expect(upgrade.stderr.replace(/^WARNING: .*\n/gm, "")).toBe("");
    expect(upgrade.status).toBe(0);
    expect(read()).toBe(before);
    // helm.sh/resource-policy: keep — an uninstall leaves it (retained volumes stay readable), a reinstall adopts it.
    expect(helmIn(c, ["uninstall", "docflow", "--namespace", namespace]).status).toBe(0);
    expect(read()).toBe(before);
    const reinstall = helmIn(c, ["install", "docflow", CHART, "--namespace", namespace, "-f", file ?? ""]);
    expect(reinstall.stderr.replace(/^WARNING: .*\n/gm, "")).toBe("");
    expect(reinstall.status).toBe(0);
    expect(read()).toBe(before);
  }, 120_000);
});
