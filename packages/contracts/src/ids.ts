import { z } from "zod";

/**
 * A tenant id is one NATS subject token and one object-key segment, so it is
 * restricted to characters that are safe in both.
 */
export const TenantId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "tenant ids are 1-63 lowercase letters, digits, '-' or '_'");
export type TenantId = z.infer<typeof TenantId>;

/** Job ids are UUIDv7: unique, and sortable by creation time. */
export const JobId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "not a job id");
export type JobId = z.infer<typeof JobId>;

/** When a job was created: the millisecond timestamp in its UUIDv7 id (so list order and `createdAt` agree). */
export function jobCreatedAt(id: JobId): string {
  return new Date(Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16)).toISOString();
}
