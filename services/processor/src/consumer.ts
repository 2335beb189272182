import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { DocflowError, STAGES, WORK_HEADERS, WorkMessage, objectKeys, type Stage } from "@docflow/contracts";
import { SENT_AT_HEADER, deadLetterQueue, laneQueue } from "@docflow/infra";
import { SpanKind, extractContext, withSpan } from "@docflow/telemetry";
import { JobEnded, watchJob } from "./cancel.ts";
import { retryDelays } from "./config.ts";
import type { ProcessorContext, TaskInfo } from "./context.ts";
import { failJob, isPermanent, jobErrorOf, type JobFailure } from "./job-events.ts";
import { convert } from "./stages/convert.ts";
import { finish } from "./stages/finish.ts";
import { inspect } from "./stages/inspect.ts";
import { render } from "./stages/render.ts";

/** Why tasks still running when the shutdown grace period ends are aborted. */
export const SHUTDOWN = new Error("the processor is shutting down");

type Handler = (ctx: ProcessorContext, message: WorkMessage, signal: AbortSignal, task: TaskInfo) => Promise<void>;
const HANDLERS = { inspect, convert, render, finish } as Record<Stage, Handler>;

/** Stages whose tasks watch their job and stop when it is canceled (finish is a single quick update). */
const WATCHED: ReadonlySet<Stage> = new Set(["inspect", "convert", "render"]);

/** A task being worked on, and what may stop it. */
interface RunningTask {
  /** process.hrtime.bigint() at the start. */
  started: bigint;
  /** Aborted on the task timeout (`processing_timeout`) or with `SHUTDOWN`. */
  deadline: AbortSignal;
  /** Aborted with `JobEnded` when the task's job ends meanwhile (watched stages only). */
  watcher: AbortSignal;
  /** Either of them: what the handler gets. */
  signal: AbortSignal;
  stopWatching(): void;
  /** Stops the deadline and the watcher. */
  end(): void;
}

/** What becomes of a task that threw. */
export type TaskOutcome = { outcome: "stopped"; reason: JobEnded } | { outcome: "requeued" } | { outcome: "failed"; error: JobFailure } | { outcome: "retry"; error: unknown };

/**
 * Decides what becomes of a task that threw `raw`: its job ended (stopped),
 * shutdown ran out of time (requeued), a problem with the document (failed:
 * the job fails now) or anything else (retry). A task whose deadline passed
 * fails with that deadline's reason unless it already failed for the document.
 */
export function taskOutcome(raw: unknown, task: { deadline: AbortSignal; watcher: AbortSignal }): TaskOutcome {
  if (task.watcher.aborted && task.watcher.reason instanceof JobEnded) return { outcome: "stopped", reason: task.watcher.reason };
  if (task.deadline.reason === SHUTDOWN) return { outcome: "requeued" };
  const error: unknown = task.deadline.aborted && !isPermanent(raw) ? task.deadline.reason : raw;
  return isPermanent(error) ? { outcome: "failed", error } : { outcome: "retry", error };
}

/**
 * Consumes each stage's work queue on its own channel with its own prefetch
 * (`DOCFLOW_<STAGE>_PREFETCH`), the render stage's express lane likewise
 * (`DOCFLOW_EXPRESS_PREFETCH`), with manual acks, and the dead-letter queues.
 * Outcomes of a task:
 * - success -> ack;
 * - a problem with the document -> the job fails now, ack;
 * - its job was canceled or deleted meanwhile -> its outputs are removed, ack;
 * - anything else (transient) -> retried after a back-off through the retry
 *   queue of the lane it came from (base x 2^(attempt-1): an express task
 *   stays express); once `DOCFLOW_DELIVERY_LIMIT` attempts
 *   have failed, the message goes to the DLQ with the reason in its headers.
 * A processor killed mid-task never acks: RabbitMQ redelivers the message, and
 * its delivery limit dead-letters a message that keeps killing processors. A
 * message can therefore never loop forever. The DLQ consumer fails the job.
 */
export class Consumers {
  readonly #ctx: ProcessorContext;
  #channels: Channel[] = [];
  #tags = new Map<Channel, string[]>();
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #stopping = false;
  readonly #delays: number[];
  /** Deadlines of the tasks running now: aborted when shutdown gives up waiting, which kills their children. */
  readonly #running = new Set<AbortController>();

