import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DocflowError, WORK_HEADERS, objectKeys, type JobRecord, type Stage, type WorkMessage } from "@docflow/contracts";
import { SENT_AT_HEADER, laneQueue } from "@docflow/infra";
import { JobEnded } from "./cancel.ts";
import { loadConfig } from "./config.ts";
import { Consumers, SHUTDOWN, taskOutcome } from "./consumer.ts";
import type { ProcessorContext, TaskInfo } from "./context.ts";
import { jobRecord, TEST_JOB_ID, TEST_TENANT } from "../test/support.ts";

/** Every stage's handler: each test says what the task does. */
const handler = vi.hoisted(() => vi.fn<(ctx: unknown, message: WorkMessage, signal: AbortSignal, task: TaskInfo) => Promise<void>>());
vi.mock("./stages/inspect.ts", () => ({ inspect: handler }));
vi.mock("./stages/convert.ts", () => ({ convert: handler }));
vi.mock("./stages/render.ts", () => ({ render: handler }));
vi.mock("./stages/finish.ts", () => ({ finish: handler }));

const TENANT = TEST_TENANT;
const JOB_ID = TEST_JOB_ID;
const RENDER: WorkMessage = { v: 1, stage: "render", tenant: TENANT, jobId: JOB_ID, range: { first: 1, last: 8 } };

type Settlement = { acked: true } | { acked: false; requeue: boolean };

/** A channel that records acks and nacks and hands deliveries to the consumer it was given. */
class FakeChannel {
  readonly consumers = new Map<string, (msg: ConsumeMessage | null) => void>();
  readonly settled = new Map<ConsumeMessage, Settlement>();
  readonly #waiting = new Map<ConsumeMessage, (s: Settlement) => void>();
  on(): void {}
  async prefetch(): Promise<void> {}
  async consume(queue: string, onMessage: (msg: ConsumeMessage | null) => void): Promise<{ consumerTag: string }> {
    this.consumers.set(queue, onMessage);
    return { consumerTag: queue };
  }
  async cancel(): Promise<void> {}
  async close(): Promise<void> {}
  ack(msg: ConsumeMessage): void {
    this.#settle(msg, { acked: true });
  }
  nack(msg: ConsumeMessage, _allUpTo: boolean, requeue: boolean): void {
    this.#settle(msg, { acked: false, requeue });
  }
  /** Resolves once `msg` is acked or nacked. */
  settlement(msg: ConsumeMessage): Promise<Settlement> {
    const done = this.settled.get(msg);
    if (done) return Promise.resolve(done);
    return new Promise((resolve) => this.#waiting.set(msg, resolve));
  }
  #settle(msg: ConsumeMessage, s: Settlement): void {
    if (this.settled.has(msg)) throw new Error("settled twice");
    this.settled.set(msg, s);
    this.#waiting.get(msg)?.(s);
  }
}

const record = (status: JobRecord["status"]): JobRecord => jobRecord({ status, ranges: [{ first: 1, last: 8 }] });

function fakeContext(env: NodeJS.ProcessEnv = {}) {
  let current = record("processing");
  const ctx = {
    config: loadConfig(env),
    log: { info: vi.fn(), warn: vi.fn(), error: vi.fn() },
    jobs: {
      get: vi.fn(async () => ({ record: current, revision: 1 })),
      update: vi.fn(async (_tenant: string, _id: string, mutate: (r: JobRecord) => JobRecord | null) => {
        const next = mutate(structuredClone(current));
        if (next === null) return { record: current, revision: 1, changed: false };
        current = next;
        return { record: current, revision: 2, changed: true };
      }),
    },
    nats: { publish: vi.fn() },
    publisher: { publishRetry: vi.fn(async () => {}), publishDeadLetter: vi.fn(async () => {}) },
    sources: { evictJob: vi.fn(async () => {}) },
    store: { deletePrefix: vi.fn(async () => {}) },
    metrics: {
      tasksRedelivered: { inc: vi.fn() },
      queueWait: { observe: vi.fn() },
      tasksInFlight: { inc: vi.fn(), dec: vi.fn() },
      taskDuration: { observe: vi.fn() },
      jobOutcomes: { inc: vi.fn() },
    },
  };
  return { ctx, setStatus: (status: JobRecord["status"]) => void (current = record(status)), current: () => current };
}

async function subscribed(ctx: unknown): Promise<{ consumers: Consumers; channels: FakeChannel[] }> {
  const channels: FakeChannel[] = [];
  const model = { createChannel: async () => channels[channels.push(new FakeChannel()) - 1] as unknown as Channel } as unknown as ChannelModel;
  const consumers = new Consumers(ctx as ProcessorContext);
  await consumers.setup(model);
  return { consumers, channels };
}

