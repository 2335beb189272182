import type { Job, JobList, JobResult, PageInfo, Problem, RealtimeCredentials } from "@docflow/contracts";

/**
 * The one HTTP client of the app. Every call to the gateway goes through here, so
 * the bearer token, problem+json errors, `ETag` revisions and the "401 signs you
 * out" rule live in one place.
 */

export const API_BASE = "/v1";

/** A job together with the record revision it was read at (from the `ETag` header). */
export interface VersionedJob {
  job: Job;
  /** `null` when the response carried no usable `ETag`. */
  revision: number | null;
}

/** What an error answer said: a problem document, or any JSON object, its fields unchecked. */
type ProblemBody = Partial<Problem>;

/** How long a JSON call may take before it is given up (uploads and downloads have no such limit). */
const JSON_TIMEOUT_MS = 30_000;

/**
 * An error from the API (or from failing to reach it). `message` is written for a
 * person: the problem's `detail`, else its `title`, else a description of what went wrong.
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  /** HTTP status, or 0 when no response arrived (network down, timeout). */
  readonly status: number;
  /** The problem's stable `code` (`job_not_ready`, `page_not_ready`...), or `network_error` / `http_<status>`. */
  readonly code: string;
  readonly problem: ProblemBody | null;

  constructor(status: number, code: string, message: string, problem: ProblemBody | null = null, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    this.code = code;
    this.problem = problem;
  }
}

export function isApiError(error: unknown, code?: string): error is ApiError {
  return error instanceof ApiError && (code === undefined || error.code === code);
}

/** What the client needs from the rest of the app; set once by `configureApiClient`. */
export interface ApiClientHooks {
  /** The bearer token for the next request, or null when signed out. */
  getToken(): Promise<string | null>;
  /** Called when the API refuses the token (401). */
  onUnauthorized(error: ApiError): void;
}

let hooks: ApiClientHooks = {
  getToken: async () => null,
  onUnauthorized: () => undefined,
};

export function configureApiClient(next: ApiClientHooks): void {
  hooks = next;
}

/**
 * `Authorization` header for requests made outside this module (uploads go
 * through Uppy's own XHR). Empty when signed out.
 */