  constructor(ctx: ProcessorContext) {
    this.#ctx = ctx;
    this.#delays = retryDelays(ctx.config);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get consuming(): boolean {
    // A channel per stage consumed, the express lane's with render, and the dead letters'.
    const stages = this.#ctx.config.DOCFLOW_PROCESSOR_STAGES;
    return this.#channels.length === stages.length + (stages.includes("render") ? 1 : 0) + 1;
  }

  #prefetch(stage: Stage): number {
    const c = this.#ctx.config;
    return { inspect: c.DOCFLOW_INSPECT_PREFETCH, convert: c.DOCFLOW_CONVERT_PREFETCH, render: c.DOCFLOW_RENDER_PREFETCH, finish: c.DOCFLOW_FINISH_PREFETCH }[stage];
  }

  /** Pass to `AmqpConnection.open({ setup })`: (re)subscribes after every (re)connect. */
  readonly setup = async (model: ChannelModel): Promise<void> => {
    if (this.#stopping) return;
    const namespace = this.#ctx.config.DOCFLOW_AMQP_NAMESPACE;
    const open = async (prefetch: number): Promise<Channel> => {
      const ch = await model.createChannel();
      ch.on("error", (err: Error) => this.#ctx.log.warn({ err }, "consumer channel error"));
      ch.on("close", () => {
        this.#channels = this.#channels.filter((c) => c !== ch);
        this.#tags.delete(ch);
      });
      await ch.prefetch(prefetch);
      return ch;
    };
    // One channel per stage: a stage's prefetch is its own, so a backlog of heavy
    // conversions never takes the places of quick inspections or renders.
    const stages = this.#ctx.config.DOCFLOW_PROCESSOR_STAGES;
    for (const stage of stages) {
      const ch = await open(this.#prefetch(stage));
      const { consumerTag } = await ch.consume(laneQueue(namespace, stage), (m) => void this.#onWork(ch, stage, false, m), { noAck: false });
      this.#tags.set(ch, [consumerTag]);
      this.#channels.push(ch);
    }
    // The express lane: its own prefetch on top of the render queue's, so its tasks (first
    // ranges, small jobs) start at once even while long documents hold every render slot.
    if (stages.includes("render")) {
      const express = await open(this.#ctx.config.DOCFLOW_EXPRESS_PREFETCH);
      const { consumerTag } = await express.consume(laneQueue(namespace, "render", true), (m) => void this.#onWork(express, "render", true, m), { noAck: false });
      this.#tags.set(express, [consumerTag]);
      this.#channels.push(express);
    }
    const dl = await open(4);
    const tags: string[] = [];
    for (const stage of STAGES) {
      tags.push((await dl.consume(deadLetterQueue(namespace, stage), (m) => void this.#onDeadLetter(dl, stage, m), { noAck: false })).consumerTag);
    }
    this.#tags.set(dl, tags);
    this.#channels.push(dl);
  };

  async #onWork(ch: Channel, stage: Stage, express: boolean, msg: ConsumeMessage | null): Promise<void> {
    if (!msg) return;
    const message = this.#parseWork(ch, stage, msg);
    if (message === undefined) return;
    const queue = laneQueue(this.#ctx.config.DOCFLOW_AMQP_NAMESPACE, stage, express);
    const repeated = this.#recordDelivery(stage, queue, msg, message);
    const task = this.#startTask(stage, message);
    let outcome: TaskOutcome["outcome"] | "ok" = "ok";
    try {
      await this.#process(stage, queue, msg, message, task.signal, repeated);
      safe(() => ch.ack(msg));
    } catch (raw) {
      task.stopWatching();
      const failed = taskOutcome(raw, task);
      outcome = failed.outcome;
      await this.#settleFailed(ch, stage, express, msg, message, failed);
    } finally {
      task.end();
      this.#ctx.metrics.taskDuration.observe({ stage, queue, outcome }, Number(process.hrtime.bigint() - task.started) / 1e9);
      this.#ctx.metrics.tasksInFlight.dec();
      this.#inFlight--;
      if (this.#inFlight === 0) this.#idle.splice(0).forEach((resolve) => resolve());
    }
  }

  /** The work message in `msg`; a malformed one is dead-lettered (undefined). */
  #parseWork(ch: Channel, stage: Stage, msg: ConsumeMessage): WorkMessage | undefined {
    try {
      return WorkMessage.parse(JSON.parse(msg.content.toString("utf8")));
    } catch (err) {
      this.#ctx.log.error({ err, stage }, "malformed work message; dead-lettering it");
      safe(() => ch.nack(msg, false, false));
      return undefined;
    }
  }

  /** Counts a delivery (redeliveries, time queued); returns whether the task repeats an earlier attempt. */
  #recordDelivery(stage: Stage, queue: string, msg: ConsumeMessage, message: WorkMessage): boolean {
    const { log, metrics } = this.#ctx;
    const headers = msg.properties.headers ?? {};
    const redelivered = msg.fields.redelivered || Number(headers["x-delivery-count"] ?? 0) > 0;
    if (redelivered) metrics.tasksRedelivered.inc({ stage });
    if (redelivered)
      log.info(
        { jobId: message.jobId, stage, ...(message.stage === "render" ? { range: message.range } : {}) },
        "redelivered task (an earlier delivery was not acked: its processor stopped or gave it back)",
      );
    const sentAt = Number(headers[SENT_AT_HEADER]);
    if (Number.isFinite(sentAt) && sentAt > 0) metrics.queueWait.observe({ stage, queue }, Math.max(0, Date.now() - sentAt) / 1000);
    // A retry copy follows an attempt that failed, possibly after its bookkeeping (e.g. the
    // publish of what a finished range released): handlers treat it like a redelivery.
    return redelivered || Number(headers[WORK_HEADERS.attempts] ?? 0) > 0;
  }

  /**
   * Counts the task in flight and arms what may stop it: its deadline
   * (`DOCFLOW_TASK_TIMEOUT_MS`, or shutdown) and, for watched stages, its job ending.
   */
  #startTask(stage: Stage, message: WorkMessage): RunningTask {
    this.#inFlight++;
    this.#ctx.metrics.tasksInFlight.inc();
    const started = process.hrtime.bigint();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DocflowError("processing_timeout")), this.#ctx.config.DOCFLOW_TASK_TIMEOUT_MS);
    this.#running.add(deadline);
    const watcher = new AbortController();
    const stopWatching = WATCHED.has(stage) ? watchJob(this.#ctx, message.tenant, message.jobId, watcher) : () => {};
    return {
      started,
      deadline: deadline.signal,
      watcher: watcher.signal,
      signal: AbortSignal.any([deadline.signal, watcher.signal]),
      stopWatching,
      end: () => {
        stopWatching();
        clearTimeout(timer);
        this.#running.delete(deadline);
      },
    };
  }

  /** Runs the stage's handler in a consumer span parented on the publisher's trace. */
  async #process(stage: Stage, queue: string, msg: ConsumeMessage, message: WorkMessage, signal: AbortSignal, repeated: boolean): Promise<void> {
    await withSpan(
      `process ${queue}`,
      {
        kind: SpanKind.CONSUMER,
        parent: extractContext(msg.properties.headers ?? {}),
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
      () => HANDLERS[stage](this.#ctx, message, signal, { repeated }),
    );
  }

  /** Acks, requeues, fails the job or retries a task that threw, as `taskOutcome` decided. */
  async #settleFailed(ch: Channel, stage: Stage, express: boolean, msg: ConsumeMessage, message: WorkMessage, failed: TaskOutcome): Promise<void> {
    switch (failed.outcome) {
      case "stopped":
        await this.#stopped(message, failed.reason);
        safe(() => ch.ack(msg));
        return;
      case "requeued":
        // Not the message's fault: back to the queue for another processor, without a retry
        // copy (RabbitMQ still counts the delivery towards its limit, as for a crash).
        safe(() => ch.nack(msg, false, true));
        return;
      case "failed":
        await this.#ctx.sources.evictJob(objectKeys.jobPrefix(message.tenant, message.jobId));
        try {
          await failJob(this.#ctx, message.tenant, message.jobId, jobErrorOf(failed.error));
          safe(() => ch.ack(msg));
        } catch (failErr) {
          this.#ctx.log.warn({ err: failErr, jobId: message.jobId }, "could not record the failure; requeueing");
          safe(() => ch.nack(msg, false, true));
        }
        return;
      case "retry":
        await this.#retry(ch, stage, express, msg, message, failed.error);
        return;
    }
  }

  /**
   * A task failed for a reason that may pass. Attempts so far = the failures
   * carried in our header (earlier copies) + this copy's deliveries. Below the
   * limit: a copy goes to the retry queue of the next back-off, and this one is
   * acked. At the limit: the message goes to the DLQ with the reason. If the
   * broker refuses either, the message is requeued as before (its own delivery
   * limit still bounds that).
   */
  async #retry(ch: Channel, stage: Stage, express: boolean, msg: ConsumeMessage, message: WorkMessage, err: unknown): Promise<void> {
    const { log, config, publisher } = this.#ctx;
    const headers = msg.properties.headers ?? {};
    const attempts = Number(headers[WORK_HEADERS.attempts] ?? 0) + Number(headers["x-delivery-count"] ?? 0) + 1;
    const reason = err instanceof Error ? err.message : String(err);
    try {
      if (attempts >= config.DOCFLOW_DELIVERY_LIMIT) {
        log.warn({ err, jobId: message.jobId, stage, attempts }, "task failed at the attempt limit; dead-lettering it");
        await publisher.publishDeadLetter(message, {
          headers: {
            [WORK_HEADERS.attempts]: String(attempts),
            [WORK_HEADERS.errorCode]: err instanceof DocflowError ? err.code : "processing_failed",
            [WORK_HEADERS.error]: reason.slice(0, 1000),
          },
        });
      } else {
        const delayMs = this.#delays[attempts - 1] ?? this.#delays.at(-1) ?? config.DOCFLOW_RETRY_BASE_MS;
        log.warn({ err, jobId: message.jobId, stage, attempts, delayMs }, `task failed; retrying in ${delayMs} ms`);
        await publisher.publishRetry(message, delayMs, { express, headers: { [WORK_HEADERS.attempts]: String(attempts) } });
      }
      safe(() => ch.ack(msg));
    } catch (publishErr) {
      log.warn({ err: publishErr, jobId: message.jobId, stage }, "could not schedule the retry; requeueing");
      safe(() => ch.nack(msg, false, true));
    }
  }

  /** A task stopped because its job ended: when the job was canceled or deleted, nothing it wrote may stay. */
  async #stopped(message: WorkMessage, reason: JobEnded): Promise<void> {
    this.#ctx.log.info({ jobId: message.jobId, stage: message.stage, reason: reason.message }, "task stopped: its job ended");
    await this.#ctx.sources.evictJob(objectKeys.jobPrefix(message.tenant, message.jobId));
    if (!reason.removed) return;
    await this.#ctx.store.deletePrefix(objectKeys.jobPrefix(message.tenant, message.jobId)).catch((err: unknown) => {
      this.#ctx.log.warn({ err, jobId: message.jobId }, "could not remove the objects of a canceled job");
    });
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
    const headers = msg.properties.headers ?? {};
    // Our own dead letters carry the last error and the attempt count; RabbitMQ's (its
    // delivery limit) mean the processors holding the message stopped each time: it
    // crashes or exhausts them.
    const ours = headers[WORK_HEADERS.error] !== undefined;
    const attempts = ours ? Number(headers[WORK_HEADERS.attempts]) : this.#ctx.config.DOCFLOW_DELIVERY_LIMIT;
    const why = ours ? "it failed" : "the processor working on it stopped";
    this.#ctx.log.warn({ jobId: message.jobId, stage, attempts, error: headers[WORK_HEADERS.error], code: headers[WORK_HEADERS.errorCode] }, "dead letter: failing its job");
    try {
      await failJob(this.#ctx, message.tenant, message.jobId, {
        code: "processing_failed",
        message: `Processing stopped at the ${stage} stage: ${why} ${attempts} times, so the document was set aside.`,
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
    const channels = [...this.#channels];
    await Promise.all(channels.map((ch) => Promise.all((this.#tags.get(ch) ?? []).map((t) => ch.cancel(t).catch(() => {})))));
    if (this.#inFlight > 0) {
      await Promise.race([new Promise<void>((r) => this.#idle.push(r)), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    }
    // Out of time: stop what still runs, so no poppler or LibreOffice child outlives this
    // process (soffice runs in its own process group and would). Their messages are not
    // acked, so closing the channels hands them to another processor.
    for (const task of this.#running) task.abort(SHUTDOWN);
    await Promise.all(channels.map((ch) => ch.close().catch(() => {})));
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
