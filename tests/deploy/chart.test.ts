/**
 * charts/docflow: lint, render with every ci/*-values.yaml, validate every object against the
 * Kubernetes and KEDA schemas, and check what the chart promises: secure pods, probes, resources,
 * default-deny network policies, secrets wiring, autoscaling, and the timeout chain (the same
 * values reach the services as env, and every broken rule fails `helm template` naming its values).
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  CHART,
  CI_VALUES,
  KUBE_VERSION,
  ROOT,
  VALIDATORS,
  containerEnv,
  deploymentsOf,
  envValue,
  find,
  helm,
  leafPaths,
  mergedValues,
  paramKeys,
  parseObjects,
  render,
  renderResult,
  runScript,
  valueAt,
  workload,
  type K8sObject,
} from "./support.ts";

const COMPONENTS = ["gateway", "processor", "web", "operator"] as const;

describe("helm lint --strict", () => {
  it.each(CI_VALUES.map((f) => [basename(f), f]))("passes with %s", (_name, file) => {
    const result = helm(["lint", "--strict", CHART, "-f", file, "--kube-version", KUBE_VERSION]);
    expect(result.stderr + result.stdout).toContain("0 chart(s) failed");
    expect(result.status).toBe(0);
  });
});

describe.each(CI_VALUES.map((f) => [basename(f), f]))("helm template with %s", (_name, file) => {
  const objects = render({ valuesFiles: [file] });
  const values = mergedValues([file]);
  // With processor.autoscaling.engine operator the processor's pods are a PodTemplate (the operator makes the Deployment from it): checked as one.
  const deployments = deploymentsOf(objects);
  const workloads = [...deployments, ...objects.filter((o) => o.kind === "StatefulSet")];
  const pods = [
    ...workloads.map((d) => ({ name: d.metadata.name, spec: d.spec.template.spec, labels: d.spec.template.metadata.labels })),
    ...objects.filter((o) => o.kind === "Pod").map((p) => ({ name: p.metadata.name, spec: p.spec, labels: p.metadata.labels })),
  ];

  it("renders only objects that validate against their schema", () => {
    expect(objects.length).toBeGreaterThan(5);
    for (const obj of objects) {
      const validate = VALIDATORS[`${obj.apiVersion}/${obj.kind}`];
      expect(validate, `no validator for ${obj.apiVersion} ${obj.kind}`).toBeDefined();
      expect(() => validate?.(obj), `${obj.kind}/${obj.metadata.name}`).not.toThrow();
    }
  });

  it("labels every object with the standard labels", () => {
    for (const obj of objects) {
      const labels = obj.metadata.labels ?? {};
      for (const key of ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"]) {
        expect(labels[key], `${obj.kind}/${obj.metadata.name} ${key}`).toBeTruthy();
      }
    }
  });

  it("deploys each enabled component under one name (gateway, processor, web, operator)", () => {
    for (const component of COMPONENTS) {
      const deployment = deployments.find((d) => d.metadata.labels?.["app.kubernetes.io/component"] === component);
      if (!values[component].enabled) {
        expect(deployment).toBeUndefined();
        continue;
      }
      expect(deployment?.metadata.name).toBe(`docflow-${component}`);
      const container = deployment?.spec.template.spec.containers[0];
      expect(container.name).toBe(component);
      expect(container.image).toMatch(new RegExp(`(^|/)${component}[:@]`));
      find(objects, "Service", `docflow-${component}`);
      if (component !== "web") expect(envValue(deployment as K8sObject, "OTEL_SERVICE_NAME")).toBe(component);
    }
  });

  it("runs every container non-root, read-only, without privileges, with seccomp", () => {
    expect(pods.length).toBeGreaterThan(0);
    for (const pod of pods) {
      const podContext = pod.spec.securityContext ?? {};
      for (const container of pod.spec.containers) {
        const sc = container.securityContext ?? {};
        const where = `${pod.name}/${container.name}`;
        expect(sc.runAsNonRoot ?? podContext.runAsNonRoot, where).toBe(true);
        expect(sc.runAsUser ?? podContext.runAsUser, where).toBeGreaterThan(0);
        expect(sc.readOnlyRootFilesystem, where).toBe(true);
        expect(sc.allowPrivilegeEscalation, where).toBe(false);
        expect(sc.capabilities?.drop, where).toContain("ALL");
        expect((sc.seccompProfile ?? podContext.seccompProfile)?.type, where).toBe("RuntimeDefault");
      }
    }
  });

  it("gives every Deployment probes (liveness never a dependency), resources, a writable /tmp and no service links", () => {
    for (const deployment of deployments) {
      const spec = deployment.spec.template.spec;
      const container = spec.containers[0];
      const where = deployment.metadata.name;
      expect(container.startupProbe?.httpGet?.path, where).toBe("/healthz");
      expect(container.livenessProbe?.httpGet?.path, where).toBe("/healthz");
      // The collector's health_check extension has one endpoint; docflow's services have both.
      expect(container.readinessProbe?.httpGet?.path, where).toBe(where === "docflow-collector" ? "/healthz" : "/readyz");
      expect(container.resources?.requests?.cpu, where).toBeTruthy();
      expect(container.resources?.requests?.memory, where).toBeTruthy();
      expect(container.resources?.limits?.memory, where).toBeTruthy();
      const tmp = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/tmp");
      expect(spec.volumes.find((v: { name: string }) => v.name === tmp?.name)?.emptyDir?.sizeLimit, where).toBeTruthy();
      expect(spec.enableServiceLinks, where).toBe(false);
      expect(spec.terminationGracePeriodSeconds, where).toBeGreaterThan(0);
    }
  });

  it("mounts an API token only in the processor, and only with its RBAC (and in the collector, which finds the pods it scrapes, and the operator)", () => {
    for (const deployment of deployments) {
      const expected = (deployment.metadata.name === "docflow-processor" && values.processor.rbac.create) || ["docflow-collector", "docflow-operator"].includes(deployment.metadata.name);
      expect(deployment.spec.template.spec.automountServiceAccountToken, deployment.metadata.name).toBe(expected);
    }
  });

  it("starts from a default-deny NetworkPolicy that covers every pod of the release", () => {
    const policies = objects.filter((o) => o.kind === "NetworkPolicy");
    if (!values.networkPolicy.enabled) {
      expect(policies).toEqual([]);
      return;
    }
    const deny = find(objects, "NetworkPolicy", "docflow-default-deny");
    expect(deny.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(deny.spec.ingress).toBeUndefined();
    expect(deny.spec.egress).toBeUndefined();
    for (const pod of pods) {
      for (const [key, value] of Object.entries(deny.spec.podSelector.matchLabels as Record<string, string>)) expect(pod.labels[key], pod.name).toBe(value);
      // and some policy opens exactly what the pod needs
      const own = policies.filter((p) => p.metadata.name !== "docflow-default-deny" && Object.entries(p.spec.podSelector.matchLabels as Record<string, string>).every(([k, v]) => pod.labels[k] === v));
      expect(own.length, pod.name).toBe(1);
    }
    // web and gateway are reached from the ingress controller only (plus the test pod), the processor from nobody but scrapers
    expect(find(objects, "NetworkPolicy", "docflow-web").spec.egress).toBeUndefined();
    const processor = find(objects, "NetworkPolicy", "docflow-processor");
    // (scrapers: networkPolicy.metricsFrom, the release's OpenTelemetry Collector, and the operator, which reads busy state and pages/s there)
    expect(processor.spec.ingress ?? []).toHaveLength((values.networkPolicy.metricsFrom.length > 0 ? 1 : 0) + (values.telemetry.collector.enabled ? 1 : 0) + (values.operator.enabled ? 1 : 0));
    const egressPorts = processor.spec.egress.flatMap((rule: { ports: { port: number }[] }) => rule.ports.map((p) => p.port));
    // the brokers' ports, or with the evaluation dependencies exactly theirs (tests/deploy/evaluation.test.ts)
    const depPorts = values.evaluation.enabled ? [5672, 4222, 7070] : [...values.networkPolicy.rabbitmq.ports, ...values.networkPolicy.nats.ports, ...values.networkPolicy.s3.ports];
    for (const port of [53, ...depPorts]) expect(egressPorts).toContain(port);
  });

  it("passes the timeout chain to the services as env (ms in env, seconds in values)", () => {
    const ms = (seconds: number) => String(seconds * 1000);
    const gateway = deployments.find((d) => d.metadata.name === "docflow-gateway");
    if (gateway) {
      const g = values.gateway;
      expect(envValue(gateway, "DOCFLOW_REQUEST_TIMEOUT_MS")).toBe(ms(g.requestTimeoutSeconds));
      expect(envValue(gateway, "DOCFLOW_KEEP_ALIVE_TIMEOUT_MS")).toBe(ms(g.keepAliveTimeoutSeconds));
      expect(envValue(gateway, "DOCFLOW_HEADERS_TIMEOUT_MS")).toBe(ms(g.headersTimeoutSeconds));
      expect(envValue(gateway, "DOCFLOW_SHUTDOWN_DELAY_MS")).toBe(ms(g.shutdownDelaySeconds));
      expect(envValue(gateway, "DOCFLOW_SHUTDOWN_TIMEOUT_MS")).toBe(ms(g.shutdownTimeoutSeconds));
      expect(envValue(gateway, "DOCFLOW_EDGE_TIMEOUT_MS")).toBe(ms(values.edge.originTimeoutSeconds));
      expect(envValue(gateway, "DOCFLOW_MAX_UPLOAD_BYTES")).toBe(String(g.maxUploadBytes));
      const bandwidth = values.uploads.minClientBandwidth === "1Mbit" ? "125000" : undefined;
      if (bandwidth) expect(envValue(gateway, "DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS")).toBe(bandwidth);
      const chunk = Number(envValue(gateway, "DOCFLOW_UPLOAD_CHUNK_BYTES"));
      if (values.uploads.chunkSizeBytes) expect(chunk).toBe(values.uploads.chunkSizeBytes);
      expect(chunk / Number(envValue(gateway, "DOCFLOW_MIN_CLIENT_BANDWIDTH_BPS"))).toBeLessThan(Math.min(values.edge.originTimeoutSeconds, g.requestTimeoutSeconds));
      const grace = gateway.spec.template.spec.terminationGracePeriodSeconds;
      expect(grace).toBeGreaterThan(g.preStopSleepSeconds + g.shutdownDelaySeconds + g.shutdownTimeoutSeconds);
      if (g.terminationGracePeriodSeconds !== null) expect(grace).toBe(g.terminationGracePeriodSeconds);
      const probe = gateway.spec.template.spec.containers[0].readinessProbe;
      expect(probe.periodSeconds).toBe(g.readinessProbe.periodSeconds);
      expect(g.preStopSleepSeconds + g.shutdownDelaySeconds).toBeGreaterThanOrEqual(probe.periodSeconds * probe.failureThreshold);
    }
    const processor = deployments.find((d) => d.metadata.name === "docflow-processor");
    if (processor) {
      const p = values.processor;
      expect(envValue(processor, "DOCFLOW_TASK_TIMEOUT_MS")).toBe(ms(p.taskTimeoutSeconds));
      expect(envValue(processor, "DOCFLOW_SHUTDOWN_TIMEOUT_MS")).toBe(ms(p.taskTimeoutSeconds + p.drainMarginSeconds));
      expect(envValue(processor, "DOCFLOW_STALLED_AFTER_MS")).toBe(ms(p.stalledAfterSeconds));
      expect(envValue(processor, "DOCFLOW_RANGE_WINDOW")).toBe(String(p.rangeWindow));
      expect(envValue(processor, "DOCFLOW_RETRY_BASE_MS")).toBe(ms(p.retryBaseSeconds));
      expect(envValue(processor, "DOCFLOW_RETRY_MAX_MS")).toBe(ms(p.retryMaxSeconds));
      expect(envValue(processor, "DOCFLOW_PROCESSOR_CONCURRENCY")).toBe(String(p.concurrency));
      const grace = processor.spec.template.spec.terminationGracePeriodSeconds;
      expect(grace).toBeGreaterThan(p.preStopSleepSeconds + p.taskTimeoutSeconds + p.drainMarginSeconds);
      if (p.terminationGracePeriodSeconds !== null) expect(grace).toBe(p.terminationGracePeriodSeconds);
      expect(p.taskTimeoutSeconds).toBeLessThan(values.rabbitmq.consumerTimeoutSeconds);
    }
    const config = find(objects, "ConfigMap", "docflow-config");
    expect(config.data.DOCFLOW_DELIVERY_LIMIT).toBe(String(values.rabbitmq.deliveryLimit));
    expect(config.data.DOCFLOW_AMQP_NAMESPACE).toBe(values.rabbitmq.namespace);
  });

  it("renders env that the services' own configuration accepts", () => {
    const configMap = find(objects, "ConfigMap", "docflow-config").data as Record<string, string>;
    const dummies: Record<string, string> = {
      DOCFLOW_AMQP_URL: "amqp://user:pass@rabbitmq:5672",
      DOCFLOW_REALTIME_SIGNING_SEED: `SA${"A".repeat(56)}`,
      DOCFLOW_DEV_TOKENS: "token=tenant",
      AWS_ACCESS_KEY_ID: "key",
      AWS_SECRET_ACCESS_KEY: "secret",
    };
    // The operator's own configuration is checked once it exists (services/operator/src/config.ts).
    const services = ["gateway", "processor", ...(existsSync(join(ROOT, "services", "operator", "src", "config.ts")) ? ["operator"] : [])];
    for (const component of services) {
      const deployment = deployments.find((d) => d.metadata.name === `docflow-${component}`);
      if (!deployment) continue;
      const env: Record<string, string> = { ...configMap };
      for (const [name, entry] of containerEnv(deployment)) {
        if (entry.value !== undefined) env[name] = entry.value;
        else if (entry.valueFrom?.["secretKeyRef"]) env[name] = dummies[name] ?? "x";
        else if (entry.valueFrom?.["fieldRef"]) env[name] = "pod-0";
      }
      // A service never imports another one (and tests do not import services): ask the service itself.
      const script = "const { loadConfig } = await import('./src/config.ts'); loadConfig(JSON.parse(process.env.RENDERED_ENV)); console.log('ok');";
      const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: join(ROOT, "services", component),
        encoding: "utf8",
        env: { PATH: process.env["PATH"] ?? "", RENDERED_ENV: JSON.stringify(env) },
      });
      expect(result.stderr, component).toBe("");
      expect(result.stdout.trim(), component).toBe("ok");
    }
  });
});

describe("NOTES.txt", () => {
  // `helm template` does not render NOTES.txt (and `helm install --dry-run` needs a cluster): render
  // it from a copy of the chart, as a named template inside a ConfigMap.
  it.each(CI_VALUES.map((f) => [basename(f), f]))("renders with %s", (_name, file) => {
    const dir = mkdtempSync(join(tmpdir(), "docflow-notes-"));
    try {
      const chart = join(dir, "docflow");
      cpSync(CHART, chart, { recursive: true });
      const notes = readFileSync(join(chart, "templates", "NOTES.txt"), "utf8");
      rmSync(join(chart, "templates", "NOTES.txt"));
      writeFileSync(join(chart, "templates", "_notes-check.tpl"), `{{- define "notes-check" -}}\n${notes}{{- end -}}\n`);
      writeFileSync(join(chart, "templates", "notes-check.yaml"), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "notes-check" . | toJson }}\n');
      const result = helm(["template", "docflow", chart, "-n", "docflow", "--kube-version", KUBE_VERSION, "-f", file, "--show-only", "templates/notes-check.yaml"]);
      expect(result.stderr).toBe("");
      const text = (parse(result.stdout) as { data: { notes: string } }).data.notes;
      expect(text).toContain("helm test docflow -n docflow");
      expect(text).toMatch(/processor task \d+ \(\+ drain \d+\) < grace period \d+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("secrets and credentials", () => {
  it("with existing secrets, creates no Secret and reads every credential from the named ones", () => {
    const objects = render({ valuesFiles: [join(CHART, "ci", "production-values.yaml")] });
    expect(objects.filter((o) => o.kind === "Secret")).toEqual([]);
    const gateway = find(objects, "Deployment", "docflow-gateway");
    const env = containerEnv(gateway);
    expect(env.get("DOCFLOW_AMQP_URL")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-rabbitmq", key: "url" });
    expect(env.get("DOCFLOW_REALTIME_SIGNING_SEED")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-nats", key: "signing-seed" });
    expect(env.get("DOCFLOW_DEV_TOKENS")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-tokens", key: "dev-tokens" });
    expect(env.get("AWS_ACCESS_KEY_ID")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-s3", key: "access-key-id" });
    expect(env.get("AWS_SECRET_ACCESS_KEY")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-s3", key: "secret-access-key" });
    // The NATS credentials file: a path in env, the file from the Secret.
    for (const name of ["docflow-gateway", "docflow-processor", "docflow-operator"]) {
      const deployment = workload(objects, name);
      const credsPath = envValue(deployment, "DOCFLOW_NATS_CREDS");
      const spec = deployment.spec.template.spec;
      const mount = spec.containers[0].volumeMounts.find((m: { mountPath: string }) => credsPath.startsWith(`${m.mountPath}/`));
      const volume = spec.volumes.find((v: { name: string }) => v.name === mount?.name);
      expect(volume?.secret).toMatchObject({ secretName: "docflow-nats", items: [{ key: "service.creds", path: basename(credsPath) }] });
      expect(volume?.secret.defaultMode).toBe(0o440);
    }
    // Images by digest from the registry; the web app's CSP learns the realtime origin.
    expect(gateway.spec.template.spec.containers[0].image).toBe("registry.example.com/docflow/gateway@sha256:0000000000000000000000000000000000000000000000000000000000000001");
    expect(envValue(find(objects, "Deployment", "docflow-web"), "DOCFLOW_WEB_REALTIME_ORIGIN")).toBe("wss://realtime.example.com:443");
  });

  it("with inline credentials, puts them in the chart's Secret and nowhere else", () => {
    const objects = render({ valuesFiles: [join(CHART, "ci", "keda-values.yaml")] });
    const secret = find(objects, "Secret", "docflow-credentials");
    expect(Object.keys(secret.stringData).sort()).toEqual(["amqp-url", "dev-tokens", "nats.creds", "realtime-signing-seed", "s3-access-key-id", "s3-secret-access-key"]);
    const plain = objects
      .filter((o) => o.kind !== "Secret")
      .map((o) => JSON.stringify(o))
      .join("\n");
    for (const value of Object.values(secret.stringData as Record<string, string>)) expect(plain).not.toContain(value);
  });
});

describe("telemetry", () => {
  it("gives the services their pod's identity as trace resource attributes, and the collector when set", () => {
    for (const [file, endpoint] of [
      [undefined, undefined],
      [join(CHART, "ci", "production-values.yaml"), "http://otel-collector.observability.svc:4318"],
    ] as const) {
      const objects = render({ valuesFiles: file ? [file] : [] });
      for (const name of ["docflow-gateway", "docflow-processor", "docflow-operator"]) {
        const names = [...containerEnv(workload(objects, name)).keys()];
        const attributes = envValue(workload(objects, name), "OTEL_RESOURCE_ATTRIBUTES");
        expect(attributes).toContain("k8s.pod.name=$(DOCFLOW_POD_NAME)");
        // $(VAR) expands only variables defined earlier in the list.
        for (const ref of attributes.matchAll(/\$\((\w+)\)/g)) expect(names.indexOf(ref[1] ?? "")).toBeLessThan(names.indexOf("OTEL_RESOURCE_ATTRIBUTES"));
        expect(containerEnv(workload(objects, name)).get("OTEL_EXPORTER_OTLP_ENDPOINT")?.value).toBe(endpoint);
      }
      const egress = find(objects, "NetworkPolicy", "docflow-gateway").spec.egress as { ports: { port: number }[] }[];
      expect(egress.some((rule) => rule.ports.some((p) => p.port === 4318))).toBe(endpoint !== undefined);
    }
  });
});

describe("ingress", () => {
  const objects = render();
  it("routes /v1 to the gateway and / to web; uploads stream unbuffered with their own body size", () => {
    const main = find(objects, "Ingress", "docflow");
    const paths = main.spec.rules[0].http.paths.map((p: { path: string; backend: { service: { name: string } } }) => [p.path, p.backend.service.name]);
    expect(paths).toEqual([
      ["/v1", "docflow-gateway"],
      ["/", "docflow-web"],
    ]);
    expect(main.spec.ingressClassName).toBe("nginx");
    const uploads = find(objects, "Ingress", "docflow-uploads");
    expect(uploads.metadata.annotations).toMatchObject({
      "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
      "nginx.ingress.kubernetes.io/proxy-body-size": "520m",
      "nginx.ingress.kubernetes.io/proxy-read-timeout": "60",
      "nginx.ingress.kubernetes.io/proxy-send-timeout": "60",
    });
    expect(uploads.spec.rules[0].http.paths.map((p: { path: string }) => p.path)).toEqual(["/v1/uploads", "/v1/documents"]);
    expect(main.metadata.annotations?.["nginx.ingress.kubernetes.io/proxy-request-buffering"]).toBeUndefined();
  });
  it("is absent when disabled", () => {
    expect(render({ valuesFiles: [join(CHART, "ci", "no-ingress-values.yaml")] }).filter((o) => o.kind === "Ingress")).toEqual([]);
  });
});

describe("processor autoscaling", () => {
  it("has the operator run the processors by default: a PodTemplate and a ProcessorPool on it, no Deployment, HPA or ScaledObject", () => {
    const objects = render();
    const values = mergedValues();
    expect(objects.some((o) => o.kind === "Deployment" && o.metadata.name === "docflow-processor")).toBe(false);
    expect(objects.some((o) => o.kind === "HorizontalPodAutoscaler" || o.kind === "ScaledObject")).toBe(false);
    const template = find(objects, "PodTemplate", "docflow-processor");
    // The operator selects its Deployments' pods by the template's pod labels (+ docflow.io/pool): only labels an upgrade never changes.
    expect(template["template"].metadata.labels).toEqual({ "app.kubernetes.io/name": "docflow", "app.kubernetes.io/instance": "docflow", "app.kubernetes.io/component": "processor" });
    expect(Object.keys(template["template"].metadata.annotations).sort()).toEqual(["checksum/config", "checksum/secret"]);
    const env = containerEnv(workload(objects, "docflow-processor"));
    expect(env.has("DOCFLOW_PROCESSOR_STAGES"), "the operator sets the stages per pool").toBe(false);
    const pool = find(objects, "ProcessorPool", "docflow-processor");
    const a = values.processor.autoscaling;
    expect(pool.spec).toEqual({
      stages: ["inspect", "convert", "render", "finish"],
      template: { podTemplateName: "docflow-processor" },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      targetDrainSeconds: 20,
      pagesPerSecondEstimate: 5,
      secondsPerConversion: 20,
      scaleUp: { maxStep: 4 },
      scaleDown: { stabilizationSeconds: 60, maxStep: 1 },
    });
    // The Service and the PDB select every pool's pods.
    const selector = find(objects, "Service", "docflow-processor").spec.selector as Record<string, string>;
    for (const [k, v] of Object.entries(selector)) expect(template["template"].metadata.labels[k]).toBe(v);
    find(objects, "PodDisruptionBudget", "docflow-processor");
  });

  it("gives the operator its identity, its Lease, and what it must know of the processors", () => {
    const objects = render();
    const values = mergedValues();
    const operator = find(objects, "Deployment", "docflow-operator");
    expect(operator.spec.replicas).toBe(2);
    const env = containerEnv(operator);
    expect(env.get("DOCFLOW_OPERATOR_NAMESPACE")?.valueFrom?.["fieldRef"]).toEqual({ fieldPath: "metadata.namespace" });
    expect(env.get("DOCFLOW_OPERATOR_POD_NAME")?.valueFrom?.["fieldRef"]).toEqual({ fieldPath: "metadata.name" });
    expect(
      Object.fromEntries(
        [
          "DOCFLOW_OPERATOR_PORT",
          "DOCFLOW_OPERATOR_LEASE_NAME",
          "DOCFLOW_OPERATOR_INTERVAL_SECONDS",
          "DOCFLOW_PROCESSOR_METRICS_PORT",
          "DOCFLOW_RANGE_WINDOW",
          "DOCFLOW_RANGE_SIZE",
          "DOCFLOW_TASK_TIMEOUT_MS",
          "DOCFLOW_PROCESSOR_CONCURRENCY",
          "DOCFLOW_AMQP_NAMESPACE",
          "DOCFLOW_JOBS_BUCKET",
        ].map((name) => [name, envValue(operator, name)]),
      ),
    ).toEqual({
      DOCFLOW_OPERATOR_PORT: "8082",
      DOCFLOW_OPERATOR_LEASE_NAME: "docflow-operator",
      DOCFLOW_OPERATOR_INTERVAL_SECONDS: "15",
      DOCFLOW_PROCESSOR_METRICS_PORT: "8081",
      DOCFLOW_RANGE_WINDOW: String(values.processor.rangeWindow),
      DOCFLOW_RANGE_SIZE: String(values.processor.rangeSize),
      DOCFLOW_TASK_TIMEOUT_MS: String(values.processor.taskTimeoutSeconds * 1000),
      DOCFLOW_PROCESSOR_CONCURRENCY: String(values.processor.concurrency),
      DOCFLOW_AMQP_NAMESPACE: values.rabbitmq.namespace,
      DOCFLOW_JOBS_BUCKET: values.nats.jobsBucket,
    });
    expect(env.get("DOCFLOW_AMQP_URL")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docflow-credentials", key: "amqp-url" });
    // It reads the backlog, never the object store.
    expect([...env.keys()].filter((name) => /^(AWS_|DOCFLOW_S3_)/.test(name))).toEqual([]);
    const container = operator.spec.template.spec.containers[0];
    expect(container.ports).toEqual([{ name: "http-metrics", containerPort: 8082, protocol: "TCP" }]);
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http-metrics" });
    expect(container.resources).toEqual({ requests: { cpu: "50m", memory: "128Mi" }, limits: { memory: "256Mi" } });
    expect(operator.spec.template.spec.terminationGracePeriodSeconds).toBe(30);
    expect(find(objects, "PodDisruptionBudget", "docflow-operator").spec.maxUnavailable).toBe(1);
    const role = find(objects, "Role", "docflow-operator");
    expect(role.rules.find((r: { resourceNames?: string[] }) => r.resourceNames)).toEqual({
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["docflow-operator"],
      verbs: ["get", "update", "patch"],
    });
    expect(objects.some((o) => o.kind === "ClusterRole" || o.kind === "ClusterRoleBinding")).toBe(false);
    expect(find(objects, "RoleBinding", "docflow-operator").subjects).toEqual([{ kind: "ServiceAccount", name: "docflow-operator", namespace: "docflow" }]);
  });

  it("renders the same pod spec in the PodTemplate as in the chart's Deployment (engine hpa)", () => {
    const operated = workload(render(), "docflow-processor").spec.template;
    const deployed = find(render({ set: { "processor.autoscaling.engine": "hpa" } }), "Deployment", "docflow-processor").spec.template;
    expect(operated.spec).toEqual(deployed.spec);
    expect(operated.metadata.annotations).toEqual(deployed.metadata.annotations);
  });

  it("renders extra pools on the same PodTemplate, with their overrides, when processor.autoscaling.pools are set", () => {
    const pools = [
      { name: "office", stages: ["convert"], concurrency: 1, resources: { requests: { cpu: "1", memory: "2Gi" }, limits: { memory: "4Gi" } }, minReplicas: 0, maxReplicas: 4, targetDrainSeconds: 300 },
    ];
    const rendered = renderResult({ setJson: { "processor.autoscaling.pools": pools, "processor.autoscaling.operator.stages": ["inspect", "render", "finish"] } });
    expect(rendered.stderr).toBe("");
    const objects = parseObjects(rendered.stdout);
    expect(objects.filter((o) => o.kind === "ProcessorPool").map((o) => o.metadata.name)).toEqual(["docflow-processor", "docflow-processor-office"]);
    expect(find(objects, "ProcessorPool", "docflow-processor").spec.stages).toEqual(["inspect", "render", "finish"]);
    const office = find(objects, "ProcessorPool", "docflow-processor-office");
    expect(office.spec).toMatchObject({
      stages: ["convert"],
      template: { podTemplateName: "docflow-processor", concurrency: 1, resources: pools[0]?.resources },
      minReplicas: 0,
      maxReplicas: 4,
      targetDrainSeconds: 300,
      scaleDown: { stabilizationSeconds: 60 },
    });
    for (const obj of objects.filter((o) => o.kind === "ProcessorPool")) expect(() => VALIDATORS["docflow.io/v1alpha1/ProcessorPool"]?.(obj)).not.toThrow();
    // Without taking convert from the default pool, two pools would scale for the same backlog: refused.
    const overlap = renderResult({ setJson: { "processor.autoscaling.pools": pools } });
    expect(overlap.status).not.toBe(0);
    expect(overlap.stderr).toContain("processor.autoscaling.pools[0] (office) consumes the stage convert, which the default pool (processor.autoscaling.operator.stages) consumes too");
  });

  it("refuses engine operator without the operator, pools without engine operator, and stages nobody consumes", () => {
    expect(renderResult({ set: { "operator.enabled": false } }).stderr).toContain("processor.autoscaling.engine (operator) needs operator.enabled (true)");
    expect(renderResult({ set: { "operator.enabled": false, "processor.autoscaling.engine": "hpa" } }).status).toBe(0);
    const pools = renderResult({ set: { "processor.autoscaling.engine": "keda" }, setJson: { "processor.autoscaling.pools": [{ name: "office", stages: ["convert"] }] } });
    expect(pools.stderr).toContain("processor.autoscaling.pools (1) are ProcessorPools, run by the operator");
    const orphan = renderResult({ setJson: { "processor.autoscaling.operator.stages": ["inspect", "render", "finish"] } });
    expect(orphan.stderr).toContain("No pool consumes the stage convert");
  });

  it("refuses an upgrade to engine operator on a cluster without the ProcessorPool CRD (Helm installs crds/ on the first install only)", () => {
    const missing = renderResult({ upgrade: { apiVersions: [] } });
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain("needs the ProcessorPool CRD, which this cluster lacks");
    expect(missing.stderr).toContain("kubectl apply --server-side -f charts/docflow/crds/");
    expect(renderResult({ upgrade: { apiVersions: ["docflow.io/v1alpha1/ProcessorPool"] } }).status).toBe(0);
    expect(renderResult({ upgrade: { apiVersions: [] }, set: { "processor.autoscaling.engine": "hpa" } }).status).toBe(0);
  });

  it("uses a CPU HPA with engine hpa, with a scale-down window longer than a task", () => {
    const objects = render({ set: { "processor.autoscaling.engine": "hpa" } });
    const hpa = find(objects, "HorizontalPodAutoscaler", "docflow-processor");
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: "docflow-processor" });
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThan(mergedValues().processor.taskTimeoutSeconds);
    expect(find(objects, "Deployment", "docflow-processor").spec.replicas).toBeUndefined();
    expect(objects.some((o) => o.kind === "ScaledObject" || o.kind === "ProcessorPool" || o.kind === "PodTemplate")).toBe(false);
  });

  it("uses a KEDA ScaledObject on the queues with engine keda, authenticated from the broker's secret", () => {
    const objects = render({ valuesFiles: [join(CHART, "ci", "keda-values.yaml")] });
    expect(objects.some((o) => o.kind === "HorizontalPodAutoscaler")).toBe(false);
    const scaled = find(objects, "ScaledObject", "docflow-processor");
    expect(scaled.spec.minReplicaCount).toBe(0);
    expect(scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds).toBe(600);
    expect(scaled.spec.triggers.map((t: { metadata: { queueName: string } }) => t.metadata.queueName)).toEqual(["prod.inspect", "prod.convert", "prod.render", "prod.render.express"]);
    const auth = find(objects, "TriggerAuthentication", scaled.spec.triggers[0].authenticationRef.name);
    expect(auth.spec.secretTargetRef).toEqual([{ parameter: "host", name: "docflow-credentials", key: "amqp-url" }]);
    const external = render({ valuesFiles: [join(CHART, "ci", "production-values.yaml")], set: { "processor.autoscaling.engine": "keda" }, setJson: { "processor.autoscaling.pools": [] } });
    expect(find(external, "TriggerAuthentication", "docflow-processor-rabbitmq").spec.secretTargetRef).toEqual([{ parameter: "host", name: "docflow-rabbitmq", key: "url" }]);
  });

  it("lets a processor get and patch pods of its namespace only, and learn its own name", () => {
    const objects = render({ valuesFiles: [join(CHART, "ci", "production-values.yaml")] });
    expect(find(objects, "Role", "docflow-processor").rules).toEqual([{ apiGroups: [""], resources: ["pods"], verbs: ["get", "patch"] }]);
    expect(find(objects, "RoleBinding", "docflow-processor").subjects).toEqual([{ kind: "ServiceAccount", name: "docflow-processor", namespace: "docflow" }]);
    expect(containerEnv(workload(objects, "docflow-processor")).get("DOCFLOW_POD_NAME")?.valueFrom?.["fieldRef"]).toEqual({ fieldPath: "metadata.name" });
    const policy = objects.find((o) => o.kind === "ValidatingAdmissionPolicy");
    expect(policy?.spec.matchConditions[0].expression).toContain("system:serviceaccount:docflow:docflow-processor");
    expect(policy?.spec.validations[0].expression).toContain("authentication.kubernetes.io/pod-name");
  });
});

/**
 * Every rule of the timeout chain (ARCHITECTURE.md) and the few the chart adds: an override that
 * breaks it makes `helm template` fail, with a message naming the values involved.
 */
