import { describe, expect, it } from "vitest";
import { parseProcessorMetrics } from "./pods.ts";

describe("parseProcessorMetrics", () => {
  it("reads in-flight tasks, pages and redeliveries, summed over label sets", () => {
    const text = [
      "# HELP docflow_tasks_in_flight Tasks running in this processor.",
      "# TYPE docflow_tasks_in_flight gauge",
      'docflow_tasks_in_flight{service="processor"} 2',
      'docflow_pages_processed_total{service="processor"} 1234',
      'docflow_tasks_redelivered_total{stage="render",service="processor"} 3',
      'docflow_tasks_redelivered_total{stage="inspect",service="processor"} 1',
      'docflow_task_duration_seconds_bucket{le="1"} 99',
      "docflow_tasks_in_flight_other 7",
    ].join("\n");
    expect(parseProcessorMetrics(text)).toEqual({ inFlight: 2, pagesTotal: 1234, redeliveredTotal: 4 });
  });

  it("refuses a page that is not a processor's", () => {
    expect(() => parseProcessorMetrics("process_cpu_seconds_total 1\n")).toThrow(/docflow_tasks_in_flight/);
  });
});
