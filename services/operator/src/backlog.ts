import { connect, type Channel, type ChannelModel } from "amqplib";
import { STAGES, type Stage } from "@docflow/contracts";
import { expressQueue, workQueue } from "@docflow/infra/amqp";
import type { JobStore } from "@docflow/infra/job-store";
import type { Logger } from "@docflow/telemetry";

/** One open job, as the scaling policy needs it. */
export interface OpenJob {
  /** `<tenant>.<job>` */
  key: string;
  /** Its page count, once inspected. */
  pages: number | null;
  /** Pages not rendered yet (null: not inspected yet, the page count is unknown). */
  pagesLeft: number | null;
  /** Ranges not done yet (0 before inspection). */
  rangesLeft: number;
  status: string;
  createdAtMs: number;
}

export interface Backlog {
  atMs: number;
  /** Ready messages per stage (render: its work queue and its express lane). */
  ready: Record<Stage, number>;
  jobs: OpenJob[];
}

/**
 * Reads the real backlog: the ready messages of each stage's queues (a passive declare of each,
 * which needs no management plugin; unacknowledged ones are counted from the processors'
 * in-flight tasks instead) and the open jobs from the job store's index of jobs not ended, with
 * the pages and ranges each still has to render. The broker connection is opened on demand and
 * dropped on any error, so an unreachable broker makes `read()` fail with the reason, and the
 * next read connects again.
 */
export class BacklogReader {
  readonly #amqpUrl: string;
  readonly #namespace: string;
  readonly #jobs: () => Promise<JobStore>;
  readonly #log: Logger;
  #model: ChannelModel | undefined;
  #channel: Channel | undefined;

  constructor(options: { amqpUrl: string; namespace: string; jobs: () => Promise<JobStore> }, log: Logger) {
    this.#amqpUrl = options.amqpUrl;
    this.#namespace = options.namespace;
    this.#jobs = options.jobs;
    this.#log = log;
  }

  async read(): Promise<Backlog> {
    const [ready, jobs] = await Promise.all([this.#readQueues(), this.#readJobs()]);
    return { atMs: Date.now(), ready, jobs };
  }

  async #readQueues(): Promise<Record<Stage, number>> {
    try {
      const ready = {} as Record<Stage, number>;
      for (const stage of STAGES) {
        ready[stage] = await this.#ready(workQueue(this.#namespace, stage));
        if (stage === "render") ready[stage] += await this.#ready(expressQueue(this.#namespace));
      }
      return ready;
    } catch (err) {
      this.#drop();
      throw new Error(`RabbitMQ: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Ready messages of `queue` (a passive declare). */
  async #ready(queue: string): Promise<number> {
    const ch = await this.#channelOpen();
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } catch (err) {
      // 404: not declared yet (no processor has started): nothing waits in it. The failed
      // passive declare closed the channel; the next call opens another.
      if ((err as { code?: number }).code === 404) {
        this.#channel = undefined;
        return 0;
      }
      throw err;
    }
  }

  async #readJobs(): Promise<OpenJob[]> {
    try {
      const store = await this.#jobs();
      const open: OpenJob[] = [];
      for await (const { record } of store.openJobs()) {
        const rangesLeft = record.ranges.length - record.rangesDone.length;
        open.push({
          key: `${record.tenant}.${record.id}`,
          pages: record.pageCount,
          pagesLeft: record.pageCount === null ? null : Math.max(0, record.pageCount - record.pagesDone),
          rangesLeft: Math.max(0, rangesLeft),
          status: record.status,
          createdAtMs: Date.parse(record.createdAt),
        });
      }
      return open;
    } catch (err) {
      throw new Error(`job store: ${(err as Error).message}`, { cause: err });
    }
  }

  async #channelOpen(): Promise<Channel> {
    if (this.#channel) return this.#channel;
    if (!this.#model) {
      const model = await connect(this.#amqpUrl, { clientProperties: { connection_name: "docflow-operator" }, timeout: 5000 });
      model.on("error", (err: Error) => this.#log.warn({ err: err.message }, "RabbitMQ connection error"));
      model.on("close", () => {
        if (this.#model === model) this.#drop();
      });
      this.#model = model;
    }
    const ch = await this.#model.createChannel();
    ch.on("error", () => {});
    ch.on("close", () => {
      if (this.#channel === ch) this.#channel = undefined;
    });
    this.#channel = ch;
    return ch;
  }

  #drop(): void {
    const model = this.#model;
    this.#model = undefined;
    this.#channel = undefined;
    model?.close().catch(() => {});
  }

  async close(): Promise<void> {
    const model = this.#model;
    this.#model = undefined;
    this.#channel = undefined;
    await model?.close().catch(() => {});
  }
}
