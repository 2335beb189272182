/**
 * The evaluation dependencies (evaluation.enabled; charts/docflow/values-evaluation.yaml and
 * ci/evaluation-values.yaml): single-replica RabbitMQ, NATS and S3 in the release. What an SRE
 * relies on: they render only when asked, validate, run like docflow's own pods (secure context,
 * probes, resources, data volume), the gateway and processor are wired to them through the same
 * Secret the servers read, and the NetworkPolicies let exactly the needed flows through.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHART, KUBE_VERSION, VALIDATORS, asDeployment, containerEnv, find, helm, render, renderResult, workload, type K8sObject } from "./support.ts";

const EVALUATION_VALUES = join(CHART, "values-evaluation.yaml");
const CI_EVALUATION_VALUES = join(CHART, "ci", "evaluation-values.yaml");
const DEPENDENCIES = {
  rabbitmq: { port: 5672, image: "docker.io/library/rabbitmq:" },
  nats: { port: 4222, image: "docker.io/library/nats:" },
  s3: { port: 7070, image: "docker.io/versity/versitygw:" },
} as const;
type Dependency = keyof typeof DEPENDENCIES;
const NAMESPACE = "docflow";

interface PodRef {
  namespace: string;
  labels: Record<string, string>;
  /** container port name -> number */
  ports: Map<string, number>;
  name: string;
}

function podOf(objects: K8sObject[], name: string): PodRef {
  const template = objects.find((o) => o.kind === "PodTemplate" && o.metadata.name === name);
  const pod = template ? asDeployment(template) : objects.find((o) => (o.kind === "Deployment" || o.kind === "StatefulSet") && o.metadata.name === name);
  if (!pod) throw new Error(`no workload ${name}`);
  const ports = new Map<string, number>();
  for (const container of pod.spec.template.spec.containers) for (const p of container.ports ?? []) if (p.name) ports.set(p.name, p.containerPort);
  return { name, namespace: NAMESPACE, labels: pod.spec.template.metadata.labels, ports };
}

/** A pod outside the release, e.g. the ingress controller in its namespace. */
function outsider(namespace: string, labels: Record<string, string> = {}): PodRef {
  return { name: `${namespace}/pod`, namespace, labels, ports: new Map() };
}

const matches = (selector: { matchLabels?: Record<string, string> } | undefined, labels: Record<string, string>) => Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function peerMatches(peer: any, pod: PodRef, policyNamespace: string): boolean {
  if (peer.ipBlock) return false; // pods are not addressed by CIDR here
  const namespaceOk = peer.namespaceSelector ? matches(peer.namespaceSelector, { "kubernetes.io/metadata.name": pod.namespace }) : pod.namespace === policyNamespace;
  return namespaceOk && (peer.podSelector ? matches(peer.podSelector, pod.labels) : true);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function portMatches(ports: any[] | undefined, port: number, destination: PodRef): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some(
    (p: { port?: number | string; protocol?: string }) =>
      (p.protocol ?? "TCP") === "TCP" && (p.port === undefined || p.port === port || (typeof p.port === "string" && destination.ports.get(p.port) === port)),
  );
}

/**
 * Whether NetworkPolicy semantics let `from` open a TCP connection to `to` on `port`: the source's
 * egress (when some policy selects it for Egress) and the destination's ingress must both allow it.
 */
function allowed(policies: K8sObject[], from: PodRef, to: PodRef, port: number): boolean {
  const side = (pod: PodRef, type: "Ingress" | "Egress") =>
    policies.filter((p) => p.metadata.namespace === undefined && pod.namespace === NAMESPACE && matches(p.spec.podSelector, pod.labels) && (p.spec.policyTypes as string[]).includes(type));
  const egress = side(from, "Egress");
  const egressOk =
    egress.length === 0 ||
    egress.some((p) =>
      (p.spec.egress ?? []).some(
        (rule: { to?: unknown[]; ports?: unknown[] }) => (rule.to === undefined || rule.to.some((peer) => peerMatches(peer, to, NAMESPACE))) && portMatches(rule.ports, port, to),
      ),
    );
  const ingress = side(to, "Ingress");
  const ingressOk =
    ingress.length === 0 ||
    ingress.some((p) =>
      (p.spec.ingress ?? []).some(
        (rule: { from?: unknown[]; ports?: unknown[] }) => (rule.from === undefined || rule.from.some((peer) => peerMatches(peer, from, NAMESPACE))) && portMatches(rule.ports, port, to),
      ),
    );
  return egressOk && ingressOk;
}

