/**
 * charts/docflow `metrics.*`: the Prometheus Operator objects (ServiceMonitors, the PrometheusRule
 * with its five alerts) and the Grafana dashboard ConfigMap. All off by default; ci/observability-values.yaml
 * turns them on (with its own queue namespace `docs.prod` and thresholds), so the generic chart
 * tests lint, render and validate them too.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHART, find, mergedValues, render, renderResult, workload, type K8sObject } from "./support.ts";

const OBSERVABILITY = join(CHART, "ci", "observability-values.yaml");
const KINDS = ["ServiceMonitor", "PrometheusRule"];
const ALERTS = ["DocflowEventLoopLagHigh", "DocflowQueueBacklog", "DocflowJobFailureRate", "DocflowDeadLetters", "DocflowWorkRedispatched"];

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Brackets, braces and parentheses balance and quotes pair up: a cheap "could be PromQL" check. */
function looksLikePromQL(expr: string): void {
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  expect((unquoted.match(/"/g) ?? []).length % 2, expr).toBe(0);
  const stack: string[] = [];
  const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  for (const char of unquoted) {
    if ("([{".includes(char)) stack.push(char);
    else if (char in pairs) expect(stack.pop(), expr).toBe(pairs[char]);
  }
  expect(stack, expr).toEqual([]);
  // Every selector's matchers are name op "value" pairs.
  for (const selector of expr.matchAll(/\{([^{}]*)\}/g)) {
    for (const matcher of (selector[1] ?? "").split(/,\s*/)) expect(matcher, expr).toMatch(/^[a-z_]+(=|!=|=~|!~)"(?:[^"\\]|\\.)*"$/);
  }
}

/** The regex a PromQL string literal holds (`"a\\.b"` holds `a\.b`). */
function promString(literal: string): string {
  return JSON.parse(`"${literal}"`) as string;
}

function rules(objects: K8sObject[]): Map<string, Rule> {
  const rule = objects.find((o) => o.kind === "PrometheusRule");
  if (!rule) throw new Error("no PrometheusRule");
  return new Map((rule.spec.groups as { rules: Rule[] }[]).flatMap((g) => g.rules).map((r) => [r.alert, r]));
}

function dashboard(objects: K8sObject[]): { panels: { title: string; targets: { expr: string; datasource: { uid: string } }[] }[]; templating: { list: { name: string }[] } } {
  const configMap = find(objects, "ConfigMap", "docflow-dashboard");
  return JSON.parse(configMap.data["docflow.json"] as string);
}

describe("metrics objects", () => {
  it("are all off by default", () => {
    const objects = render();
    expect(objects.filter((o) => KINDS.includes(o.kind))).toEqual([]);
    expect(objects.some((o) => o.metadata.labels?.["grafana_dashboard"] !== undefined)).toBe(false);
  });

  it("each turns on alone", () => {
    const only = (key: string) => render({ set: { [`metrics.${key}.enabled`]: true } });
    expect(
      only("serviceMonitor")
        .filter((o) => KINDS.includes(o.kind))
        .map((o) => o.kind),
    ).toEqual(["ServiceMonitor", "ServiceMonitor", "ServiceMonitor"]);
    expect(
      only("prometheusRule")
        .filter((o) => KINDS.includes(o.kind))
        .map((o) => o.kind),
    ).toEqual(["PrometheusRule"]);
    const withDashboard = only("dashboard");
    expect(withDashboard.filter((o) => KINDS.includes(o.kind))).toEqual([]);
    find(withDashboard, "ConfigMap", "docflow-dashboard");
  });
});

describe("PrometheusRule", () => {
  it("has the five alerts, with PromQL-looking expressions on the documented metrics and the default thresholds", () => {
    const alerts = rules(render({ set: { "metrics.prometheusRule.enabled": true } }));
    expect([...alerts.keys()]).toEqual(ALERTS);
    for (const rule of alerts.values()) looksLikePromQL(rule.expr);
    const lag = alerts.get("DocflowEventLoopLagHigh");
    expect(lag?.expr).toBe(
      'histogram_quantile(0.99, sum by (namespace, job, pod, le) (rate(docflow_eventloop_delay_seconds_bucket{namespace="docflow", job=~"docflow-(gateway|processor)"}[5m]))) > 0.1',
    );
    expect(lag?.for).toBe("5m");
    expect(alerts.get("DocflowQueueBacklog")?.expr).toMatch(/^sum by \(vhost, queue\) \(rabbitmq_queue_messages_ready\{queue=~"docflow\\\\\.\.\*", queue!~"\.\*\\\\\.dlq"\}\) > 100$/);
    const failures = alerts.get("DocflowJobFailureRate")?.expr ?? "";
    expect(failures).toContain('rate(docflow_job_outcomes_total{namespace="docflow", job=~"docflow-(gateway|processor)", status="failed"}[10m])');
    expect(failures).toMatch(/\) \/ sum\(rate\(docflow_job_outcomes_total\{[^}]*\}\[10m\]\)\) > 0\.1$/);
    expect(alerts.get("DocflowDeadLetters")?.expr).toBe('sum by (vhost, queue) (rabbitmq_queue_messages{queue=~"docflow\\\\..*\\\\.dlq"}) > 0');
    expect(alerts.get("DocflowWorkRedispatched")?.expr).toBe('sum(increase(docflow_jobs_redispatched_total{namespace="docflow", job=~"docflow-(gateway|processor)"}[15m])) > 0');
    expect(alerts.get("DocflowWorkRedispatched")?.for).toBe("1m");
    for (const rule of alerts.values()) {
      expect(rule.labels.severity, rule.alert).toBe("warning");
      expect(rule.annotations.summary, rule.alert).toBeTruthy();
      expect(rule.annotations.description, rule.alert).toContain("See docs/troubleshooting.md (");
    }
  });

  it("names the configured queue namespace (as a literal regex) and takes every threshold from the values", () => {
    const values = mergedValues([OBSERVABILITY]).metrics.prometheusRule;
    const objects = render({ valuesFiles: [OBSERVABILITY] });
    const alerts = rules(objects);
    expect(find(objects, "PrometheusRule", "docflow").metadata.labels?.["release"]).toBe("kube-prometheus-stack");
    const queueRegex = (expr: string) => promString(/queue=~"((?:[^"\\]|\\.)*)"/.exec(expr)?.[1] ?? "");
    const backlog = alerts.get("DocflowQueueBacklog");
    expect(new RegExp(`^${queueRegex(backlog?.expr ?? "")}$`).test("docs.prod.render")).toBe(true);
    expect(new RegExp(`^${queueRegex(backlog?.expr ?? "")}$`).test("docsXprod.render")).toBe(false);
    expect(backlog?.expr).toMatch(new RegExp(`> ${values.queueBacklog.threshold}$`));
    expect(backlog?.for).toBe(values.queueBacklog.for);
    const dlq = new RegExp(`^${queueRegex(alerts.get("DocflowDeadLetters")?.expr ?? "")}$`);
    expect(dlq.test("docs.prod.render.dlq")).toBe(true);
    expect(dlq.test("docs.prod.render")).toBe(false);
    expect(alerts.get("DocflowEventLoopLagHigh")?.expr).toMatch(new RegExp(` > ${values.eventLoopLag.thresholdSeconds}$`));
    expect(alerts.get("DocflowJobFailureRate")?.expr).toMatch(new RegExp(` > ${values.jobFailureRate.threshold}$`));
    expect(alerts.get("DocflowWorkRedispatched")?.expr).toMatch(new RegExp(` > ${values.workRedispatched.threshold}$`));
    for (const rule of alerts.values()) {
      looksLikePromQL(rule.expr);
      expect(rule.labels.severity).toBe("critical");
      expect(rule.annotations.description).toContain(values.docsUrl);
    }
  });

  it("selects the release's own jobs under another release name", () => {
    const alerts = rules(render({ set: { "metrics.prometheusRule.enabled": true, fullnameOverride: "docs" } }));
    expect(alerts.get("DocflowEventLoopLagHigh")?.expr).toContain('job=~"docs-(gateway|processor)"');
  });
});

