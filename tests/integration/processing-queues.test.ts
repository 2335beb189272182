import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Channel, type ChannelModel, type GetMessage } from "amqplib";
import { v7 as uuidv7 } from "uuid";
import { WORK_HEADERS } from "@docflow/contracts";
import { AmqpConnection, WorkPublisher, deadLetterQueue, workQueue } from "@docflow/infra";
import { createLogger } from "@docflow/telemetry";
import { deleteTopology } from "../support/amqp.ts";
import { testServices, uniqueName } from "../support/env.ts";

/** The processor's queue topology on a real RabbitMQ: a queue per stage, retry queues that delay, dead letters with reasons. */
describe("processing queues: stages, retry back-off and dead letters on a real broker", () => {
  const namespace = uniqueName("pq");
  const publisher = new WorkPublisher(namespace);
  const delays = [300, 600];
  let conn: AmqpConnection;
  let raw: ChannelModel;
  let ch: Channel;

  beforeAll(async () => {
    const { amqpUrl } = testServices();
    conn = await AmqpConnection.open({ url: amqpUrl, connectionName: "test", namespace, deliveryLimit: 3, retryDelaysMs: delays, setup: publisher.setup }, createLogger("test"));
    raw = await connect(amqpUrl);
    ch = await raw.createChannel();
  });
  afterAll(async () => {
    await deleteTopology(ch, namespace, delays);
    await raw.close();
    await conn.close();
  });

  async function getWithin(queue: string, ms: number): Promise<{ msg: GetMessage; after: number } | null> {
    const started = Date.now();
    while (Date.now() - started < ms) {
      const msg = await ch.get(queue, { noAck: true });
      if (msg) return { msg, after: Date.now() - started };
      await new Promise((r) => setTimeout(r, 25));
    }
    return null;
  }

  it("declares a work queue and a DLQ for every stage, convert and finish included", async () => {
    for (const stage of ["inspect", "convert", "render", "finish"] as const) {
      expect((await ch.checkQueue(workQueue(namespace, stage))).queue).toBe(`${namespace}.${stage}`);
      expect((await ch.checkQueue(deadLetterQueue(namespace, stage))).queue).toBe(`${namespace}.${stage}.dlq`);
    }
  });

  it("holds a retried message for its back-off, then returns it to the work queue with its attempt count", async () => {
    const jobId = uuidv7();
    const sent = Date.now();
    await publisher.publishRetry({ v: 1, stage: "render", jobId, tenant: "acme", range: { first: 3, last: 4 } }, 300, { headers: { [WORK_HEADERS.attempts]: "1" } });
    const back = await getWithin(workQueue(namespace, "render"), 5_000);
    expect(back).not.toBeNull();
    expect(Date.now() - sent).toBeGreaterThanOrEqual(280);
    expect(JSON.parse(back!.msg.content.toString())).toEqual({ v: 1, stage: "render", jobId, tenant: "acme", range: { first: 3, last: 4 } });
    expect(back!.msg.properties.headers?.[WORK_HEADERS.attempts]).toBe("1");
  });

  it("does not let a longer back-off hold up a shorter one (one queue per delay)", async () => {
    const slow = uuidv7();
    const quick = uuidv7();
    await publisher.publishRetry({ v: 1, stage: "inspect", jobId: slow, tenant: "acme" }, 600);
    await publisher.publishRetry({ v: 1, stage: "inspect", jobId: quick, tenant: "acme" }, 300);
    const first = await getWithin(workQueue(namespace, "inspect"), 5_000);
    const second = await getWithin(workQueue(namespace, "inspect"), 5_000);
    expect([first, second].map((m) => JSON.parse(m!.msg.content.toString()).jobId)).toEqual([quick, slow]);
  });

  it("sets a message aside in its stage's DLQ with the reason in its headers", async () => {
    const jobId = uuidv7();
    await publisher.publishDeadLetter(
      { v: 1, stage: "convert", jobId, tenant: "acme" },
      {
        headers: { [WORK_HEADERS.attempts]: "3", [WORK_HEADERS.errorCode]: "processing_failed", [WORK_HEADERS.error]: "soffice crashed (signal SIGSEGV)" },
      },
    );
    const dead = await getWithin(deadLetterQueue(namespace, "convert"), 5_000);
    expect(JSON.parse(dead!.msg.content.toString())).toMatchObject({ stage: "convert", jobId });
    expect(dead!.msg.properties.headers).toMatchObject({ "x-docflow-attempts": "3", "x-docflow-error": "soffice crashed (signal SIGSEGV)" });
    expect(await ch.get(workQueue(namespace, "convert"))).toBe(false);
  });
});
