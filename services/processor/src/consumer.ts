import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { DocflowError, STAGES, WorkMessage, type Stage } from "@docflow/contracts";
import { deadLetterQueue, workQueue } from "@docflow/core";
import { SpanKind, extractContext, withSpan } from "@docflow/telemetry";
import type { ProcessorContext } from "./context.ts";
import { failJob, isPermanent, jobErrorOf } from "./job-events.ts";
import { inspect } from "./stages/inspect.ts";
import { render } from "./stages/render.ts";

const HANDLERS = { inspect, render } as const;

/**
 * Consumes the work queues with manual acks and prefetch = concurrency, and
 * the dead-letter queues. Outcomes: success -> ack; a problem with the
 * document -> the job fails now, ack; anything else -> requeue, and after the
 * queue's delivery limit RabbitMQ dead-letters the message and the DLQ
 * consumer fails the job. A message can therefore never loop forever.
 */
export class Consumers {
  readonly #ctx: ProcessorContext;
  #channel: Channel | null = null;
  #tags: string[] = [];
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #stopping = false;

  constructor(ctx: ProcessorContext) {
    this.#ctx = ctx;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get consuming(): boolean {
    return this.#channel !== null && this.#tags.length > 0;
  }

  /** Pass to `AmqpConnection.open({ setup })`: (re)subscribes after every (re)connect. */
  readonly setup = async (model: ChannelModel): Promise<void> => {
    if (this.#stopping) return;
    const ch = await model.createChannel();
    ch.on("error", (err: Error) => this.#ctx.log.warn({ err }, "consumer channel error"));
    ch.on("close", () => {
      if (this.#channel === ch) {
        this.#channel = null;
        this.#tags = [];
      }
    });
    await ch.prefetch(this.#ctx.config.DOCFLOW_PROCESSOR_CONCURRENCY);
    const tags: string[] = [];
    const namespace = this.#ctx.config.DOCFLOW_AMQP_NAMESPACE;
    for (const stage of STAGES) {
      tags.push((await ch.consume(workQueue(namespace, stage), (m) => void this.#onWork(ch, stage, m), { noAck: false })).consumerTag);
      tags.push((await ch.consume(deadLetterQueue(namespace, stage), (m) => void this.#onDeadLetter(ch, stage, m), { noAck: false })).consumerTag);
    }
    this.#channel = ch;
    this.#tags = tags;
  };

  async #onWork(ch: Channel, stage: Stage, msg: ConsumeMessage | null): Promise<void> {
    if (!msg) return;
    const { log, metrics, config } = this.#ctx;
    let message: WorkMessage;
    try {
      message = WorkMessage.parse(JSON.parse(msg.content.toString("utf8")));
    } catch (err) {
      log.error({ err, stage }, "malformed work message; dead-lettering it");
      safe(() => ch.nack(msg, false, false));
      return;
    }
    this.#inFlight++;
    metrics.tasksInFlight.inc();
    const started = process.hrtime.bigint();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DocflowError("processing_timeout")), config.DOCFLOW_TASK_TIMEOUT_MS);
    let outcome = "ok";
    try {
      const queue = workQueue(config.DOCFLOW_AMQP_NAMESPACE, stage);
      await withSpan(
        `process ${queue}`,
        {
          kind: SpanKind.CONSUMER,
          parent: extractContext(msg.properties.headers),
          attributes: {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": String(msg.properties.messageId ?? ""),
            "messaging.rabbitmq.message.delivery_tag": msg.fields.deliveryTag,
            "docflow.job.id": message.jobId,
            ...(message.stage === "render" ? { "docflow.range.first": message.range.first, "docflow.range.last": message.range.last } : {}),
          },
        },
        () => (HANDLERS[stage] as (c: ProcessorContext, m: WorkMessage, s: AbortSignal) => Promise<void>)(this.#ctx, message, deadline.signal),
      );
      safe(() => ch.ack(msg));
    } catch (raw) {
      const err = deadline.signal.aborted && !isPermanent(raw) ? deadline.signal.reason : raw;
      if (isPermanent(err)) {
        outcome = "failed";
        try {
          await failJob(this.#ctx, message.tenant, message.jobId, jobErrorOf(err));
          safe(() => ch.ack(msg));
        } catch (failErr) {
          log.warn({ err: failErr, jobId: message.jobId }, "could not record the failure; requeueing");
          safe(() => ch.nack(msg, false, true));
        }
      } else {
        outcome = "retry";
        const deliveries = Number(msg.properties.headers?.["x-delivery-count"] ?? 0) + 1;
        log.warn({ err, jobId: message.jobId, stage, deliveries }, "task failed; requeueing (dead-lettered after the delivery limit)");
        safe(() => ch.nack(msg, false, true));
      }
    } finally {
      clearTimeout(timer);
      metrics.taskDuration.observe({ stage, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      metrics.tasksInFlight.dec();
      this.#inFlight--;
      if (this.#inFlight === 0) this.#idle.splice(0).forEach((resolve) => resolve());
    }
  }

  async #onDeadLetter(ch: Channel, stage: Stage, msg: ConsumeMessage | null): Promise<void> {
    if (!msg) return;
    let message: WorkMessage;
    try {
      message = WorkMessage.parse(JSON.parse(msg.content.toString("utf8")));
    } catch {
      this.#ctx.log.error({ stage }, "malformed dead letter dropped");
      safe(() => ch.ack(msg));
      return;
    }
    try {
      await failJob(this.#ctx, message.tenant, message.jobId, {
        code: "processing_failed",
        message: `Processing failed ${this.#ctx.config.DOCFLOW_DELIVERY_LIMIT} times at the ${stage} stage; the document was set aside.`,
      });
      safe(() => ch.ack(msg));
    } catch (err) {
      this.#ctx.log.warn({ err, jobId: message.jobId }, "could not fail a dead-lettered job; will retry");
      safe(() => ch.nack(msg, false, true));
    }
  }

  /** Stops taking messages, then waits (bounded) for in-flight tasks; unfinished ones are redelivered elsewhere. */
  async stop(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    const ch = this.#channel;
    if (ch) await Promise.all(this.#tags.map((t) => ch.cancel(t).catch(() => {})));
    if (this.#inFlight > 0) {
      await Promise.race([new Promise<void>((r) => this.#idle.push(r)), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    }
    await ch?.close().catch(() => {});
  }
}

/** Acks on a closed channel throw; the broker redelivers those messages anyway. */
function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    /* channel already closed */
  }
}