let seq = 0;
function delivery(content: unknown, opts: { headers?: Record<string, unknown>; redelivered?: boolean } = {}): ConsumeMessage {
  return {
    content: Buffer.from(typeof content === "string" ? content : JSON.stringify(content)),
    fields: { deliveryTag: ++seq, redelivered: opts.redelivered ?? false, exchange: "", routingKey: "", consumerTag: "" },
    properties: { headers: opts.headers ?? {}, messageId: `m${seq}` },
  } as unknown as ConsumeMessage;
}

/** Delivers `msg` on the queue of `stage` (or the express lane) and waits until the task is done, metrics included. */
async function deliver(setup: { channels: FakeChannel[] }, ctx: ReturnType<typeof fakeContext>["ctx"], stage: Stage, msg: ConsumeMessage, express = false): Promise<Settlement> {
  const queue = laneQueue("docflow", stage, express);
  const ch = setup.channels.find((c) => c.consumers.has(queue));
  if (!ch) throw new Error(`nobody consumes ${queue}`);
  const observed = ctx.metrics.taskDuration.observe.mock.calls.length;
  ch.consumers.get(queue)!(msg);
  const settlement = await ch.settlement(msg);
  await vi.waitFor(() => expect(ctx.metrics.taskDuration.observe.mock.calls.length).toBeGreaterThan(observed));
  return settlement;
}

const outcome = (ctx: ReturnType<typeof fakeContext>["ctx"]): unknown => ctx.metrics.taskDuration.observe.mock.calls.at(-1)?.[0];

/** A task that runs until its signal aborts, then fails as an engine call would. */
const untilAborted = async (_ctx: unknown, _message: WorkMessage, signal: AbortSignal): Promise<void> => {
  await new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
};

