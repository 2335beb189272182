import { Histogram, type Registry } from "prom-client";

/**
 * `docflow_queue_publish_duration_seconds`: work messages published, by destination queue and
 * outcome, and how long the broker took to confirm each. The gateway and the processor both
 * publish (inspect; ranges, retries, finish), so both register it the same way.
 */
export function queuePublishHistogram(registry: Registry) {
  return new Histogram({
    name: "docflow_queue_publish_duration_seconds",
    help: "Work messages published, by destination queue and outcome, and how long the broker took to confirm each.",
    labelNames: ["messaging_destination_name", "outcome"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
}
