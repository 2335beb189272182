import { queuePublishHistogram, registerEventLoopMetrics } from "@docflow/telemetry";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "processor" });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  // The event-loop delay that shows a blocked loop (see registerEventLoopMetrics).
  registerEventLoopMetrics(registry);
  return {
    registry,
    queuePublishDuration: queuePublishHistogram(registry),
    taskDuration: new Histogram({
      name: "docflow_task_duration_seconds",
      help: "Duration of processing tasks, by stage, queue (a stage's work queue or the render express lane) and outcome.",
      labelNames: ["stage", "queue", "outcome"] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: "docflow_queue_wait_seconds",
      help: "Time work messages waited between their publish and the start of their processing, by stage and queue (a stage's work queue or the render express lane).",
      labelNames: ["stage", "queue"] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
      registers: [registry],
    }),
    tasksInFlight: new Gauge({ name: "docflow_tasks_in_flight", help: "Tasks running in this processor.", registers: [registry] }),
    tasksRedelivered: new Counter({
      name: "docflow_tasks_redelivered_total",
      help: "Tasks this processor received again because an earlier delivery was never acked (its processor stopped, was killed or gave it back), by stage. Scale-in that removes busy pods shows here.",
      labelNames: ["stage"] as const,
      registers: [registry],
    }),
    pages: new Counter({ name: "docflow_pages_processed_total", help: "Pages rendered and extracted.", registers: [registry] }),
    jobOutcomes: new Counter({ name: "docflow_job_outcomes_total", help: "Jobs finished, by status.", labelNames: ["status"] as const, registers: [registry] }),
    jobsOpen: new Gauge({ name: "docflow_jobs_open", help: "Jobs queued or processing (every tenant's), as this processor's last sweep read them.", registers: [registry] }),
    jobsRedispatched: new Counter({
      name: "docflow_jobs_redispatched_total",
      help: "Jobs this processor's sweeper sent again because their work message was lost (queued: never reached the broker; processing: stalled), by the status they were in.",
      labelNames: ["status"] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