describe("ServiceMonitors", () => {
  it("select exactly their component's Service and scrape /metrics on the port the container serves it on", () => {
    const objects = render({ valuesFiles: [OBSERVABILITY] });
    const services = objects.filter((o) => o.kind === "Service");
    const monitors = objects.filter((o) => o.kind === "ServiceMonitor");
    expect(monitors.map((m) => m.metadata.name)).toEqual(["docflow-gateway", "docflow-operator", "docflow-processor"]);
    for (const [component, port, containerPort] of [
      ["gateway", "http", 8080],
      ["processor", "http-metrics", 8081],
      ["operator", "http-metrics", 8082],
    ] as const) {
      const monitor = find(objects, "ServiceMonitor", `docflow-${component}`);
      expect(monitor.metadata.labels?.["release"]).toBe("kube-prometheus-stack");
      expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ["docflow"] });
      const selected = services.filter((s) => Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => s.metadata.labels?.[k] === v));
      expect(selected.map((s) => s.metadata.name)).toEqual([`docflow-${component}`]);
      expect(monitor.spec.endpoints).toEqual([{ port, path: "/metrics", scheme: "http", interval: "30s", scrapeTimeout: "10s" }]);
      const servicePort = selected[0]?.spec.ports.find((p: { name: string }) => p.name === port);
      expect(servicePort, `${component} Service port ${port}`).toBeDefined();
      const container = workload(objects, `docflow-${component}`).spec.template.spec.containers[0];
      const target = container.ports.find((p: { name: string }) => p.name === servicePort.targetPort);
      expect(target?.containerPort).toBe(containerPort);
      // the processor and the operator serve /metrics on their probe port
      expect(container.livenessProbe.httpGet.port).toBe(target?.name);
    }
  });

  it("are only rendered for enabled components", () => {
    const objects = render({ set: { "metrics.serviceMonitor.enabled": true, "gateway.enabled": false, "operator.enabled": false, "processor.autoscaling.engine": "hpa" } });
    expect(objects.filter((o) => o.kind === "ServiceMonitor").map((o) => o.metadata.name)).toEqual(["docflow-processor"]);
  });
});

