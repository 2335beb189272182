import { connect, type Channel, type ChannelModel, type ConfirmChannel, type RecoveringChannelModel } from "amqplib";
import { randomUUID } from "node:crypto";
import { DocflowError, STAGES, WorkMessage, type Stage } from "@docflow/contracts";
import { SpanKind, injectContext, withSpan, type Logger } from "@docflow/telemetry";

/** Work queue of a stage; the namespace (default `docflow`) lets several installs or test runs share a broker. */
export const workQueue = (namespace: string, stage: Stage) => `${namespace}.${stage}`;
export const deadLetterQueue = (namespace: string, stage: Stage) => `${namespace}.${stage}.dlq`;
/**
 * The render stage's express lane: a job's first range and every range of a
 * small job are published here instead of to `<namespace>.render`, and
 * processors consume it on its own channel with its own prefetch. A 1-page job
 * then never waits behind the ranges of a long document that fill the render
 * queue. Dead letters go to the render stage's DLQ, like the render queue's.
 */
export const expressQueue = (namespace: string) => `${namespace}.render.express`;
/**
 * The queue a work message of `stage` is consumed from: the stage's work
 * queue, or with `express` the render stage's express lane.
 */
export function laneQueue(namespace: string, stage: Stage, express = false): string {
  if (!express) return workQueue(namespace, stage);
  if (stage !== "render") throw new Error(`the ${stage} stage has no express lane`);
  return expressQueue(namespace);
}
/** Dead-lettered work is routed through this exchange to `<queue>.dlq`. */
export const deadLetterExchange = (namespace: string) => `${namespace}.dlx`;
/**
 * Where a failed message waits `delayMs` before it returns to its work queue.
 * One queue per delay: a queue-wide TTL expires messages in order, whereas
 * per-message TTLs of different lengths would wait behind each other.
 */
export const retryQueue = (namespace: string, stage: Stage, delayMs: number, express = false) => `${laneQueue(namespace, stage, express)}.retry.${delayMs}ms`;

export interface TopologyOptions {
  /** Prefix of every queue and exchange name. */
  namespace: string;
  /**
   * Deliveries of one message before RabbitMQ dead-letters it. The quorum
   * queue's `x-delivery-limit` counts redeliveries, so it is set one lower.
   */
  deliveryLimit: number;
  /**
   * Back-off delays of the retry queues to declare (one per failed attempt, in
   * order); none when absent (the gateway only publishes first attempts).
   */
  retryDelaysMs?: readonly number[] | undefined;
}

/**
 * Declares the work queues: durable quorum queues with a delivery limit, each
 * dead-lettering into its stage's quorum DLQ, and their retry queues; the
 * render stage also has its express lane (`expressQueue`) with its own retry
 * queues and the render DLQ. Idempotent; both services call it.
 */