export async function authorizationHeader(): Promise<Record<string, string>> {
  const token = await hooks.getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Lets other request paths (uploads) apply the same "401 signs you out" rule. */
export function reportUnauthorized(error: ApiError): void {
  hooks.onUnauthorized(error);
}

/** Parses an `ETag` of the form `"<revision>"` (or weak `W/"<revision>"`). */
export function parseRevision(etag: string | null | undefined): number | null {
  const match = etag ? /^(?:W\/)?"(\d+)"$/.exec(etag.trim()) : null;
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** Reads a problem+json body (or any JSON body with the same fields) and builds the error a person sees. */
export function errorFromResponse(status: number, statusText: string, body: unknown): ApiError {
  const problem = body && typeof body === "object" ? (body as ProblemBody) : null;
  const code = typeof problem?.code === "string" ? problem.code : `http_${status}`;
  const text = problem?.detail || problem?.title || describeStatus(status, statusText);
  return new ApiError(status, code, text, problem);
}

function describeStatus(status: number, statusText: string): string {
  if (status === 401) return "Your session has ended. Please sign in again.";
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found. The docflow API may not be available at this address.";
  if (status === 413) return "The file is larger than the server accepts.";
  if (status === 429) return "Too many requests. Please wait a moment and try again.";
  if (status >= 500) return `The server could not answer (HTTP ${status}). Please try again in a moment.`;
  return `The request failed (HTTP ${status}${statusText ? ` ${statusText}` : ""}).`;
}

/** True when `url` points at the app's own origin: only then is the bearer token sent. */
export function isSameOrigin(url: string): boolean {
  try {
    return new URL(url, window.location.href).origin === window.location.origin;
  } catch {
    return false;
  }
}

interface RequestOptions {
  method?: string;
  signal?: AbortSignal | undefined;
  /** Apply the JSON timeout (default true). */
  timeout?: boolean;
}

async function send(url: string, expect: "json" | "blob" | "none", options: RequestOptions = {}): Promise<Response> {
  const headers = new Headers({ Accept: expect === "json" ? "application/json, application/problem+json" : "*/*" });
  let withToken = false;
  if (isSameOrigin(url)) {
    const token = await hooks.getToken();
    if (token) {
      headers.set("Authorization", `Bearer ${token}`);
      withToken = true;
    }
  }
  const signals = [options.signal, options.timeout === false ? undefined : AbortSignal.timeout(JSON_TIMEOUT_MS)].filter((s): s is AbortSignal => s !== undefined);
  let response: Response;
  try {
    response = await fetch(url, {
      method: options.method ?? "GET",
      headers,
      signal: signals.length > 0 ? AbortSignal.any(signals) : null,
    });
  } catch (cause) {
    if (options.signal?.aborted) throw cause;
    const timedOut = cause instanceof DOMException && cause.name === "TimeoutError";
    throw new ApiError(0, "network_error", timedOut ? "The server took too long to answer. Please try again." : "Cannot reach the docflow server. Check your connection and try again.", null, {
      cause,
    });
  }
  if (!response.ok) {
    const body = await readJson(response);
    const error = errorFromResponse(response.status, response.statusText, body);
    if (response.status === 401 && withToken) hooks.onUnauthorized(error);
    throw error;
  }
  return response;
}

async function readJson(response: Response): Promise<unknown> {
  const type = response.headers.get("Content-Type") ?? "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

async function getJson<T>(url: string, options?: RequestOptions): Promise<{ data: T; response: Response }> {
  const response = await send(url, "json", options);
  const data = (await readJson(response)) as T | null;
  if (data === null) throw new ApiError(response.status, "invalid_response", "The server sent an answer the app does not understand.");
  return { data, response };
}

const jobPath = (id: string) => `${API_BASE}/jobs/${encodeURIComponent(id)}`;

export const api = {
  /** `GET /v1/config`: the server's `ClientConfig`, unchecked (`applyRuntimeConfig` keeps the fields that validate). */
  async getConfig(signal?: AbortSignal): Promise<unknown> {
    return (await getJson<unknown>(`${API_BASE}/config`, { signal })).data;
  },

  /** `GET /v1/jobs?limit=&cursor=`: newest first. */
  async listJobs(params: { limit?: number; cursor?: string | null } = {}, signal?: AbortSignal): Promise<JobList> {
    const query = new URLSearchParams();
    if (params.limit) query.set("limit", String(params.limit));
    if (params.cursor) query.set("cursor", params.cursor);
    const qs = query.size > 0 ? `?${query}` : "";
    const { data } = await getJson<JobList>(`${API_BASE}/jobs${qs}`, { signal });
    return { items: Array.isArray(data.items) ? data.items : [], nextCursor: data.nextCursor ?? null };
  },

  /** `GET /v1/jobs/{id}`, with the revision from its `ETag`. */
  async getJob(id: string, signal?: AbortSignal): Promise<VersionedJob> {
    const { data, response } = await getJson<Job>(jobPath(id), { signal });
    return { job: data, revision: parseRevision(response.headers.get("ETag")) };
  },

  /** `DELETE /v1/jobs/{id}` (204). */
  async deleteJob(id: string): Promise<void> {
    await send(jobPath(id), "none", { method: "DELETE" });
  },

  /** `GET /v1/jobs/{id}/result`; throws `ApiError` with code `job_not_ready` (409) before completion. */
  async getResult(id: string, signal?: AbortSignal): Promise<JobResult & { revision: number | null }> {
    const { data, response } = await getJson<JobResult>(`${jobPath(id)}/result`, { signal });
    return { ...data, revision: parseRevision(response.headers.get("ETag")) };
  },

  /** `GET /v1/jobs/{id}/pages/{n}`; throws `ApiError` with code `page_not_ready` (404) until processed. */
  async getPage(id: string, n: number, signal?: AbortSignal): Promise<PageInfo> {
    return (await getJson<PageInfo>(`${jobPath(id)}/pages/${n}`, { signal })).data;
  },

  /** Default image URLs of a page, for when a page record has none. */
  pageImageUrl(id: string, n: number, kind: "thumbnail" | "preview"): string {
    return `${jobPath(id)}/pages/${n}/${kind}`;
  },

  /** `GET /v1/jobs/{id}/source` URL (download of the original). */
  sourceUrl(id: string): string {
    return `${jobPath(id)}/source`;
  },

  /** Fetches binary content (images, downloads). The bearer token goes to same-origin URLs only. */
  async getBlob(url: string, signal?: AbortSignal): Promise<Blob> {
    const response = await send(url, "blob", { signal, timeout: false });
    return response.blob();
  },

  /** `POST /v1/realtime/credentials`. */
  async realtimeCredentials(signal?: AbortSignal): Promise<RealtimeCredentials> {
    return (await getJson<RealtimeCredentials>(`${API_BASE}/realtime/credentials`, { method: "POST", signal })).data;
  },
};

export type Api = typeof api;
