import type { NatsConnection } from "@nats-io/transport-node";
import { jobCreatedAt, toPublicJob, type ContentType, type JobId, type TenantId } from "@docflow/contracts";
import { publishEvent, type JobStore, type Versioned, type WorkPublisher } from "@docflow/infra";
import type { Logger } from "@docflow/telemetry";
import type { Metrics } from "./metrics.ts";

/** A source document fully stored in the object store, ready to become a job. */
export interface StoredSource {
  id: JobId;
  tenant: TenantId;
  sourceKey: string;
  filename: string;
  contentType: ContentType;
  size: number;
  /** null when not hashed yet (resumable uploads: the processor fills it in). */
  sha256: string | null;
}

/** The job store operations the gateway uses (JobStore's; in memory in the unit tests). */
export type JobRecords = Pick<JobStore, "create" | "get" | "update" | "list" | "delete">;

/** Where work messages go (WorkPublisher's publish, with the broker's confirm). */
export type WorkQueue = Pick<WorkPublisher, "publish">;

export interface EnqueueDependencies {
  jobs: JobRecords;
  nats: NatsConnection;
  publisher: WorkQueue;
  log: Logger;
  metrics: Metrics;
}

/** The name a file gets when the client gave none. */
export const defaultFilename = (type: ContentType) => (type === "application/pdf" ? "document.pdf" : "presentation.pptx");

/**
 * Records a stored source as a queued job (failing if that job exists),
 * announces it, and dispatches its inspect message. A publish the broker does
 * not confirm is logged, not thrown: the bytes and the record are safe, and
 * the processors' sweeper re-dispatches queued jobs whose message never came.
 */
export async function enqueueJob(deps: EnqueueDependencies, source: StoredSource): Promise<Versioned> {
  const now = new Date().toISOString();
  const created = await deps.jobs.create({
    ...source,
    status: "queued",
    pageCount: null,
    pagesDone: 0,
    createdAt: jobCreatedAt(source.id),
    updatedAt: now,
    ranges: [],
    rangesDone: [],
  });
  deps.metrics.jobsCreated.inc({ content_type: source.contentType });
  publishEvent(deps.nats, source.tenant, { type: "job.queued", jobId: source.id, revision: created.revision, at: now, job: toPublicJob(created.record) });
  try {
    await deps.publisher.publish({ v: 1, stage: "inspect", jobId: source.id, tenant: source.tenant });
  } catch (err) {
    deps.metrics.publishFailures.inc();
    deps.log.warn({ err, jobId: source.id }, "inspect message not confirmed; the sweeper will re-dispatch it");
  }
  return created;
}
