import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "operator" });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    leader: new Gauge({ name: "docflow_operator_leader", help: "1 while this replica holds the Lease and reconciles, else 0.", registers: [registry] }),
    reconcileDuration: new Histogram({
      name: "docflow_operator_reconcile_duration_seconds",
      help: "Duration of one reconcile of a pool (read backlog and processors, decide, apply), by outcome.",
      labelNames: ["pool", "outcome"] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    reconcileErrors: new Counter({ name: "docflow_operator_reconcile_errors_total", help: "Reconciles that failed (retried with back-off).", labelNames: ["pool"] as const, registers: [registry] }),
    decisions: new Counter({
      name: "docflow_operator_scale_decisions_total",
      help: "Replica changes the operator made, by direction (up, down) and reason.",
      labelNames: ["pool", "direction", "reason"] as const,
      registers: [registry],
    }),
    backlogPages: new Gauge({
      name: "docflow_operator_backlog_pages",
      help: "Pages not yet rendered across the open jobs of the pool's stages, as last read.",
      labelNames: ["pool"] as const,
      registers: [registry],
    }),
    backlogMessages: new Gauge({
      name: "docflow_operator_backlog_messages",
      help: "Ready messages of the pool's whole-message stages (inspect, convert, finish), as last read.",
      labelNames: ["pool"] as const,
      registers: [registry],
    }),
    pagesPerSecond: new Gauge({
      name: "docflow_operator_pages_per_second_per_replica",
      help: "Pages/s one busy replica delivers, as measured (the pool's estimate until measured).",
      labelNames: ["pool"] as const,
      registers: [registry],
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof createMetrics>;
