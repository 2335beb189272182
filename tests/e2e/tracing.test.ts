import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { startOtlpReceiver, type ReceivedSpan } from "../support/otlp.ts";
import { startStack, type Stack } from "../support/stack.ts";

const PRODUCER = 4;
const CONSUMER = 5;

describe("one trace from the upload to the last page", () => {
  let stack: Stack;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    stack = await startStack({
      processors: 2,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_BSP_SCHEDULE_DELAY: "100",
        OTEL_METRICS_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        DOCFLOW_RANGE_SIZE: "3",
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await otlp?.close();
  });

  it("links gateway and processors, producers and consumers, and every page, in one trace", async () => {
    const dir = await mkdtemp(join(tmpdir(), "docflow-trace-"));
    await makeTextPdf(join(dir, "t.pdf"), defaultPages(7));
    const tenant = Object.keys(stack.tokens)[0]!;
    const res = await fetch(`${stack.baseUrl}/v1/documents?filename=t.pdf`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.tokens[tenant]}` },
      body: await readFile(join(dir, "t.pdf")),
    });
    const { id } = (await res.json()) as Job;
    for (let i = 0; i < 300; i++) {
      const job = (await (await fetch(`${stack.baseUrl}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${stack.tokens[tenant]}` } })).json()) as Job;
      if (job.status === "completed") break;
      await new Promise((r) => setTimeout(r, 200));
    }

    // The upload request's server span starts the trace.
    let root: ReceivedSpan | undefined;
    let trace: ReceivedSpan[] = [];
    for (let i = 0; i < 50; i++) {
      root = otlp.spans.find(
        (s) =>
          s.service === "gateway" && s.kind === 2 && s.parentSpanId === "" && /POST/.test(s.name) && String(s.attributes["url.path"] ?? s.attributes["http.target"] ?? "").startsWith("/v1/documents"),
      );
      trace = root ? otlp.spans.filter((s) => s.traceId === root!.traceId) : [];
      if (trace.filter((s) => /^page \d+$/.test(s.name)).length === 7 && trace.some((s) => s.attributes["docflow.event.type"] === "job.completed")) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(root, `no server span for the upload; spans: ${otlp.spans.map((s) => `${s.service}:${s.name}`).join(", ")}`).toBeDefined();

    const services = new Set(trace.map((s) => s.service));
    expect(services).toEqual(new Set(["gateway", "processor"]));

    // Every consumer span's parent is the producer span of the message it processed.
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const consumers = trace.filter((s) => s.kind === CONSUMER);
    expect(consumers.map((s) => s.name)).toEqual(expect.arrayContaining([expect.stringMatching(/^process .*\.inspect$/), expect.stringMatching(/^process .*\.render(\.express)?$/)]));
    for (const consumer of consumers) {
      const parent = byId.get(consumer.parentSpanId);
      expect(parent?.kind, consumer.name).toBe(PRODUCER);
      expect(parent?.name).toBe(consumer.name.replace(/^process /, "send "));
      expect(parent?.attributes["messaging.message.id"]).toBe(consumer.attributes["messaging.message.id"]);
    }
    // The first message was sent by the gateway within the upload request.
    const inspectSend = trace.find((s) => s.kind === PRODUCER && s.name.endsWith(".inspect"));
    expect(inspectSend?.service).toBe("gateway");
    // 7 pages in ranges of 1 + 3 + 3: three render messages (a small job's: the express lane), every page in the trace, engines as child processes.
    expect(consumers.filter((s) => /\.render(\.express)?$/.test(s.name))).toHaveLength(3);
    expect(
      trace
        .filter((s) => /^page \d+$/.test(s.name))
        .map((s) => s.attributes["docflow.page"])
        .sort(),
    ).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(trace.some((s) => s.name === "exec pdftoppm")).toBe(true);
    expect(trace.some((s) => s.name === "exec pdfinfo")).toBe(true);
    // The live events too: a NATS producer span per event, every page.ready and the completion.
    const events = trace.filter((s) => s.kind === PRODUCER && s.attributes["messaging.system"] === "nats");
    expect(events.every((s) => s.name === `publish docflow.events.${tenant}.${id}`)).toBe(true);
    expect(
      events
        .filter((s) => s.attributes["docflow.event.type"] === "page.ready")
        .map((s) => s.attributes["docflow.page"])
        .sort(),
    ).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(events.filter((s) => s.attributes["docflow.event.type"] === "job.completed")).toHaveLength(1);
    // S3 calls are in it too.
    expect(trace.some((s) => s.attributes["rpc.service"] === "S3" || /^S3\./.test(s.name))).toBe(true);
  });

  it("writes the trace id on every log line of a request", async () => {
    const logs = stack
      .logs()
      .split("\n")
      .filter((l) => l.includes('"msg":"inspected; ranges dispatched"'));
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expect(line).toMatch(/"trace_id":"[0-9a-f]{32}","span_id":"[0-9a-f]{16}"/);
  });
});
