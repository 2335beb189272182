/**
 * charts/docflow `telemetry.collector`: an OpenTelemetry Collector in the release (off by default;
 * ci/collector-values.yaml turns it on, so the generic chart tests lint, render, validate and
 * install it into the API server too). What an SRE relies on: the services send it OTLP, it
 * scrapes their metrics, every exporter gets traces and metrics, it runs locked down, and only
 * the flows it needs are open.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CHART, find, render, workload, type K8sObject } from "./support.ts";

const COLLECTOR = join(CHART, "ci", "collector-values.yaml");

const envOf = (deployment: K8sObject, name: string): string | undefined => deployment.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === name)?.value;

describe("OpenTelemetry Collector in the release", () => {
  it("is off by default, and the services then export nothing", () => {
    const objects = render();
    expect(objects.filter((o) => o.metadata.labels?.["app.kubernetes.io/component"] === "collector")).toEqual([]);
    expect(envOf(find(objects, "Deployment", "docflow-gateway"), "OTEL_EXPORTER_OTLP_ENDPOINT")).toBeUndefined();
  });

  it("receives the services' traces and scrapes their metrics, sending both to every exporter", () => {
    const objects = render({ valuesFiles: [COLLECTOR] });
    for (const service of ["gateway", "processor", "operator"]) {
      const deployment = workload(objects, `docflow-${service}`);
      expect(envOf(deployment, "OTEL_EXPORTER_OTLP_ENDPOINT")).toBe("http://docflow-collector:4318");
      expect(envOf(deployment, "OTEL_EXPORTER_OTLP_PROTOCOL")).toBe("http/protobuf");
    }
    const config = parse(find(objects, "ConfigMap", "docflow-collector").data["config.yaml"]);
    expect(config.service.pipelines.traces).toMatchObject({ receivers: ["otlp"], exporters: ["otlphttp"] });
    expect(config.service.pipelines.metrics).toMatchObject({ receivers: ["otlp", "prometheus"], exporters: ["otlphttp"] });
    expect(config.exporters.otlphttp.endpoint).toBe("https://otlp.observability.example.com");
    const [scrape] = config.receivers.prometheus.config.scrape_configs;
    // Pods of the release's own namespace only.
    expect(scrape.kubernetes_sd_configs[0].role).toBe("pod");
    expect(scrape.kubernetes_sd_configs[0].namespaces.names).toEqual([find(objects, "Deployment", "docflow-collector").metadata.namespace ?? expect.any(String)]);
    expect(scrape.kubernetes_sd_configs[0].selectors[0].label).toContain("app.kubernetes.io/instance=docflow");
    // The ports the gateway and the processor serve /metrics on.
    const gatewayPorts = find(objects, "Deployment", "docflow-gateway").spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name);
    const processorPorts = workload(objects, "docflow-processor").spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name);
    const keep = new RegExp(`^(${scrape.relabel_configs.find((r: { action?: string }) => r.action === "keep").regex})$`);
    expect(gatewayPorts.some((p: string) => keep.test(p))).toBe(true);
    expect(processorPorts.some((p: string) => keep.test(p))).toBe(true);
    // The operator's too (reconciles, decisions, the backlog it saw), when it runs.
    const operatorPorts = find(objects, "Deployment", "docflow-operator").spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name);
    expect(operatorPorts.some((p: string) => keep.test(p))).toBe(true);
    expect(scrape.kubernetes_sd_configs[0].selectors[0].label).toContain("app.kubernetes.io/component in (gateway,processor,operator)");
    const withoutOperator = parse(
      find(render({ valuesFiles: [COLLECTOR], set: { "operator.enabled": false, "processor.autoscaling.engine": "hpa" } }), "ConfigMap", "docflow-collector").data["config.yaml"],
    );
    expect(withoutOperator.receivers.prometheus.config.scrape_configs[0].kubernetes_sd_configs[0].selectors[0].label).toContain("component in (gateway,processor)");
    const service = find(objects, "Service", "docflow-collector");
    expect(service.spec.ports.map((p: { port: number }) => p.port)).toEqual([4317, 4318]);
  });

  it("runs locked down, with probes, reading only pods of its namespace", () => {
    const objects = render({ valuesFiles: [COLLECTOR] });
    const pod = find(objects, "Deployment", "docflow-collector").spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    const [container] = pod.containers;
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) expect(container[probe]?.httpGet?.port, probe).toBe("health");
    expect(container.resources.limits.memory).toBeDefined();
    const role = find(objects, "Role", "docflow-collector");
    expect(role.rules).toEqual([{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }]);
  });

  it("opens only its flows: the services to it, it to their metrics, the API server and its backend", () => {
    const objects = render({ valuesFiles: [COLLECTOR] });
    const policy = find(objects, "NetworkPolicy", "docflow-collector");
    const components = (peers: { podSelector?: { matchLabels: Record<string, string> } }[]) => peers.map((p) => p.podSelector?.matchLabels["app.kubernetes.io/component"]);
    // OTLP from the services and the operator.
    expect(components(policy.spec.ingress[0].from)).toEqual(["gateway", "processor", "operator"]);
    const backend = policy.spec.egress.at(-1);
    expect(backend).toEqual({ ports: [{ port: 443, protocol: "TCP" }], to: [{ ipBlock: { cidr: "203.0.113.0/24" } }] });
    // To the metrics ports of the services and the operator.
    const toMetrics = policy.spec.egress.find((r: { to?: unknown[]; ports: { port: number }[] }) => r.ports.some((p) => p.port === 8081));
    expect(components(toMetrics.to)).toEqual(["gateway", "processor", "operator"]);
    expect(toMetrics.ports.map((p: { port: number }) => p.port)).toEqual([8080, 8081, 8082]);
    for (const service of ["gateway", "processor", "operator"]) {
      const own = find(objects, "NetworkPolicy", `docflow-${service}`);
      const toCollector = own.spec.egress.find(
        (r: { to?: { podSelector?: { matchLabels: Record<string, string> } }[] }) => r.to?.[0]?.podSelector?.matchLabels["app.kubernetes.io/component"] === "collector",
      );
      expect(
        toCollector?.ports.map((p: { port: number }) => p.port),
        `${service} -> collector`,
      ).toEqual([4317, 4318]);
      const fromCollector = own.spec.ingress.find(
        (r: { from?: { podSelector?: { matchLabels: Record<string, string> } }[] }) => r.from?.[0]?.podSelector?.matchLabels["app.kubernetes.io/component"] === "collector",
      );
      expect(fromCollector, `collector -> ${service} metrics`).toBeDefined();
    }
  });

  it("leaves the services on telemetry.otlpEndpoint when that names another collector", () => {
    const objects = render({ valuesFiles: [COLLECTOR], set: { "telemetry.otlpEndpoint": "http://central-collector.observability:4318" } });
    expect(envOf(find(objects, "Deployment", "docflow-gateway"), "OTEL_EXPORTER_OTLP_ENDPOINT")).toBe("http://central-collector.observability:4318");
  });
});
