import type { Job, JobEvent } from "@docflow/contracts";
import { flushPromises } from "@vue/test-utils";
import { createPinia, setActivePinia, type Pinia } from "pinia";
import { vi, type Mock } from "vitest";
import { defineComponent, h } from "vue";
import { createMemoryHistory, createRouter, type Router } from "vue-router";
import { configureApiClient } from "@/api/client";

/** UUIDv7 job ids, oldest first. */
export const IDS = ["01890a5d-ac96-7000-8000-000000000001", "01890a5d-ac96-7000-8000-000000000002", "01890a5d-ac96-7000-8000-000000000003"] as const;

export function makeJob(overrides: Partial<Job> = {}): Job {
  return {
    id: IDS[0],
    status: "processing",
    filename: "report.pdf",
    contentType: "application/pdf",
    size: 2 * 1024 * 1024,
    sha256: "a".repeat(64),
    pageCount: 120,
    pagesDone: 0,
    createdAt: "2026-01-01T10:00:00.000Z",
    updatedAt: "2026-01-01T10:00:00.000Z",
    ...overrides,
  };
}

export function makeEvent(overrides: Partial<JobEvent> & Pick<JobEvent, "type" | "jobId" | "revision">): JobEvent {
  return { at: new Date().toISOString(), ...overrides };
}

export function jsonResponse(body: unknown, init: { status?: number; headers?: Record<string, string> } = {}): Response {
  return new Response(JSON.stringify(body), {
    status: init.status ?? 200,
    headers: { "Content-Type": "application/json", ...init.headers },
  });
}

export function problemResponse(status: number, code: string, title: string, detail?: string): Response {
  return new Response(JSON.stringify({ type: "about:blank", title, status, detail, code }), {
    status,
    headers: { "Content-Type": "application/problem+json" },
  });
}

export type ApiHandler = (method: string, path: string) => Response | Promise<Response>;

/**
 * Replaces `fetch` with `handler(method, path)`; paths are as the app requests
 * them (`/v1/jobs?limit=25`). Unhandled requests answer 404.
 */
export function stubApi(handler: ApiHandler): Mock {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url, "http://localhost");
    return handler((init?.method ?? "GET").toUpperCase(), `${url.pathname}${url.search}`);
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

/** Object URLs: jsdom has none, so count them. */
export function stubObjectUrls(): { created: Mock; revoked: Mock } {
  let n = 0;
  const created = vi.fn(() => `blob:test/${++n}`);
  const revoked = vi.fn();
  Object.assign(URL, { createObjectURL: created, revokeObjectURL: revoked });
  return { created, revoked };
}

/** A fresh Pinia, and an API client that sends a test token. */
export function setupApp(): { pinia: Pinia; onUnauthorized: Mock } {
  const pinia = createPinia();
  setActivePinia(pinia);
  const onUnauthorized = vi.fn();
  configureApiClient({ getToken: async () => "test-token", onUnauthorized });
  return { pinia, onUnauthorized };
}

const Blank = defineComponent({ render: () => h("div") });

export function testRouter(): Router {
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: "/", name: "jobs", component: Blank },
      { path: "/jobs/:id", name: "job", component: Blank },
      { path: "/sign-in", name: "sign-in", component: Blank },
    ],
  });
}

/** Lets promises, timers of 0 ms and Vue's re-render settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await flushPromises();
}
