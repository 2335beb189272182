import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type ChannelModel } from "amqplib";
import { v7 as uuidv7 } from "uuid";
import { AmqpConnection, WorkPublisher, deadLetterQueue, workQueue } from "@docflow/infra";
import { createLogger } from "@docflow/telemetry";
import { deleteTopology } from "../support/amqp.ts";
import { testServices, uniqueName } from "../support/env.ts";

describe("RabbitMQ topology and publishing on a real broker", () => {
  const namespace = uniqueName("q");
  const publisher = new WorkPublisher(namespace);
  let conn: AmqpConnection;
  let raw: ChannelModel;

  beforeAll(async () => {
    const { amqpUrl } = testServices();
    conn = await AmqpConnection.open({ url: amqpUrl, connectionName: "test", namespace, deliveryLimit: 2, setup: publisher.setup }, createLogger("test"));
    raw = await connect(amqpUrl);
  });
  afterAll(async () => {
    await deleteTopology(await raw.createChannel(), namespace);
    await raw.close();
    await conn.close();
  });

  it("declares durable quorum queues with a delivery limit and a dead-letter queue", async () => {
    const ch = await raw.createChannel();
    const q = await ch.checkQueue(workQueue(namespace, "inspect"));
    expect(q.queue).toBe(`${namespace}.inspect`);
    const dlq = await ch.checkQueue(deadLetterQueue(namespace, "inspect"));
    expect(dlq.queue).toBe(`${namespace}.inspect.dlq`);
    await ch.close();
  });

  it("publishes with confirms: the message is on the queue when publish resolves", async () => {
    const jobId = uuidv7();
    await publisher.publish({ v: 1, stage: "inspect", jobId, tenant: "acme" });
    const ch = await raw.createChannel();
    const msg = await ch.get(workQueue(namespace, "inspect"), { noAck: true });
    expect(msg && JSON.parse(msg.content.toString())).toEqual({ v: 1, stage: "inspect", jobId, tenant: "acme" });
    expect(msg && msg.properties.deliveryMode).toBe(2);
    await ch.close();
  });

  it("dead-letters a message that keeps failing after the delivery limit, instead of looping", async () => {
    const jobId = uuidv7();
    await publisher.publish({ v: 1, stage: "render", jobId, tenant: "acme", range: { first: 1, last: 1 } });
    const ch = await raw.createChannel();
    let deliveries = 0;
    for (let i = 0; i < 10; i++) {
      const msg = await ch.get(workQueue(namespace, "render"), { noAck: false });
      if (!msg) {
        await new Promise((r) => setTimeout(r, 100));
        if (deliveries > 0) {
          const dl = await ch.get(deadLetterQueue(namespace, "render"), { noAck: true });
          if (dl) {
            expect(JSON.parse(dl.content.toString()).jobId).toBe(jobId);
            break;
          }
        }
        continue;
      }
      deliveries++;
      ch.nack(msg, false, true);
    }
    // delivery limit 2: delivered and rejected twice, then dead-lettered.
    expect(deliveries).toBe(2);
    expect(await ch.get(workQueue(namespace, "render"))).toBe(false);
    await ch.close();
  });

  it("refuses to publish while disconnected instead of hanging", async () => {
    const offline = new WorkPublisher(namespace);
    await expect(offline.publish({ v: 1, stage: "inspect", jobId: uuidv7(), tenant: "acme" })).rejects.toMatchObject({ code: "queue_unavailable" });
  });
});