function secretData(objects: K8sObject[], name: string): Record<string, string> {
  return find(objects, "Secret", name).stringData as Record<string, string>;
}

describe("evaluation dependencies", () => {
  it("are off by default: no StatefulSet, no evaluation Secret, the services point at the configured brokers", () => {
    const objects = render();
    expect(objects.filter((o) => o.kind === "StatefulSet")).toEqual([]);
    expect(objects.find((o) => o.metadata.name === "docflow-evaluation")).toBeUndefined();
    expect(find(objects, "ConfigMap", "docflow-config").data.DOCFLOW_NATS_URL).toBe("nats://nats:4222");
  });

  it("values-evaluation.yaml passes helm lint --strict (the ci/ files are linted by chart.test.ts)", () => {
    const result = helm(["lint", "--strict", CHART, "-f", EVALUATION_VALUES, "--kube-version", KUBE_VERSION]);
    expect(result.stderr + result.stdout).toContain("0 chart(s) failed");
    expect(result.status).toBe(0);
  });

  describe.each([
    ["values-evaluation.yaml", EVALUATION_VALUES],
    ["ci/evaluation-values.yaml", CI_EVALUATION_VALUES],
  ])("with %s", (_name, file) => {
    const objects = render({ valuesFiles: [file] });
    const persistent = file === CI_EVALUATION_VALUES;

    it("renders only objects that validate against their schema", () => {
      for (const obj of objects) {
        const validate = VALIDATORS[`${obj.apiVersion}/${obj.kind}`];
        expect(validate, `no validator for ${obj.apiVersion} ${obj.kind}`).toBeDefined();
        expect(() => validate?.(obj), `${obj.kind}/${obj.metadata.name}`).not.toThrow();
      }
    });

    it.each(Object.keys(DEPENDENCIES) as Dependency[])("runs %s as one secure pod with probes, resources and a data volume", (dep) => {
      const sts = find(objects, "StatefulSet", `docflow-${dep}`);
      expect(sts.spec.replicas).toBe(1);
      expect(sts.spec.serviceName).toBe(`docflow-${dep}-headless`);
      find(objects, "Service", `docflow-${dep}-headless`);
      const spec = sts.spec.template.spec;
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(spec.serviceAccountName).toBe(`docflow-${dep}`);
      const container = spec.containers[0];
      expect(container.image).toMatch(new RegExp(`^${DEPENDENCIES[dep].image.replace(/[.]/g, "\\.")}`));
      for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) expect(container[probe], `${dep} ${probe}`).toBeDefined();
      expect(container.resources.requests.cpu).toBeTruthy();
      expect(container.resources.requests.memory).toBeTruthy();
      expect(container.resources.limits.memory).toBeTruthy();
      expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
      const dataMount = container.volumeMounts.find((m: { name: string }) => m.name === "data");
      expect(dataMount).toBeDefined();
      if (persistent) {
        expect(sts.spec.volumeClaimTemplates[0].metadata.name).toBe("data");
        expect(sts.spec.volumeClaimTemplates[0].spec.storageClassName).toBe("standard");
        expect(spec.volumes.find((v: { name: string }) => v.name === "data")).toBeUndefined();
      } else {
        expect(sts.spec.volumeClaimTemplates).toBeUndefined();
        expect(spec.volumes.find((v: { name: string }) => v.name === "data").emptyDir.sizeLimit).toBeTruthy();
      }
      // The Service's port reaches a named container port.
      const service = find(objects, "Service", `docflow-${dep}`);
      const main = service.spec.ports.find((p: { port: number }) => p.port === DEPENDENCIES[dep].port);
      expect(container.ports.map((p: { name: string }) => p.name)).toContain(main.targetPort);
    });

    it("wires the gateway and processor to the in-release servers through the Secret the servers read", () => {
      const secret = secretData(objects, "docflow-evaluation");
      const amqp = new URL(secret["amqp-url"] ?? "");
      // namespace-qualified, because KEDA's operator connects with it from its own namespace
      expect(`${amqp.protocol}//${amqp.hostname}:${amqp.port}`).toBe("amqp://docflow-rabbitmq.docflow.svc:5672");
      expect(decodeURIComponent(amqp.username)).toBe(secret["rabbitmq-username"]);
      expect(decodeURIComponent(amqp.password)).toBe(secret["rabbitmq-password"]);
      expect(secret["rabbitmq-password"]).toMatch(/^[A-Za-z0-9]{32}$/);
      // RabbitMQ creates exactly that user from its conf.d file in the same Secret.
      expect(secret["rabbitmq-credentials.conf"]).toContain(`default_user = ${secret["rabbitmq-username"]}\ndefault_pass = ${secret["rabbitmq-password"]}\n`);
      const rabbitmq = find(objects, "StatefulSet", "docflow-rabbitmq").spec.template.spec;
      const projected = rabbitmq.volumes.find((v: { name: string }) => v.name === "config").projected.sources;
      expect(projected).toContainEqual({ secret: { name: "docflow-evaluation", items: [{ key: "rabbitmq-credentials.conf", path: "conf.d/20-credentials.conf" }] } });
      // versitygw's root key pair is the services' key pair.
      const s3Env = containerEnv(find(objects, "StatefulSet", "docflow-s3"));
      expect(s3Env.get("ROOT_ACCESS_KEY_ID")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-evaluation", key: "s3-access-key-id" });
      expect(s3Env.get("ROOT_SECRET_ACCESS_KEY")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-evaluation", key: "s3-secret-access-key" });
      expect(secret["s3-access-key-id"]).toMatch(/^[A-Za-z0-9]{20}$/);
      expect(secret["s3-secret-access-key"]).toMatch(/^[A-Za-z0-9]{40}$/);
      for (const name of ["docflow-gateway", "docflow-processor"]) {
        const env = containerEnv(workload(objects, name));
        expect(env.get("DOCFLOW_AMQP_URL")?.valueFrom?.["secretKeyRef"], name).toEqual({ name: "docflow-evaluation", key: "amqp-url" });
        expect(env.get("AWS_ACCESS_KEY_ID")?.valueFrom?.["secretKeyRef"], name).toEqual({ name: "docflow-evaluation", key: "s3-access-key-id" });
        expect(env.get("AWS_SECRET_ACCESS_KEY")?.valueFrom?.["secretKeyRef"], name).toEqual({ name: "docflow-evaluation", key: "s3-secret-access-key" });
      }
      const config = find(objects, "ConfigMap", "docflow-config").data;
      expect(config).toMatchObject({ DOCFLOW_NATS_URL: "nats://docflow-nats:4222", DOCFLOW_S3_ENDPOINT: "http://docflow-s3:7070", DOCFLOW_S3_CREATE_BUCKET: "true" });
      // The chart's own Secret no longer carries a broker URL that nobody reads.
      const own = objects.find((o) => o.kind === "Secret" && o.metadata.name === "docflow-credentials");
      expect(own?.stringData?.["amqp-url"]).toBeUndefined();
    });

    it("configures RabbitMQ with the chart's consumer timeout, quorum-capable 4.x, management and Prometheus plugins", () => {
      const config = find(objects, "ConfigMap", "docflow-rabbitmq").data;
      expect(config["enabled_plugins"]).toBe("[rabbitmq_management,rabbitmq_prometheus].\n");
      expect(config["10-docflow.conf"]).toContain("consumer_timeout = 1800000\n");
      expect(config["10-docflow.conf"]).toContain(`total_memory_available_override_value = ${1024 ** 3}\n`);
      expect(find(objects, "StatefulSet", "docflow-rabbitmq").spec.template.spec.containers[0].image).toMatch(/:4\./);
    });

    it("configures NATS with JetStream, the WebSocket listener and operator-mode auth, generated in the cluster or from nats.existingSecret", () => {
      const conf = find(objects, "ConfigMap", "docflow-nats").data["nats.conf"] as string;
      expect(conf).toMatch(/jetstream \{\n {2}store_dir: \/data\n/);
      expect(conf).toMatch(/websocket \{\n {2}port: 8080\n {2}no_tls: true\n/);
      const sources = find(objects, "StatefulSet", "docflow-nats").spec.template.spec.volumes.find((v: { name: string }) => v.name === "config").projected.sources;
      if (file === CI_EVALUATION_VALUES) {
        expect(conf).toContain("include ./auth.conf\n");
        expect(sources).toContainEqual({ secret: { name: "docflow-nats", items: [{ key: "nats-server-auth.conf", path: "auth.conf" }] } });
        // and the services present the credentials of that operator
        expect(containerEnv(find(objects, "Deployment", "docflow-gateway")).get("DOCFLOW_NATS_CREDS")?.value).toBe("/etc/docflow/nats/nats.creds");
      } else {
        // values-evaluation.yaml: the hook Job's Secret (templates/evaluation-nats-auth.yaml) holds it all.
        expect(conf).toContain("include ./auth.conf\n");
        expect(sources).toContainEqual({ secret: { name: "docflow-nats-auth", items: [{ key: "nats-server-auth.conf", path: "auth.conf" }] } });
        const env = containerEnv(find(objects, "Deployment", "docflow-gateway"));
        expect(env.get("DOCFLOW_NATS_CREDS")?.value).toBe("/etc/docflow/nats/nats.creds");
        expect(env.get("DOCFLOW_REALTIME_SIGNING_SEED")?.valueFrom).toEqual({ secretKeyRef: { name: "docflow-nats-auth", key: "signing-seed" } });
        expect(env.get("DOCFLOW_REALTIME_ACCOUNT")?.valueFrom).toEqual({ secretKeyRef: { name: "docflow-nats-auth", key: "account" } });
        // Browsers reach NATS on the app's own host: the web app resolves the path against the page.
        expect(env.get("DOCFLOW_REALTIME_WS_URL")?.value).toBe("/nats");
        const job = find(objects, "Job", "docflow-nats-auth");
        expect(job.metadata.annotations?.["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
        expect(containerEnv(job).get("DOCFLOW_NATS_AUTH_SECRET")?.value).toBe("docflow-nats-auth");
        expect(job.spec.template.spec.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
        // The Job may read its one Secret and create Secrets, nothing else.
        expect(find(objects, "Role", "docflow-nats-auth").rules).toEqual([
          { apiGroups: [""], resources: ["secrets"], resourceNames: ["docflow-nats-auth"], verbs: ["get"] },
          { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
        ]);
      }
      const ingress = find(objects, "Ingress", "docflow-nats");
      expect(ingress.spec.rules[0].http.paths[0]).toMatchObject({ path: "/nats", backend: { service: { name: "docflow-nats", port: { name: "http-websocket" } } } });
    });

    it("lets only the gateway and processor reach the dependencies, and the dependencies reach nothing", () => {
      const policies = objects.filter((o) => o.kind === "NetworkPolicy");
      const gateway = podOf(objects, "docflow-gateway");
      const processor = podOf(objects, "docflow-processor");
      const web = podOf(objects, "docflow-web");
      const deps = Object.fromEntries((Object.keys(DEPENDENCIES) as Dependency[]).map((dep) => [dep, podOf(objects, `docflow-${dep}`)])) as Record<Dependency, PodRef>;
      for (const dep of Object.keys(DEPENDENCIES) as Dependency[]) {
        const port = DEPENDENCIES[dep].port;
        expect(allowed(policies, gateway, deps[dep], port), `gateway -> ${dep}:${port}`).toBe(true);
        expect(allowed(policies, processor, deps[dep], port), `processor -> ${dep}:${port}`).toBe(true);
        expect(allowed(policies, web, deps[dep], port), `web -> ${dep}:${port}`).toBe(false);
        expect(allowed(policies, outsider("default"), deps[dep], port), `another namespace -> ${dep}:${port}`).toBe(false);
        expect(allowed(policies, deps[dep], gateway, 8080), `${dep} -> gateway`).toBe(false);
        for (const other of Object.keys(DEPENDENCIES) as Dependency[]) {
          if (other !== dep) expect(allowed(policies, deps[dep], deps[other], DEPENDENCIES[other].port), `${dep} -> ${other}`).toBe(false);
        }
      }
      // Not even the gateway reaches the management UI; browsers reach NATS' WebSocket through the ingress controller only.
      expect(allowed(policies, gateway, deps.rabbitmq, 15672)).toBe(false);
      const controller = outsider("ingress-nginx");
      expect(allowed(policies, controller, deps.nats, 8080)).toBe(true);
      expect(allowed(policies, controller, deps.nats, 4222)).toBe(false);
      expect(allowed(policies, controller, deps.rabbitmq, 5672)).toBe(false);
      // Prometheus scrapes RabbitMQ's plugin when metricsFrom is set.
      expect(allowed(policies, outsider("monitoring"), deps.rabbitmq, 15692)).toBe(persistent);
      // KEDA only with engine keda.
      expect(allowed(policies, outsider("keda"), deps.rabbitmq, 5672)).toBe(false);
      // The operator reads the backlog (RabbitMQ, NATS) and the processors' metrics; never the object store.
      const operator = podOf(objects, "docflow-operator");
      expect(allowed(policies, operator, deps.rabbitmq, 5672), "operator -> rabbitmq").toBe(true);
      expect(allowed(policies, operator, deps.nats, 4222), "operator -> nats").toBe(true);
      expect(allowed(policies, operator, deps.s3, 7070), "operator -> s3").toBe(false);
      expect(allowed(policies, operator, processor, 8081), "operator -> processor metrics").toBe(true);
      expect(allowed(policies, operator, gateway, 8080), "operator -> gateway").toBe(false);
      expect(allowed(policies, gateway, operator, 8082), "gateway -> operator").toBe(false);
    });
  });

  it("lets KEDA's operator read the queues, with the AMQP URL of the evaluation Secret, when the processor scales with KEDA", () => {
    const objects = render({ valuesFiles: [EVALUATION_VALUES], set: { "processor.autoscaling.enabled": true, "processor.autoscaling.engine": "keda" } });
    const policies = objects.filter((o) => o.kind === "NetworkPolicy");
    expect(allowed(policies, outsider("keda"), podOf(objects, "docflow-rabbitmq"), 5672)).toBe(true);
    expect(find(objects, "TriggerAuthentication", "docflow-processor-rabbitmq").spec.secretTargetRef).toEqual([{ parameter: "host", name: "docflow-evaluation", key: "amqp-url" }]);
  });

  it("lets Prometheus scrape the evaluation RabbitMQ per queue when ServiceMonitors are on (the queue alerts need it)", () => {
    const objects = render({ valuesFiles: [EVALUATION_VALUES], set: { "metrics.serviceMonitor.enabled": true } });
    const monitor = find(objects, "ServiceMonitor", "docflow-rabbitmq");
    expect(() => VALIDATORS["monitoring.coreos.com/v1/ServiceMonitor"]?.(monitor)).not.toThrow();
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: "http-metrics", path: "/metrics/per-object" })]);
    const service = find(objects, "Service", "docflow-rabbitmq");
    expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain("http-metrics");
    expect(Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => service.metadata.labels?.[k] === v)).toBe(true);
    expect(render({ set: { "metrics.serviceMonitor.enabled": true } }).find((o) => o.kind === "ServiceMonitor" && o.metadata.name === "docflow-rabbitmq")).toBeUndefined();
  });

  it("takes chosen credentials instead of generated ones", () => {
    const objects = render({
      valuesFiles: [EVALUATION_VALUES],
      set: { "evaluation.rabbitmq.password": "chosen-pass", "evaluation.s3.accessKeyId": "CHOSENKEY", "evaluation.s3.secretAccessKey": "chosen/secret" },
    });
    const secret = secretData(objects, "docflow-evaluation");
    expect(secret["amqp-url"]).toBe("amqp://docflow:chosen-pass@docflow-rabbitmq.docflow.svc:5672");
    expect(secret["s3-access-key-id"]).toBe("CHOSENKEY");
    expect(secret["s3-secret-access-key"]).toBe("chosen/secret");
  });

  it("refuses realtime or inline NATS credentials without the Secret that holds the server's operator-mode auth", () => {
    const realtime = renderResult({
      valuesFiles: [EVALUATION_VALUES],
      set: {
        "evaluation.nats.generateAuth": false,
        "realtime.enabled": true,
        "realtime.wsUrl": "ws://x/nats",
        "realtime.account": `A${"B".repeat(55)}`,
        "realtime.signingSeed": `SA${"C".repeat(56)}`,
      },
    });
    expect(realtime.status).not.toBe(0);
    expect(realtime.stderr).toContain("evaluation.enabled with realtime.enabled needs NATS in operator mode");
    const noRoute = renderResult({ valuesFiles: [EVALUATION_VALUES], set: { "ingress.enabled": false } });
    expect(noRoute.status).not.toBe(0);
    expect(noRoute.stderr).toContain("realtime.enabled with the generated NATS auth needs realtime.wsUrl");
    const inline = renderResult({ valuesFiles: [EVALUATION_VALUES], set: { "nats.creds": "-----BEGIN NATS USER JWT-----" } });
    expect(inline.status).not.toBe(0);
    expect(inline.stderr).toContain("evaluation.enabled with nats.creds");
  });

  it("keeps RabbitMQ's consumer_timeout in the timeout chain: a task timeout above it is still refused", () => {
    const objects = render({ valuesFiles: [EVALUATION_VALUES], set: { "rabbitmq.consumerTimeoutSeconds": 3600 } });
    expect(find(objects, "ConfigMap", "docflow-rabbitmq").data["10-docflow.conf"]).toContain("consumer_timeout = 3600000\n");
    const broken = renderResult({ valuesFiles: [EVALUATION_VALUES], set: { "processor.taskTimeoutSeconds": 1900 } });
    expect(broken.stderr).toContain("processor.taskTimeoutSeconds (1900) must be below rabbitmq.consumerTimeoutSeconds (1800)");
  });
});
