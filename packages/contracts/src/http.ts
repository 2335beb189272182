import { z } from "zod";
import { ERRORS, type ProblemCode } from "./errors.ts";
import { JobId } from "./ids.ts";
import { DocumentDetails, Job, PageResult } from "./job.ts";

/*
 * The HTTP API's JSON answers besides the Job itself. The gateway builds its answers with these
 * types, the web app reads them with them, and the OpenAPI document (`GET /v1/openapi.json`)
 * is generated from these schemas, so the descriptions here are the API's documentation.
 */

/** A path on the app's own origin (never `//host/...`, which would be another origin). */
const SameOriginPath = z.string().regex(/^\/[^/]/, "must be a path on this origin");

/** `GET /v1/jobs`: one page of the caller's jobs, newest first. */
export const JobList = z.object({
  items: z.array(Job),
  nextCursor: JobId.nullable().describe("Pass as `?cursor=` for the next (older) page; null on the last page."),
});
export type JobList = z.infer<typeof JobList>;

/** `GET /v1/jobs/{id}/pages/{n}`, and each entry of a result's `pages`: one page with the URLs of its images. */
export const PageInfo = PageResult.extend({
  thumbnailUrl: z.string().describe("The page's thumbnail, WebP, about 200 px wide (fetched with the bearer token)."),
  previewUrl: z.string().describe("The page's preview, PNG at 150 DPI (fetched with the bearer token)."),
});
export type PageInfo = z.infer<typeof PageInfo>;

/** `GET /v1/jobs/{id}/result`: a completed job with all its pages (`409 job_not_ready` before). */
export const JobResult = z.object({
  job: Job,
  pages: z.array(PageInfo),
  document: DocumentDetails.optional().describe("What inspection found in full (for a presentation, its slides' titles and notes); absent for jobs inspected before it was stored."),
});
export type JobResult = z.infer<typeof JobResult>;

/** `POST /v1/realtime/credentials`: where and how the browser subscribes to its tenant's live events. */
export const RealtimeCredentials = z.object({
  url: z.string().describe("The NATS WebSocket endpoint: a ws:// or wss:// URL, or a path on this origin such as /nats."),
  jwt: z.string().describe("A short-lived NATS user JWT, a bearer token: no nonce to sign, no seed."),
  subject: z.string().describe("The subject to subscribe to, `docflow.events.<tenant>.>`: the only one allowed."),
  expiresAt: z.iso.datetime().describe("When the JWT stops being accepted; ask for new credentials before."),
});
export type RealtimeCredentials = z.infer<typeof RealtimeCredentials>;

/** `GET /v1/config` (no token needed): what the web app needs to know of this server. */
export const ClientConfig = z.object({
  maxUploadBytes: z.number().int().positive().describe("The largest file the server accepts, in bytes."),
  uploadTransport: z.literal("tus").describe("How the web app uploads: resumable uploads (tus 1.0.0)."),
  uploadEndpoint: SameOriginPath.describe("Where resumable uploads are created."),
  tusChunkBytes: z.number().int().positive().describe("Bytes per upload request (PATCH): each must finish within the edge's timeout."),
  tracesEndpoint: SameOriginPath.nullable().describe("Where the browser sends its trace spans (OTLP/HTTP), or null when this server collects none."),
});
export type ClientConfig = z.infer<typeof ClientConfig>;

/**
 * An RFC 9457 problem document (`application/problem+json`), as every refusal and error of the API
 * is written. `code` is the stable part to act on; extension members (`limit`, `jobStatus`,
 * `checks`...) follow the standard ones.
 */
export const Problem = z
  .looseObject({
    type: z
      .string()
      .regex(/^urn:docflow:problem:[a-z_]+$/)
      .describe("`urn:docflow:problem:<code>`"),
    title: z.string().describe("What the code means, for a person."),
    status: z.number().int().min(400).max(599).describe("The answer's HTTP status."),
    detail: z.string().describe("What went wrong with this request, for a person (the title when there is no more to say)."),
    code: z.enum(Object.keys(ERRORS) as [ProblemCode, ...ProblemCode[]]).describe("docflow's stable code of the problem."),
    instance: z.string().optional().describe("The request's path and query."),
  })
  .describe("RFC 9457 problem details with docflow's stable `code`; extension members may follow.");
export type Problem = z.infer<typeof Problem>;