beforeEach(() => {
  handler.mockReset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Consumers: what becomes of a work message", () => {
  it("acks a task that succeeds, with its stage, queue and outcome in the metrics", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    handler.mockResolvedValue(undefined);
    const msg = delivery(RENDER, { headers: { [SENT_AT_HEADER]: String(Date.now() - 1000) } });
    expect(await deliver(setup, ctx, "render", msg)).toEqual({ acked: true });
    expect(handler).toHaveBeenCalledWith(ctx, RENDER, expect.any(AbortSignal), { repeated: false });
    expect(outcome(ctx)).toEqual({ stage: "render", queue: "docflow.render", outcome: "ok" });
    expect(ctx.metrics.queueWait.observe).toHaveBeenCalledWith({ stage: "render", queue: "docflow.render" }, expect.any(Number));
    expect(ctx.metrics.queueWait.observe.mock.calls[0]![1]).toBeGreaterThanOrEqual(1);
    expect(ctx.metrics.tasksInFlight.inc).toHaveBeenCalledTimes(1);
    expect(ctx.metrics.tasksInFlight.dec).toHaveBeenCalledTimes(1);
    expect(setup.consumers.inFlight).toBe(0);
    expect(ctx.metrics.tasksRedelivered.inc).not.toHaveBeenCalled();
  });

  it("tells the handler a redelivery or a retry copy is a repeat, and counts redeliveries", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    handler.mockResolvedValue(undefined);
    await deliver(setup, ctx, "render", delivery(RENDER, { redelivered: true }));
    expect(handler.mock.calls.at(-1)?.[3]).toEqual({ repeated: true });
    expect(ctx.metrics.tasksRedelivered.inc).toHaveBeenCalledWith({ stage: "render" });
    await deliver(setup, ctx, "render", delivery(RENDER, { headers: { "x-delivery-count": 1 } }));
    expect(handler.mock.calls.at(-1)?.[3]).toEqual({ repeated: true });
    expect(ctx.metrics.tasksRedelivered.inc).toHaveBeenCalledTimes(2);
    await deliver(setup, ctx, "render", delivery(RENDER, { headers: { [WORK_HEADERS.attempts]: "1" } }));
    expect(handler.mock.calls.at(-1)?.[3]).toEqual({ repeated: true });
    expect(ctx.metrics.tasksRedelivered.inc).toHaveBeenCalledTimes(2); // a retry copy is a new message
  });

  it("dead-letters a malformed message without running anything", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    const ch = setup.channels.find((c) => c.consumers.has("docflow.inspect"))!;
    const msg = delivery("{ not json");
    ch.consumers.get("docflow.inspect")!(msg);
    expect(await ch.settlement(msg)).toEqual({ acked: false, requeue: false });
    const wrongShape = delivery({ v: 1, stage: "inspect", tenant: TENANT });
    ch.consumers.get("docflow.inspect")!(wrongShape);
    expect(await ch.settlement(wrongShape)).toEqual({ acked: false, requeue: false });
    expect(handler).not.toHaveBeenCalled();
    expect(ctx.metrics.taskDuration.observe).not.toHaveBeenCalled();
  });

  it("fails the job now on a problem with the document, and acks", async () => {
    const { ctx, current } = fakeContext();
    const setup = await subscribed(ctx);
    handler.mockRejectedValue(new DocflowError("pdf_encrypted"));
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: true });
    expect(current()).toMatchObject({ status: "failed", error: { code: "pdf_encrypted" } });
    expect(ctx.sources.evictJob).toHaveBeenCalledWith(objectKeys.jobPrefix(TENANT, JOB_ID));
    expect(ctx.nats.publish).toHaveBeenCalledTimes(1); // job.failed
    expect(ctx.publisher.publishRetry).not.toHaveBeenCalled();
    expect(outcome(ctx)).toMatchObject({ outcome: "failed" });
  });

  it("requeues a document failure it cannot record", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    ctx.jobs.update.mockRejectedValueOnce(new Error("NATS is down"));
    handler.mockRejectedValue(new DocflowError("pdf_invalid"));
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: false, requeue: true });
    expect(outcome(ctx)).toMatchObject({ outcome: "failed" });
  });

  it("retries a transient failure after the back-off of its attempt, in the lane it came from", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    handler.mockRejectedValue(new Error("S3 is slow"));
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: true });
    expect(ctx.publisher.publishRetry).toHaveBeenLastCalledWith(RENDER, 2000, { express: false, headers: { [WORK_HEADERS.attempts]: "1" } });
    expect(outcome(ctx)).toEqual({ stage: "render", queue: "docflow.render", outcome: "retry" });

    expect(await deliver(setup, ctx, "render", delivery(RENDER, { headers: { [WORK_HEADERS.attempts]: "1" } }), true)).toEqual({ acked: true });
    expect(ctx.publisher.publishRetry).toHaveBeenLastCalledWith(RENDER, 4000, { express: true, headers: { [WORK_HEADERS.attempts]: "2" } });
    expect(outcome(ctx)).toEqual({ stage: "render", queue: laneQueue("docflow", "render", true), outcome: "retry" });
    expect(ctx.jobs.update).not.toHaveBeenCalled();
  });

  it("dead-letters a transient failure at the attempt limit, with the reason in its headers", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    handler.mockRejectedValue(new Error("S3 is slow"));
    const msg = delivery(RENDER, { headers: { [WORK_HEADERS.attempts]: "1", "x-delivery-count": 1 } });
    expect(await deliver(setup, ctx, "render", msg)).toEqual({ acked: true });
    expect(ctx.publisher.publishRetry).not.toHaveBeenCalled();
    expect(ctx.publisher.publishDeadLetter).toHaveBeenCalledWith(RENDER, {
      headers: { [WORK_HEADERS.attempts]: "3", [WORK_HEADERS.errorCode]: "processing_failed", [WORK_HEADERS.error]: "S3 is slow" },
    });
  });

  it("requeues a transient failure whose retry the broker refuses", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    ctx.publisher.publishRetry.mockRejectedValueOnce(new Error("channel closed"));
    handler.mockRejectedValue(new Error("S3 is slow"));
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: false, requeue: true });
    expect(outcome(ctx)).toMatchObject({ outcome: "retry" });
  });

  it("fails the job with processing_timeout when a task outlives DOCFLOW_TASK_TIMEOUT_MS", async () => {
    const { ctx, current } = fakeContext({ DOCFLOW_TASK_TIMEOUT_MS: "50" });
    const setup = await subscribed(ctx);
    handler.mockImplementation(untilAborted);
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: true });
    expect(current()).toMatchObject({ status: "failed", error: { code: "processing_timeout" } });
    expect(outcome(ctx)).toMatchObject({ outcome: "failed" });
  });

  it("stops a task whose job was canceled, removes what it wrote, and acks", async () => {
    const { ctx, setStatus } = fakeContext({ DOCFLOW_CANCEL_CHECK_MS: "50" });
    const setup = await subscribed(ctx);
    handler.mockImplementation(untilAborted);
    setStatus("canceled");
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: true });
    expect(ctx.sources.evictJob).toHaveBeenCalledWith(objectKeys.jobPrefix(TENANT, JOB_ID));
    expect(ctx.store.deletePrefix).toHaveBeenCalledWith(objectKeys.jobPrefix(TENANT, JOB_ID));
    expect(ctx.jobs.update).not.toHaveBeenCalled();
    expect(outcome(ctx)).toMatchObject({ outcome: "stopped" });
  });

  it("stops a task whose job failed elsewhere without removing anything", async () => {
    const { ctx, setStatus } = fakeContext({ DOCFLOW_CANCEL_CHECK_MS: "50" });
    const setup = await subscribed(ctx);
    handler.mockImplementation(untilAborted);
    setStatus("failed");
    expect(await deliver(setup, ctx, "render", delivery(RENDER))).toEqual({ acked: true });
    expect(ctx.store.deletePrefix).not.toHaveBeenCalled();
    expect(outcome(ctx)).toMatchObject({ outcome: "stopped" });
  });

  it("does not watch the job of a finish task", async () => {
    const { ctx, setStatus } = fakeContext({ DOCFLOW_CANCEL_CHECK_MS: "50" });
    const setup = await subscribed(ctx);
    setStatus("canceled");
    handler.mockImplementation(async () => new Promise((resolve) => setTimeout(resolve, 200)));
    expect(await deliver(setup, ctx, "finish", delivery({ v: 1, stage: "finish", tenant: TENANT, jobId: JOB_ID }))).toEqual({ acked: true });
    expect(ctx.jobs.get).not.toHaveBeenCalled();
    expect(outcome(ctx)).toMatchObject({ outcome: "ok" });
  });

  it("gives a task still running when shutdown runs out of time back to the queue", async () => {
    const { ctx } = fakeContext();
    const setup = await subscribed(ctx);
    handler.mockImplementation(untilAborted);
    const msg = delivery(RENDER);
    const ch = setup.channels.find((c) => c.consumers.has("docflow.render"))!;
    ch.consumers.get("docflow.render")!(msg);
    await vi.waitFor(() => expect(setup.consumers.inFlight).toBe(1));
    await setup.consumers.stop(20);
    expect(await ch.settlement(msg)).toEqual({ acked: false, requeue: true });
    await vi.waitFor(() => expect(outcome(ctx)).toMatchObject({ outcome: "requeued" }));
    expect(ctx.publisher.publishRetry).not.toHaveBeenCalled();
    expect(setup.consumers.inFlight).toBe(0);
  });
});

