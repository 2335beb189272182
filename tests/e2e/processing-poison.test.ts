import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ChannelModel } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { launchService, type ServiceProcess } from "@docflow/tools/launch";
import { testServices } from "../support/env.ts";
import { eventually } from "../support/poll.ts";
import { startStack, type Stack } from "../support/stack.ts";

/**
 * A document that takes down every processor that works on it (as one that
 * exhausts memory would) must not go round forever: after the configured
 * deliveries (2 here) RabbitMQ dead-letters its message, and a processor fails
 * the job with a reason. The processors are killed with SIGKILL mid-range.
 */
describe("a poison document that kills its processors", () => {
  let stack: Stack;
  let amqp: ChannelModel;
  const extra: ServiceProcess[] = [];

  /** One more processor of the stack, started by the test (the stack's own cannot be restarted). */
  async function startProcessor(): Promise<ServiceProcess> {
    const processor = launchService("processor", { env: stack.env });
    extra.push(processor);
    await processor.waitForLine((l) => l.includes("processor consuming"), "that it is consuming");
    return processor;
  }

  const until = (what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number) =>
    eventually(what, ok, { timeoutMs, everyMs: 50, context: () => `${stack.logs().slice(-3000)}\n${extra.map((e) => e.logs().slice(-3000)).join("\n")}` });

  beforeAll(async () => {
    // One range of the whole document, so the single render message takes seconds.
    stack = await startStack({ env: { DOCFLOW_RANGE_SIZE: "1000", DOCFLOW_FIRST_RANGE_SIZE: "1000", DOCFLOW_DELIVERY_LIMIT: "2" } });
    amqp = await connect(testServices().amqpUrl);
  });
  afterAll(async () => {
    for (const processor of extra) await processor.stop({ signal: "SIGKILL" });
    await amqp?.close().catch(() => {});
    await stack?.stop();
  });

  it("is dead-lettered after the configured deliveries and its job fails with the reason", async () => {
    const tenant = Object.keys(stack.tokens)[0]!;
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${stack.baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${stack.tokens[tenant]}`, ...(init.headers as Record<string, string>) } });
    const ns = stack.env.DOCFLOW_AMQP_NAMESPACE!;
    const ch = await amqp.createChannel();
    const tap = (await ch.assertQueue("", { exclusive: true })).queue;
    await ch.bindQueue(tap, `${ns}.dlx`, `${ns}.render.dlq`);

    const dir = await mkdtemp(join(tmpdir(), "docflow-poison-"));
    await makeTextPdf(join(dir, "p.pdf"), defaultPages(150));
    const res = await api("/v1/documents?filename=p.pdf", { method: "POST", body: await readFile(join(dir, "p.pdf")), headers: { "content-type": "application/pdf" } });
    const { id } = (await res.json()) as Job;
    const rendering = (logs: string) => new RegExp(`"jobId":"${id}","pageCount":150.*ranges dispatched`).test(logs);

    // First delivery: the stack's processor takes the range; it dies mid-range.
    await until("the range to be dispatched", () => rendering(stack.logs()), 60_000);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(stack.pids.processor, "SIGKILL");

    // Second delivery: a fresh processor gets it back and dies too.
    const second = await startProcessor();
    await until("the redelivery", () => new RegExp(`"jobId":"${id}".*redelivered task`).test(second.logs()), 30_000);
    await new Promise((r) => setTimeout(r, 500));
    await second.stop({ signal: "SIGKILL" });

    // The delivery limit is reached: RabbitMQ dead-letters it, the next processor fails the job.
    const third = await startProcessor();
    let job: Job | undefined;
    await until(
      "the job to fail",
      async () => {
        job = (await (await api(`/v1/jobs/${id}`)).json()) as Job;
        return job.status === "failed";
      },
      30_000,
    );
    expect(job!.error).toEqual({ code: "processing_failed", message: "Processing stopped at the render stage: the processor working on it stopped 2 times, so the document was set aside." });
    // It never got a third delivery.
    expect(third.logs()).not.toMatch(new RegExp(`"jobId":"${id}".*redelivered task`));
    const dead = await ch.get(tap, { noAck: true });
    expect(dead && JSON.parse(dead.content.toString())).toMatchObject({ stage: "render", jobId: id, range: { first: 1, last: 150 } });
    await ch.close();
  });
});