const TIMEOUT_RULES: { rule: string; set: Record<string, string | number>; names: string[] }[] = [
  { rule: "request deadline < edge origin timeout", set: { "gateway.requestTimeoutSeconds": 60 }, names: ["gateway.requestTimeoutSeconds", "edge.originTimeoutSeconds"] },
  {
    rule: "chunk size / min bandwidth < edge origin timeout",
    set: { "uploads.chunkSizeBytes": 8388608 },
    names: ["uploads.chunkSizeBytes", "uploads.minClientBandwidth", "edge.originTimeoutSeconds"],
  },
  { rule: "derived chunk of a too slow client", set: { "uploads.minClientBandwidth": "10kbit" }, names: ["uploads.chunkSizeBytes", "uploads.minClientBandwidth", "edge.originTimeoutSeconds"] },
  { rule: "ingress body size >= chunk size", set: { "ingress.uploadBodySize": "2m", "gateway.maxUploadBytes": 1048576 }, names: ["ingress.uploadBodySize", "uploads.chunkSizeBytes"] },
  { rule: "ingress body size >= max upload", set: { "gateway.maxUploadBytes": 1073741824 }, names: ["ingress.uploadBodySize", "gateway.maxUploadBytes"] },
  { rule: "ingress read timeout >= gateway request timeout", set: { "ingress.proxyReadTimeoutSeconds": 30 }, names: ["ingress.proxyReadTimeoutSeconds", "gateway.requestTimeoutSeconds"] },
  { rule: "keepAliveTimeout > edge idle timeout", set: { "gateway.keepAliveTimeoutSeconds": 60 }, names: ["gateway.keepAliveTimeoutSeconds", "edge.idleTimeoutSeconds"] },
  { rule: "headersTimeout > keepAliveTimeout", set: { "gateway.headersTimeoutSeconds": 65 }, names: ["gateway.headersTimeoutSeconds", "gateway.keepAliveTimeoutSeconds"] },
  { rule: "gateway shutdown timeout >= request timeout", set: { "gateway.shutdownTimeoutSeconds": 30 }, names: ["gateway.shutdownTimeoutSeconds", "gateway.requestTimeoutSeconds"] },
  {
    rule: "gateway grace period > preStop + delay + shutdown",
    set: { "gateway.terminationGracePeriodSeconds": 60 },
    names: ["gateway.terminationGracePeriodSeconds", "gateway.shutdownTimeoutSeconds", "gateway.shutdownDelaySeconds"],
  },
  { rule: "task timeout < RabbitMQ consumer timeout", set: { "rabbitmq.consumerTimeoutSeconds": 100 }, names: ["processor.taskTimeoutSeconds", "rabbitmq.consumerTimeoutSeconds"] },
  {
    rule: "task timeout + drain margin < grace period",
    set: { "processor.terminationGracePeriodSeconds": 150 },
    names: ["processor.taskTimeoutSeconds", "processor.drainMarginSeconds", "processor.terminationGracePeriodSeconds"],
  },
  {
    rule: "gateway readiness fails before endpoint removal",
    set: { "gateway.preStopSleepSeconds": 0, "gateway.shutdownDelaySeconds": 5 },
    names: ["gateway.preStopSleepSeconds", "gateway.shutdownDelaySeconds", "gateway.readinessProbe.periodSeconds", "gateway.readinessProbe.failureThreshold"],
  },
  {
    rule: "web readiness fails before endpoint removal",
    set: { "web.readinessProbe.failureThreshold": 5 },
    names: ["web.preStopSleepSeconds", "web.shutdownDelaySeconds", "web.readinessProbe.periodSeconds", "web.readinessProbe.failureThreshold"],
  },
  {
    rule: "stalled-after > task timeout x delivery limit",
    set: { "processor.stalledAfterSeconds": 360 },
    names: ["processor.stalledAfterSeconds", "processor.taskTimeoutSeconds", "rabbitmq.deliveryLimit"],
  },
  // 120 x 3 = 360, and the back-offs 30 + 60 (capped) = 90: 400 is not enough.
  {
    rule: "stalled-after > ... + the retry back-offs",
    set: { "processor.stalledAfterSeconds": 400, "processor.retryBaseSeconds": 30 },
    names: ["processor.stalledAfterSeconds", "processor.retryBaseSeconds", "processor.retryMaxSeconds"],
  },
  {
    rule: "scale-down window >= task timeout (engine hpa)",
    set: { "processor.autoscaling.scaleDownStabilizationSeconds": 60, "processor.autoscaling.engine": "hpa" },
    names: ["processor.autoscaling.scaleDownStabilizationSeconds", "processor.taskTimeoutSeconds"],
  },
  {
    rule: "scale-down window >= task timeout (engine keda)",
    set: { "processor.autoscaling.scaleDownStabilizationSeconds": 60, "processor.autoscaling.engine": "keda" },
    names: ["processor.autoscaling.scaleDownStabilizationSeconds", "processor.taskTimeoutSeconds"],
  },
];

