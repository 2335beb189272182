import { z } from "zod";
import { JobId, type TenantId } from "./ids.ts";
import { Job, JobError } from "./job.ts";

export const EventType = z.enum(["job.queued", "job.started", "job.progress", "page.ready", "job.completed", "job.failed", "job.canceled"]);
export type EventType = z.infer<typeof EventType>;

/**
 * A live update, published on `docflow.events.<tenant>.<job>`. `revision` is the
 * job record's revision after the change: a client ignores an event whose
 * revision is lower than the state it already holds.
 */
export const JobEvent = z.object({
  type: EventType,
  jobId: JobId,
  revision: z.number().int().nonnegative(),
  at: z.iso.datetime(),
  job: Job.optional(),
  page: z.number().int().positive().optional(),
  pagesDone: z.number().int().nonnegative().optional(),
  pageCount: z.number().int().nonnegative().nullable().optional(),
  error: JobError.optional(),
});
export type JobEvent = z.infer<typeof JobEvent>;

export function eventSubject(tenant: TenantId, jobId: JobId): string {
  return `docflow.events.${tenant}.${jobId}`;
}

export function tenantEventsWildcard(tenant: TenantId): string {
  return `docflow.events.${tenant}.>`;
}