describe("Grafana dashboard ConfigMap", () => {
  const objects = render({ valuesFiles: [OBSERVABILITY] });
  const configMap = find(objects, "ConfigMap", "docflow-dashboard");
  const json = dashboard(objects);
  const exprs = json.panels.flatMap((p) => p.targets.map((t) => t.expr));

  it("is labelled for Grafana's sidecar and carries the given annotations", () => {
    expect(configMap.metadata.labels?.["grafana_dashboard"]).toBe("1");
    expect(configMap.metadata.annotations).toEqual({ grafana_folder: "docflow" });
    expect(Object.keys(configMap.data)).toEqual(["docflow.json"]);
  });

  it("has panels for every documented metric", () => {
    const panelFor = (metric: string) => json.panels.filter((p) => p.targets.some((t) => t.expr.includes(metric))).map((p) => p.title);
    for (const metric of [
      "http_server_request_duration_seconds_count",
      "http_server_request_duration_seconds_bucket",
      "docflow_eventloop_delay_seconds_bucket",
      "docflow_upload_bytes_total",
      "rabbitmq_queue_messages_ready",
      "docflow_pages_processed_total",
      "docflow_task_duration_seconds_bucket",
      "docflow_jobs_open",
      "docflow_jobs_redispatched_total",
    ]) {
      expect(panelFor(metric), metric).not.toEqual([]);
    }
    expect(exprs.some((e) => e.includes("sum by (le, stage)") && e.includes("docflow_task_duration_seconds_bucket"))).toBe(true);
    expect(exprs.some((e) => e.includes("by (http_route") && e.includes('http_response_status_code=~"5.."'))).toBe(true);
    expect(exprs.some((e) => e.includes("by (job, pod, le)") && e.includes("docflow_eventloop_delay_seconds_bucket"))).toBe(true);
  });

  it("selects this release's series and queues, with no placeholder left, from a chosen data source", () => {
    expect(configMap.data["docflow.json"]).not.toContain("__DOCFLOW_");
    expect(json.templating.list.map((v) => v.name)).toContain("datasource");
    for (const panel of json.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) {
        looksLikePromQL(target.expr);
        expect(target.datasource.uid).toBe("${datasource}");
        if (target.expr.includes("rabbitmq_")) expect(target.expr).toContain('queue=~"docs\\\\.prod\\\\..*');
        else expect(target.expr).toContain('namespace="docflow", job=~"docflow-(gateway|processor)"');
      }
    }
    expect(new Set(json.panels.map((p) => p.title)).size).toBe(json.panels.length);
  });
});

describe("metrics values", () => {
  it.each([
    ["metrics.serviceMonitor.interval", "30 seconds"],
    ["metrics.prometheusRule.eventLoopLag.for", "5 minutes"],
    ["metrics.prometheusRule.jobFailureRate.threshold", "2"],
    ["metrics.prometheusRule.typo", "1"],
  ])("refuses %s=%s", (key, value) => {
    const result = renderResult({ set: { [key]: Number.isNaN(Number(value)) ? value : Number(value) } });
    expect(result.status).not.toBe(0);
  });
});