describe("the timeout chain is validated", () => {
  it("accepts the defaults", () => {
    const result = renderResult();
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });

  it.each(TIMEOUT_RULES.map((r) => [r.rule, r] as const))("refuses a break of: %s", (_rule, { set, names }) => {
    const result = renderResult({ set });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("VALUES VALIDATION");
    // One message (one line) names every value involved.
    const lines = result.stderr.split("\n").filter((line) => line.startsWith("- "));
    const line = lines.find((l) => names.every((name) => l.includes(name)));
    expect(line, `no message naming ${names.join(", ")} in:\n${result.stderr}`).toBeDefined();
  });

  it("reports every broken rule at once", () => {
    const result = renderResult({ set: { "gateway.keepAliveTimeoutSeconds": 50, "rabbitmq.consumerTimeoutSeconds": 60 } });
    expect(result.stderr).toContain("gateway.keepAliveTimeoutSeconds (50) must be greater than edge.idleTimeoutSeconds (60)");
    expect(result.stderr).toContain("processor.taskTimeoutSeconds (120) must be below rabbitmq.consumerTimeoutSeconds (60)");
  });
});

describe("values.schema.json", () => {
  const schema = JSON.parse(readFileSync(join(CHART, "values.schema.json"), "utf8")) as Record<string, unknown>;

  it.each([["gateway.typo"], ["processor.autoscaling.keda.typo"], ["processor.autoscaling.operator.typo"], ["operator.typo"], ["typo"], ["networkPolicy.dns.typo"]])(
    "makes helm reject the unknown key %s",
    (key) => {
      const result = renderResult({ set: { [key]: "1" } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/additional propert(y|ies) 'typo' not allowed/);
    },
  );

  it("rejects a value of the wrong type or format", () => {
    expect(renderResult({ set: { "gateway.requestTimeoutSeconds": "soon" } }).status).not.toBe(0);
    expect(renderResult({ set: { "uploads.minClientBandwidth": "fast" } }).status).not.toBe(0);
    expect(renderResult({ set: { "processor.autoscaling.engine": "magic" } }).status).not.toBe(0);
  });

  it("is draft-07, accepts every ci values file and closes every object with properties", () => {
    expect(schema["$schema"]).toBe("http://json-schema.org/draft-07/schema#");
    const ajv = new Ajv({ allErrors: true, strict: true });
    const validate = ajv.compile(schema);
    for (const file of CI_VALUES) expect(validate(mergedValues([file])), `${basename(file)}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    expect(validate(mergeValuesWithTypo())).toBe(false);
    const open: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (!node || typeof node !== "object") return;
      const n = node as Record<string, unknown>;
      if (n["properties"] !== undefined && n["additionalProperties"] !== false) open.push(path);
      for (const [key, child] of Object.entries(n)) walk(child, `${path}/${key}`);
    };
    walk(schema, "#");
    expect(open).toEqual([]);
  });

  function mergeValuesWithTypo(): unknown {
    const values = mergedValues();
    values.web.image.typo = true;
    return values;
  }
});

describe("values.yaml documentation and README", () => {
  const valuesText = readFileSync(join(CHART, "values.yaml"), "utf8");
  const values: unknown = parse(valuesText);
  const keys = paramKeys(valuesText);
  const readme = readFileSync(join(CHART, "README.md"), "utf8");

  it("documents every value with a @param, and every @param is a value", () => {
    expect(keys.length).toBeGreaterThan(100);
    for (const key of keys) expect(valueAt(values, key).found, key).toBe(true);
    for (const leaf of leafPaths(values))
      expect(
        keys.some((k) => leaf === k || leaf.startsWith(`${k}.`)),
        `${leaf} has no @param`,
      ).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("lists every @param in the README, whose table is up to date", () => {
    for (const key of keys) expect(readme, key).toContain(`| \`${key}\` |`);
    const check = runScript("charts/docflow/scripts/readme.ts", ["--check"]);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });

  it("explains the timeout chain in the README, with every value of the rules", () => {
    const section = readme.slice(readme.indexOf("## The timeout chain"));
    for (const { names } of TIMEOUT_RULES) for (const name of names) expect(section, name).toContain(name);
  });
});
