/**
 * The chart against a real Kubernetes API server (envtest style: etcd + kube-apiserver on loopback,
 * no kubelet, built by scripts/install-envtest.sh): the KEDA and Prometheus Operator CRDs
 * (tests/deploy/fixtures/crds) are applied, then `helm install` runs for every ci/*-values.yaml, so
 * the API server itself accepts every object the chart makes — Deployments, StatefulSets, RBAC,
 * the ValidatingAdmissionPolicy (its CEL compiles), the ScaledObject, the ProcessorPool CRD of the
 * chart's crds/ with its CEL rules and the PodTemplate and ProcessorPools on it — and RBAC grants
 * the processor and the operator what they need and nothing more. Pods are never scheduled (no kubelet).
 *
 * Binaries missing: every test fails, saying to run `bash scripts/install-envtest.sh` (no skip).
 */
import { spawnSync } from "node:child_process";
import { request } from "node:https";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN as TOKEN, START_TIMEOUT_MS, kubectl, startApiServer as startCluster, stopApiServer as stopCluster, type ApiServer as Cluster } from "../support/apiserver.ts";
import { CHART, CI_VALUES, HELM, ROOT, parseObjects } from "./support.ts";

const CRDS = join(ROOT, "tests", "deploy", "fixtures", "crds");

