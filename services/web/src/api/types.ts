import type { Job, PageResult } from "@docflow/contracts";

/** `GET /v1/jobs`: one page of the caller's jobs, newest first. */
export interface JobList {
  items: Job[];
  /** Pass as `?cursor=` for the next (older) page; `null` on the last page. */
  nextCursor: string | null;
}

/** A job together with the record revision it was read at (from the `ETag` header). */
export interface VersionedJob {
  job: Job;
  /** `null` when the response carried no usable `ETag`. */
  revision: number | null;
}

/** `GET /v1/jobs/{id}/pages/{n}`, and each entry of the result's `pages`. */
export interface PageInfo extends PageResult {
  /** URL of the ~200 px WebP thumbnail (same-origin URLs are fetched with the bearer token). */
  thumbnailUrl: string;
  /** URL of the 150 DPI PNG preview. */
  previewUrl: string;
}

/** `GET /v1/jobs/{id}/result` (only once the job is completed; `409 job_not_ready` before). */
export interface JobResult {
  job: Job;
  pages: PageInfo[];
}

/** `POST /v1/realtime/credentials`. */
export interface RealtimeCredentials {
  /** NATS WebSocket URL, `ws://` or `wss://`. */
  url: string;
  /** Short-lived user JWT (bearer: no nonce signing, no seed). */
  jwt: string;
  /** The subject to subscribe to: `docflow.events.<tenant>.>`. */
  subject: string;
  /** ISO timestamp after which the JWT is refused. */
  expiresAt: string;
}

/** RFC 9457 problem details, as the gateway writes them. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
}
