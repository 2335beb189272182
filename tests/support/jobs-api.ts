import { readFile } from "node:fs/promises";
import { expect } from "vitest";
import type { Job } from "@docflow/contracts";
import { eventually } from "./poll.ts";
import type { Stack } from "./stack.ts";

const ENDED = ["completed", "failed", "canceled"];

/**
 * docflow's public API as one caller (a bearer token) sees it, on `baseUrl`: the one client of the
 * end-to-end and cluster tests. `context` is added to a wait's timeout message (the logs that
 * explain it); `pollMs` is how often a wait asks (default 200 ms).
 */
export function jobsClient(baseUrl: string, token: string, { context, pollMs = 200 }: { context?: () => string; pollMs?: number } = {}) {
  const call = (path: string, init: RequestInit = {}) => fetch(`${baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
  const job = async (id: string): Promise<Job> => {
    const res = await call(`/v1/jobs/${id}`);
    if (!res.ok) throw new Error(`GET /v1/jobs/${id}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Job;
  };
  return {
    call,
    /** `POST /v1/documents` of a file, as the response (for tests of refusals). */
    post: async (file: string, filename: string): Promise<Response> =>
      call(`/v1/documents?filename=${encodeURIComponent(filename)}`, { method: "POST", body: await readFile(file), headers: { "content-type": "application/octet-stream" } }),
    /** `POST /v1/documents` of a file; fails unless it is accepted (202), and returns its Job. */
    async upload(file: string, filename: string): Promise<Job> {
      const res = await this.post(file, filename);
      if (res.status !== 202) throw new Error(`POST /v1/documents ${filename}: ${res.status} ${await res.text()}`);
      return (await res.json()) as Job;
    },
    job,
    /** The job once it is completed, failed or canceled. */
    waitForEnd: (id: string, timeoutMs = 120_000): Promise<Job> =>
      eventually(
        `job ${id} to end`,
        async () => {
          const j = await job(id);
          return ENDED.includes(j.status) ? j : undefined;
        },
        { timeoutMs, everyMs: pollMs, ...(context ? { context } : {}) },
      ),
  };
}

export type JobsClient = ReturnType<typeof jobsClient>;

/**
 * The public API calls the processing tests make, as each tenant of `stack()`
 * (a getter: the stack starts in `beforeAll`). Waits fail with the stack's last logs.
 */
export function jobsApi(stack: () => Stack) {
  const as = (tenant: string) => jobsClient(stack().baseUrl, stack().tokens[tenant] ?? "", { context: () => stack().logs().slice(-4000) });
  const api = (tenant: string, path: string, init: RequestInit = {}) => as(tenant).call(path, init);
  /** `POST /v1/documents` of a file; expects the 202 and returns its Job. */
  const upload = async (tenant: string, file: string, filename: string): Promise<Job> => {
    const res = await as(tenant).post(file, filename);
    expect(res.status).toBe(202);
    return (await res.json()) as Job;
  };
  const getJob = (tenant: string, id: string): Promise<Job> => as(tenant).job(id);
  /** Polls `fn` every 50 ms until it returns something. */
  const waitFor = <T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> =>
    eventually(what, fn, { timeoutMs, everyMs: 50, context: () => stack().logs().slice(-4000) });
  /** The job once it is completed, failed or canceled. */
  const waitForEnd = (tenant: string, id: string, timeoutMs = 120_000): Promise<Job> => as(tenant).waitForEnd(id, timeoutMs);
  return { api, upload, getJob, waitFor, waitForEnd };
}
