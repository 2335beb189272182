import { readFile } from "node:fs/promises";
import { expect } from "vitest";
import type { Job } from "@docflow/contracts";
import type { Stack } from "./stack.ts";

/**
 * The public API calls the processing tests make, as each tenant of `stack()`
 * (a getter: the stack starts in `beforeAll`). Waits fail with the stack's last logs.
 */
export function jobsApi(stack: () => Stack) {
  const api = (tenant: string, path: string, init: RequestInit = {}) =>
    fetch(`${stack().baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${stack().tokens[tenant]}`, ...(init.headers as Record<string, string>) } });
  /** `POST /v1/documents` of a file; expects the 202 and returns its Job. */
  const upload = async (tenant: string, file: string, filename: string): Promise<Job> => {
    const res = await api(tenant, `/v1/documents?filename=${encodeURIComponent(filename)}`, { method: "POST", body: await readFile(file), headers: { "content-type": "application/octet-stream" } });
    expect(res.status).toBe(202);
    return (await res.json()) as Job;
  };
  const getJob = async (tenant: string, id: string): Promise<Job> => (await (await api(tenant, `/v1/jobs/${id}`)).json()) as Job;
  /** Polls `fn` every 50 ms until it returns something. */
  async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await fn();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${stack().logs().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** The job once it is completed, failed or canceled. */
  async function waitForEnd(tenant: string, id: string, timeoutMs = 120_000): Promise<Job> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = await getJob(tenant, id);
      if (["completed", "failed", "canceled"].includes(job.status)) return job;
      if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${timeoutMs} ms\n${stack().logs().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { api, upload, getJob, waitFor, waitForEnd };
}