export async function assertTopology(ch: Channel, options: TopologyOptions): Promise<void> {
  const { namespace } = options;
  const dlx = deadLetterExchange(namespace);
  await ch.assertExchange(dlx, "direct", { durable: true });
  for (const stage of STAGES) {
    const dlq = deadLetterQueue(namespace, stage);
    await ch.assertQueue(dlq, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await ch.bindQueue(dlq, dlx, dlq);
    await assertLane(ch, options, stage, false);
    if (stage === "render") await assertLane(ch, options, stage, true);
  }
}

/** One work queue (a stage's, or the express lane) and the retry queues that return messages to it. */
async function assertLane(ch: Channel, options: TopologyOptions, stage: Stage, express: boolean): Promise<void> {
  const { namespace } = options;
  const queue = laneQueue(namespace, stage, express);
  await ch.assertQueue(queue, {
    durable: true,
    arguments: {
      "x-queue-type": "quorum",
      "x-delivery-limit": options.deliveryLimit - 1,
      "x-dead-letter-exchange": deadLetterExchange(namespace),
      "x-dead-letter-routing-key": deadLetterQueue(namespace, stage),
    },
  });
  for (const delayMs of new Set(options.retryDelaysMs ?? [])) {
    // Expired messages go back to the work queue through the default exchange.
    // At-least-once dead-lettering (needs reject-publish overflow) so a retry is
    // not dropped when the work queue briefly cannot take it.
    await ch.assertQueue(retryQueue(namespace, stage, delayMs, express), {
      durable: true,
      arguments: {
        "x-queue-type": "quorum",
        "x-message-ttl": delayMs,
        "x-overflow": "reject-publish",
        "x-dead-letter-strategy": "at-least-once",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
      },
    });
  }
}

export interface AmqpOptions extends TopologyOptions {
  url: string;
  /** Shown in the RabbitMQ management UI. */
  connectionName: string;
  /** Runs after every (re)connect, after the topology is declared. */
  setup?: (model: ChannelModel) => Promise<void>;
}

/**
 * A RabbitMQ connection that recovers by itself (amqplib recovery) and
 * redeclares the topology and the caller's channels on every reconnect.
 */
export class AmqpConnection {
  readonly #model: RecoveringChannelModel;
  #connected = false;

  private constructor(model: RecoveringChannelModel) {
    this.#model = model;
  }

  static async open(options: AmqpOptions, log: Logger): Promise<AmqpConnection> {
    const model = await connect(options.url, {
      clientProperties: { connection_name: options.connectionName },
      recovery: {
        initialDelay: 200,
        maxDelay: 5000,
        maxRetries: Infinity,
        waitForConnect: false,
        setup: async (m: ChannelModel) => {
          const ch = await m.createChannel();
          await assertTopology(ch, options);
          await ch.close();
          await options.setup?.(m);
        },
      },
    });
    const self = new AmqpConnection(model);
    model.on("connect", () => {
      self.#connected = true;
      log.info("rabbitmq connected");
    });
    model.on("disconnect", (err: Error) => {
      self.#connected = false;
      log.warn({ err }, "rabbitmq disconnected; reconnecting");
    });
    model.on("error", (err: Error) => log.warn({ err }, "rabbitmq connection error"));
    model.on("handler-error", (err: Error, event: string) => log.error({ err, event }, "error in rabbitmq event handler"));
    await model.waitForConnect();
    self.#connected = true;
    return self;
  }

  get connected(): boolean {
    return this.#connected;
  }

  async close(): Promise<void> {
    await this.#model.close().catch(() => {});
  }
}

export interface PublishOptions {
  headers?: Record<string, string>;
  /** A render message: publish it to (or retry it through) the express lane (`expressQueue`). */
  express?: boolean;
  /** How long to wait for the broker's confirm. */
  timeoutMs?: number;
}

/**
 * Publishes work messages with publisher confirms: `publish` resolves only when
 * RabbitMQ has taken responsibility for the message (persisted to its quorum).
 */
/** Header with the time (ms since the epoch) a work message was sent: its queue wait is measured from it. */
export const SENT_AT_HEADER = "x-docflow-sent-at";

export interface WorkPublisherOptions {
  /** Called after every publish with its destination, outcome and how long the broker took to confirm (for metrics). */
  onPublish?: (queue: string, outcome: "ok" | "failed", seconds: number) => void;
}

export class WorkPublisher {
  #channel: ConfirmChannel | null = null;
  readonly #namespace: string;
  readonly #onPublish: WorkPublisherOptions["onPublish"];

  constructor(namespace: string, options: WorkPublisherOptions = {}) {
    this.#namespace = namespace;
    this.#onPublish = options.onPublish;
  }

  /** Pass to `AmqpConnection.open({ setup })` so a fresh confirm channel exists after every reconnect. */
  readonly setup = async (model: ChannelModel): Promise<void> => {
    const ch = await model.createConfirmChannel();
    ch.on("close", () => {
      if (this.#channel === ch) this.#channel = null;
    });
    ch.on("error", () => {});
    this.#channel = ch;
  };

  get ready(): boolean {
    return this.#channel !== null;
  }

  async publish(message: WorkMessage, options: PublishOptions = {}): Promise<void> {
    await this.#publishTo(laneQueue(this.#namespace, message.stage, options.express), message, options);
  }

  /**
   * Publishes `message` to its lane's retry queue of `delayMs` (declared by
   * `assertTopology` with `retryDelaysMs`); RabbitMQ moves it back to the same
   * work queue (or express lane) when the delay has passed. With confirms, like `publish`.
   */
  async publishRetry(message: WorkMessage, delayMs: number, options: PublishOptions = {}): Promise<void> {
    await this.#publishTo(retryQueue(this.#namespace, message.stage, delayMs, options.express), message, options);
  }

  /**
   * Sets `message` aside in its stage's dead-letter queue, through the
   * dead-letter exchange as RabbitMQ itself does (so whatever is bound there
   * sees both kinds). Put the reason in `options.headers`.
   */
  async publishDeadLetter(message: WorkMessage, options: PublishOptions = {}): Promise<void> {
    const dlq = deadLetterQueue(this.#namespace, message.stage);
    await this.#publishTo(dlq, message, options, deadLetterExchange(this.#namespace));
  }

  async #publishTo(queue: string, message: WorkMessage, options: PublishOptions, exchange = ""): Promise<void> {
    const messageId = randomUUID();
    // The producer span's context travels in the message headers: the consumer's span is its child.
    await withSpan(
      `send ${queue}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "rabbitmq",
          "messaging.operation.type": "send",
          "messaging.operation.name": "send",
          "messaging.destination.name": queue,
          "messaging.message.id": messageId,
          "docflow.job.id": message.jobId,
        },
      },
      async () => {
        const started = performance.now();
        let outcome: "ok" | "failed" = "failed";
        try {
          await this.#send(exchange, queue, messageId, message, { ...options, headers: injectContext({ ...options.headers, [SENT_AT_HEADER]: String(Date.now()) }) });
          outcome = "ok";
        } finally {
          this.#onPublish?.(queue, outcome, (performance.now() - started) / 1000);
        }
      },
    );
  }

  async #send(exchange: string, routingKey: string, messageId: string, message: WorkMessage, options: PublishOptions): Promise<void> {
    const ch = this.#channel;
    if (!ch) throw new DocflowError("queue_unavailable");
    const body = Buffer.from(JSON.stringify(WorkMessage.parse(message)));
    const timeoutMs = options.timeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DocflowError("queue_unavailable", `no publisher confirm within ${timeoutMs} ms`)), timeoutMs);
      ch.publish(
        exchange,
        routingKey,
        body,
        {
          persistent: true,
          contentType: "application/json",
          messageId,
          timestamp: Math.floor(Date.now() / 1000),
          headers: options.headers ?? {},
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (err) reject(new DocflowError("queue_unavailable", "the broker refused the message", { cause: err }));
          else resolve();
        },
      );
    });
  }
}