function helmIn(cluster: Cluster, args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(HELM, [...args, "--kubeconfig", cluster.kubeconfig], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

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
    const established = kubectl(c, [
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/scaledobjects.keda.sh",
      "crd/triggerauthentications.keda.sh",
      "crd/servicemonitors.monitoring.coreos.com",
      "crd/prometheusrules.monitoring.coreos.com",
    ]);
    expect(established.stderr).toBe("");
    expect(established.status).toBe(0);
  }, 90_000);

  it.each(CI_VALUES.map((file) => [basename(file), file]))(
    "accepts every object of helm install with %s",
    (_name, file) => {
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
      const items = JSON.parse(stored.stdout) as { items?: { kind: string; metadata: { name: string } }[]; kind: string; metadata: { name: string } };
      const storedNames = (items.items ?? [items]).map((o) => `${o.kind}/${o.metadata.name}`).sort();
      expect(storedNames).toEqual(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort());
    },
    180_000,
  );

  it("reports a field the API server does not know (so the installs above, with an empty stderr, had none)", () => {
    const c = running();
    // nodeAffinity's contents pass the chart's schema untouched: a typo there reaches the API server.
    const install = helmIn(c, [
      "install",
      "docflow",
      CHART,
      "--namespace",
      "unknown-field",
      "--create-namespace",
      "--set-json",
      'gateway.affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecutionn":{}}}',
    ]);
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
    expect(
      parseObjects(hook.stdout)
        .map((o) => o.kind)
        .sort(),
    ).toEqual(["Job", "NetworkPolicy", "Role", "RoleBinding", "ServiceAccount"]);
    const dryRun = kubectl(c, ["apply", "--namespace", "evaluation", "--dry-run=server", "-f", "-"], hook.stdout);
    expect(dryRun.stderr).toBe("");
    expect(dryRun.status).toBe(0);
    expect(install.stdout).toContain("EVALUATION dependencies are running in this release");
    const statefulSets = kubectl(c, ["get", "statefulsets", "--namespace", "evaluation", "-o", "name"]);
    expect(statefulSets.stdout.trim().split("\n").sort()).toEqual(["statefulset.apps/docflow-nats", "statefulset.apps/docflow-rabbitmq", "statefulset.apps/docflow-s3"]);
  }, 120_000);

  it("gives the services' ServiceAccounts nothing by default, and the processor's only get and patch on pods with processor.rbac.create", () => {
    const c = running();
    const byDefault = namespaceOf(CI_VALUES.find((f) => basename(f) === "default-values.yaml") ?? "");
    // Processors need no API with the operator (it sets their deletion cost): none of the
    // services' ServiceAccounts may even read a pod.
    for (const sa of ["docflow-gateway", "docflow-processor", "docflow-web"]) {
      expect(kubectl(c, ["auth", "can-i", "get", "pods", "--namespace", byDefault, `--as=system:serviceaccount:${byDefault}:${sa}`]).stdout.trim(), sa).toBe("no");
    }
    // ci/production-values.yaml turns the processor's RBAC on: get and patch pods, nothing else.
    const namespace = namespaceOf(CI_VALUES.find((f) => basename(f) === "production-values.yaml") ?? "");
    const as = `--as=system:serviceaccount:${namespace}:docflow-processor`;
    const can = (args: string[], ns = namespace) => kubectl(c, ["auth", "can-i", ...args, "--namespace", ns, as]).stdout.trim();
    expect(can(["patch", "pods"])).toBe("yes");
    expect(can(["get", "pods"])).toBe("yes");
    for (const args of [
      ["list", "pods"],
      ["watch", "pods"],
      ["delete", "pods"],
      ["create", "pods"],
      ["get", "secrets"],
      ["patch", "deployments"],
      ["patch", "pods", "--subresource=status"],
      ["create", "pods", "--subresource=eviction"],
    ])
      expect(can(args), args.join(" ")).toBe("no");
    expect(can(["patch", "pods"], "kube-system"), "another namespace").toBe("no");
  }, 60_000);

  it("installs the ProcessorPool CRD from the chart's crds/ and stores the release's PodTemplate and ProcessorPools as rendered", () => {
    const c = running();
    const established = kubectl(c, ["wait", "--for=condition=Established", "--timeout=60s", "crd/processorpools.docflow.io"]);
    expect(established.stderr).toBe("");
    expect(established.status).toBe(0);
    const crd = JSON.parse(kubectl(c, ["get", "crd", "processorpools.docflow.io", "-o", "json"]).stdout) as { metadata: { labels?: Record<string, string> }; spec: { versions: { name: string }[] } };
    expect(crd.spec.versions.map((v) => v.name)).toEqual(["v1alpha1"]);
    // Defaults: one pool on the PodTemplate of the same name. production-values.yaml: conversions in a pool of their own.
    for (const [file, pools] of [
      ["default-values.yaml", ["docflow-processor"]],
      ["production-values.yaml", ["docflow-processor", "docflow-processor-office"]],
    ] as const) {
      const namespace = namespaceOf(file);
      const stored = JSON.parse(kubectl(c, ["get", "processorpools", "--namespace", namespace, "-o", "json"]).stdout) as {
        items: { metadata: { name: string }; spec: { template: { podTemplateName: string }; stages: string[]; paused: boolean } }[];
      };
      expect(stored.items.map((p) => p.metadata.name).sort(), file).toEqual([...pools]);
      for (const pool of stored.items) {
        expect(pool.spec.template.podTemplateName).toBe("docflow-processor");
        expect(pool.spec.paused, "the CRD's defaults apply").toBe(false);
      }
      expect(kubectl(c, ["get", "podtemplate", "docflow-processor", "--namespace", namespace, "-o", "name"]).stdout.trim()).toBe("podtemplate/docflow-processor");
    }
    // The printer columns an SRE reads.
    const table = kubectl(c, ["get", "processorpools", "--namespace", namespaceOf("default-values.yaml")]);
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+READY\s+BUSY\s+BACKLOG\s+DESIRED\s+AGE/);
  }, 60_000);

  it("refuses a ProcessorPool that breaks the CRD's rules, with the CEL message", () => {
    const c = running();
    const namespace = namespaceOf("default-values.yaml");
    const pool = (name: string, spec: Record<string, unknown>) =>
      JSON.stringify({ apiVersion: "docflow.io/v1alpha1", kind: "ProcessorPool", metadata: { name, namespace }, spec: { template: { podTemplateName: "docflow-processor" }, ...spec } });
    const inverted = kubectl(c, ["create", "-f", "-"], pool("inverted", { minReplicas: 5, maxReplicas: 2 }));
    expect(inverted.status).not.toBe(0);
    expect(inverted.stderr).toContain("minReplicas must not exceed maxReplicas");
    const scaled = kubectl(c, ["create", "-f", "-"], pool("overscaled", { maxReplicas: 2, replicas: 3 }));
    expect(scaled.status).not.toBe(0);
    expect(scaled.stderr).toContain("replicas (kubectl scale, an HPA) must not exceed maxReplicas");
    const stagesByEnv = kubectl(c, ["create", "-f", "-"], pool("stages-by-env", { template: { podTemplateName: "docflow-processor", env: [{ name: "DOCFLOW_PROCESSOR_STAGES", value: "render" }] } }));
    expect(stagesByEnv.status).not.toBe(0);
    expect(stagesByEnv.stderr).toContain("set stages and concurrency with spec.stages and spec.template.concurrency, not env");
    const stage = kubectl(c, ["create", "-f", "-"], pool("bad-stage", { stages: ["ocr"] }));
    expect(stage.status).not.toBe(0);
    expect(stage.stderr).toContain("Unsupported value");
    const fine = kubectl(c, ["create", "--dry-run=server", "-f", "-"], pool("fine", { minReplicas: 0, maxReplicas: 2, replicas: 2 }));
    expect(fine.stderr).toBe("");
    expect(fine.status).toBe(0);
  }, 60_000);

  it("gives the operator's ServiceAccount what it reads and writes in its namespace, and nothing else", () => {
    const c = running();
    const namespace = namespaceOf("default-values.yaml");
    const as = `--as=system:serviceaccount:${namespace}:docflow-operator`;
    const can = (args: string[], ns = namespace) => kubectl(c, ["auth", "can-i", ...args, "--namespace", ns, as]).stdout.trim();
    const allowed = [
      ...["get", "list", "watch"].map((verb) => [verb, "processorpools.docflow.io"]),
      ...["get", "patch"].map((verb) => [verb, "processorpools.docflow.io", "--subresource=status"]),
      ...["get", "list", "watch", "create", "patch"].map((verb) => [verb, "deployments.apps"]),
      ...["get", "list", "watch", "patch"].map((verb) => [verb, "pods"]),
      ...["get", "list", "watch"].map((verb) => [verb, "podtemplates"]),
      ["create", "leases.coordination.k8s.io"],
      ...["get", "update", "patch"].map((verb) => [verb, "leases.coordination.k8s.io/docflow-operator"]),
      ["create", "events.events.k8s.io"],
      ["patch", "events.events.k8s.io"],
      ["create", "events"],
      ["patch", "events"],
    ];
    for (const args of allowed) expect(can(args), args.join(" ")).toBe("yes");
    const refused = [
      ["delete", "pods"],
      ["create", "pods"],
      ["update", "pods"],
      ["create", "pods", "--subresource=eviction"],
      ["patch", "pods", "--subresource=status"],
      ["get", "secrets"],
      ["list", "secrets"],
      ["list", "configmaps"],
      ["create", "processorpools.docflow.io"],
      ["delete", "processorpools.docflow.io"],
      ["patch", "processorpools.docflow.io"],
      ["update", "processorpools.docflow.io"],
      ["delete", "deployments.apps"],
      ["update", "deployments.apps"],
      ["create", "podtemplates"],
      ["patch", "podtemplates"],
      ["delete", "podtemplates"],
      ["get", "leases.coordination.k8s.io/another-lease"],
      ["update", "leases.coordination.k8s.io/another-lease"],
      ["list", "leases.coordination.k8s.io"],
      ["delete", "leases.coordination.k8s.io/docflow-operator"],
      ["patch", "deployments.apps", "--subresource=scale"],
      ["create", "services"],
      ["create", "roles.rbac.authorization.k8s.io"],
      ["get", "events"],
    ];
    for (const args of refused) expect(can(args), args.join(" ")).toBe("no");
    // Nothing in another namespace, nothing cluster-scoped.
    for (const args of [
      ["list", "pods"],
      ["patch", "deployments.apps"],
      ["list", "processorpools.docflow.io"],
      ["create", "leases.coordination.k8s.io"],
    ])
      expect(can(args, "kube-system"), `${args.join(" ")} in kube-system`).toBe("no");
    expect(kubectl(c, ["auth", "can-i", "list", "pods", "--all-namespaces", as]).stdout.trim()).toBe("no");
    for (const args of [
      ["get", "customresourcedefinitions.apiextensions.k8s.io"],
      ["list", "nodes"],
      ["list", "namespaces"],
    ])
      expect(kubectl(c, ["auth", "can-i", ...args, as]).stdout.trim(), args.join(" ")).toBe("no");
  }, 60_000);

  it("enforces processor.rbac.admissionPolicy: a processor patches only its own pod, and only its deletion cost", async () => {
    const c = running();
    const namespace = namespaceOf(CI_VALUES.find((f) => basename(f) === "production-values.yaml") ?? "");
    for (const name of ["processor-a", "processor-b"]) {
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace, labels: { app: "processor" } },
        spec: { serviceAccountName: "docflow-processor", containers: [{ name: "processor", image: "processor:test" }] },
      };
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
