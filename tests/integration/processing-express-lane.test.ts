import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Channel, type ChannelModel, type GetMessage } from "amqplib";
import { v7 as uuidv7 } from "uuid";
import { WORK_HEADERS } from "@docflow/contracts";
import { AmqpConnection, WorkPublisher, deadLetterQueue, expressQueue, retryQueue, workQueue } from "@docflow/infra";
import { createLogger } from "@docflow/telemetry";
import { deleteTopology } from "../support/amqp.ts";
import { testServices, uniqueName } from "../support/env.ts";

/** The render stage's express lane on a real RabbitMQ: its own queue, retries that come back to it, dead letters in the render DLQ. */
describe("processing queues: the render express lane", () => {
  const namespace = uniqueName("pxl");
  const publisher = new WorkPublisher(namespace);
  const delays = [300];
  let conn: AmqpConnection;
  let raw: ChannelModel;
  let ch: Channel;
  const message = (jobId: string) => ({ v: 1 as const, stage: "render" as const, tenant: "acme", jobId, range: { first: 1, last: 1 } });

  beforeAll(async () => {
    const { amqpUrl } = testServices();
    conn = await AmqpConnection.open({ url: amqpUrl, connectionName: "test", namespace, deliveryLimit: 2, retryDelaysMs: delays, setup: publisher.setup }, createLogger("test"));
    raw = await connect(amqpUrl);
    ch = await raw.createChannel();
  });
  afterAll(async () => {
    await deleteTopology(ch, namespace, delays);
    await raw.close();
    await conn.close();
  });

  async function getWithin(queue: string, ms: number, noAck = true): Promise<GetMessage | null> {
    const started = Date.now();
    while (Date.now() - started < ms) {
      const msg = await ch.get(queue, { noAck });
      if (msg) return msg;
      await new Promise((r) => setTimeout(r, 25));
    }
    return null;
  }

  it("is declared next to the render queue, with its own retry queues", async () => {
    expect((await ch.checkQueue(expressQueue(namespace))).queue).toBe(`${namespace}.render.express`);
    expect((await ch.checkQueue(retryQueue(namespace, "render", 300, true))).queue).toBe(`${namespace}.render.express.retry.300ms`);
  });

  it("takes express messages apart from the render queue's", async () => {
    const jobId = uuidv7();
    await publisher.publish(message(jobId), { express: true });
    const got = await getWithin(expressQueue(namespace), 5_000);
    expect(JSON.parse(got!.content.toString())).toEqual(message(jobId));
    expect(await ch.get(workQueue(namespace, "render"))).toBe(false);
  });

  it("returns a retried express message to the express lane after its back-off, not to the render queue", async () => {
    const jobId = uuidv7();
    const sent = Date.now();
    await publisher.publishRetry(message(jobId), 300, { express: true, headers: { [WORK_HEADERS.attempts]: "1" } });
    const back = await getWithin(expressQueue(namespace), 5_000);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(280);
    expect(JSON.parse(back!.content.toString())).toMatchObject({ jobId });
    expect(back!.properties.headers?.[WORK_HEADERS.attempts]).toBe("1");
    expect(await ch.get(workQueue(namespace, "render"))).toBe(false);
  });

  it("dead-letters an express message that keeps failing into the render DLQ (the broker's delivery limit)", async () => {
    const jobId = uuidv7();
    await publisher.publish(message(jobId), { express: true });
    // deliveryLimit 2: two deliveries given back, then the broker dead-letters it.
    for (let i = 0; i < 2; i++) {
      const msg = await getWithin(expressQueue(namespace), 5_000, false);
      expect(msg).not.toBeNull();
      ch.nack(msg!, false, true);
    }
    const dead = await getWithin(deadLetterQueue(namespace, "render"), 10_000);
    expect(JSON.parse(dead!.content.toString())).toMatchObject({ stage: "render", jobId });
    expect(await ch.get(expressQueue(namespace))).toBe(false);
  });
});
