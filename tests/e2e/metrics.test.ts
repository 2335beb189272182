import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { processorPort, startStack, type Stack } from "../support/stack.ts";

/** Sum of a Prometheus series' samples whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
}

/**
 * The metrics an SRE graphs (README "Observe", the chart's dashboard and alerts) exist and count
 * what really happened: one document through the real gateway and processor.
 */
describe("metrics of one document", () => {
  let stack: Stack;
  let dir: string;
  let gateway: string;
  let processor: string;
  let namespace: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-metrics-"));
    stack = await startStack({ env: { DOCFLOW_RANGE_SIZE: "2" } });
    namespace = stack.env.DOCFLOW_AMQP_NAMESPACE!;
    const tenant = Object.keys(stack.tokens)[0]!;
    const auth = { authorization: `Bearer ${stack.tokens[tenant]}` };
    await makeTextPdf(join(dir, "m.pdf"), defaultPages(5));
    const res = await fetch(`${stack.baseUrl}/v1/documents?filename=m.pdf`, { method: "POST", headers: { ...auth, "content-type": "application/pdf" }, body: await readFile(join(dir, "m.pdf")) });
    const { id } = (await res.json()) as Job;
    for (let i = 0; i < 300; i++) {
      const job = (await (await fetch(`${stack.baseUrl}/v1/jobs/${id}`, { headers: auth })).json()) as Job;
      if (job.status === "completed") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    gateway = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    // The job reads completed a moment before its finish task has ended (and been counted).
    for (let i = 0; i < 100; i++) {
      processor = await (await fetch(`http://127.0.0.1:${processorPort(stack)}/metrics`)).text();
      if (sample(processor, "docflow_task_duration_seconds_count", { stage: "finish" }) >= 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("gateway: the upload's route, the bytes, the job and the confirmed publish of its inspect message", () => {
    expect(sample(gateway, "http_server_request_duration_seconds_count", { http_route: "/v1/documents", http_response_status_code: "202" })).toBe(1);
    expect(sample(gateway, "docflow_upload_bytes_total")).toBeGreaterThan(0);
    expect(sample(gateway, "docflow_jobs_created_total", { content_type: "application/pdf" })).toBe(1);
    expect(sample(gateway, "docflow_queue_publish_duration_seconds_count", { messaging_destination_name: `${namespace}.inspect`, outcome: "ok" })).toBe(1);
    expect(sample(gateway, "docflow_eventloop_delay_seconds_count")).toBeGreaterThan(0);
    expect(sample(gateway, "docflow_eventloop_cpu_seconds_total")).toBeGreaterThan(0);
    expect(sample(gateway, "docflow_eventloop_cpu_wait_seconds_total")).toBeGreaterThanOrEqual(0);
  });

  it("processor: every task by stage, the queue wait of each message, the pages, the outcome and what it published", () => {
    // 5 pages in ranges of 1 + 2 + 2: three render tasks.
    expect(sample(processor, "docflow_task_duration_seconds_count", { stage: "inspect", outcome: "ok" })).toBe(1);
    expect(sample(processor, "docflow_task_duration_seconds_count", { stage: "render", outcome: "ok" })).toBe(3);
    expect(sample(processor, "docflow_task_duration_seconds_count", { stage: "finish", outcome: "ok" })).toBe(1);
    expect(sample(processor, "docflow_queue_wait_seconds_count", { stage: "render" })).toBe(3);
    expect(sample(processor, "docflow_queue_wait_seconds_count", { stage: "inspect" })).toBe(1);
    expect(sample(processor, "docflow_pages_processed_total")).toBe(5);
    expect(sample(processor, "docflow_job_outcomes_total", { status: "completed" })).toBe(1);
    // A 5-page job is small: its ranges go through the render stage's express lane.
    expect(sample(processor, "docflow_queue_publish_duration_seconds_count", { messaging_destination_name: `${namespace}.render.express`, outcome: "ok" })).toBe(3);
    expect(sample(processor, "docflow_queue_wait_seconds_count", { stage: "render", queue: `${namespace}.render.express` })).toBe(3);
    expect(sample(processor, "docflow_tasks_in_flight")).toBe(0);
  });
});