describe("taskOutcome", () => {
  const signals = (deadline?: unknown, watcher?: unknown) => {
    const d = new AbortController();
    const w = new AbortController();
    if (deadline !== undefined) d.abort(deadline);
    if (watcher !== undefined) w.abort(watcher);
    return { deadline: d.signal, watcher: w.signal };
  };
  const timeout = new DocflowError("processing_timeout");
  const ended = new JobEnded(JOB_ID, "canceled");

  it("retries what may pass and fails the job on a problem with the document", () => {
    const transient = new Error("S3 is slow");
    expect(taskOutcome(transient, signals())).toEqual({ outcome: "retry", error: transient });
    const encrypted = new DocflowError("pdf_encrypted");
    expect(taskOutcome(encrypted, signals())).toEqual({ outcome: "failed", error: encrypted });
    const notOurs = new DocflowError("not_found"); // a DocflowError, but not the document's fault
    expect(taskOutcome(notOurs, signals())).toEqual({ outcome: "retry", error: notOurs });
  });

  it("fails a task past its deadline with the deadline's reason, unless it failed for the document", () => {
    expect(taskOutcome(new Error("aborted"), signals(timeout))).toEqual({ outcome: "failed", error: timeout });
    const encrypted = new DocflowError("pdf_encrypted");
    expect(taskOutcome(encrypted, signals(timeout))).toEqual({ outcome: "failed", error: encrypted });
  });

  it("stops a task whose job ended, before anything else", () => {
    expect(taskOutcome(new Error("aborted"), signals(undefined, ended))).toEqual({ outcome: "stopped", reason: ended });
    expect(taskOutcome(new Error("aborted"), signals(SHUTDOWN, ended))).toEqual({ outcome: "stopped", reason: ended });
    // Aborted for another reason: not a job that ended.
    expect(taskOutcome(new Error("x"), signals(undefined, new Error("other")))).toMatchObject({ outcome: "retry" });
  });

  it("gives a task back at shutdown, whatever it failed with", () => {
    expect(taskOutcome(new Error("aborted"), signals(SHUTDOWN))).toEqual({ outcome: "requeued" });
    expect(taskOutcome(new DocflowError("pdf_invalid"), signals(SHUTDOWN))).toEqual({ outcome: "requeued" });
  });
});
