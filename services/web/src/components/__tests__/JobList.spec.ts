import { mount, type VueWrapper } from "@vue/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import JobList from "@/components/JobList.vue";
import LiveStatusBanner from "@/components/LiveStatusBanner.vue";
import { useLiveStore } from "@/stores/live";
import { IDS, jsonResponse, makeEvent, makeJob, problemResponse, settle, setupApp, stubApi, testRouter } from "@/__tests__/helpers";

/** The NATS connection, faked: the test pushes messages and closes it. */
const nats = vi.hoisted(() => ({
  deliver: null as ((data: string) => void) | null,
  drop: null as (() => void) | null,
  credentials: [] as unknown[],
}));

vi.mock("@/live/natsTransport", () => ({
  openLiveConnection: async (credentials: unknown, onMessage: (data: string) => void) => {
    nats.credentials.push(credentials);
    nats.deliver = onMessage;
    let drop!: (error: Error | null) => void;
    const closed = new Promise<Error | null>((resolve) => (drop = resolve));
    nats.drop = () => drop(new Error("connection lost"));
    return { closed, close: async () => drop(null) };
  },
}));

const older = makeJob({ id: IDS[0], filename: "older.pdf", createdAt: "2026-01-01T09:00:00.000Z", status: "completed", pagesDone: 12, pageCount: 12 });
const newer = makeJob({
  id: IDS[1],
  filename: "newer.pptx",
  contentType: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  createdAt: "2026-01-01T10:00:00.000Z",
  pagesDone: 3,
  pageCount: 120,
});

function credentials() {
  return jsonResponse({
    url: "ws://127.0.0.1:9222",
    jwt: "eyJ.test.jwt",
    subject: "docflow.events.acme.>",
    expiresAt: new Date(Date.now() + 15 * 60_000).toISOString(),
  });
}

function mountList(): VueWrapper {
  const { pinia } = setupApp();
  return mount({ components: { JobList, LiveStatusBanner }, template: "<LiveStatusBanner /><JobList />" }, { global: { plugins: [pinia, testRouter()] } });
}

function rowFor(wrapper: VueWrapper, id: string) {
  return wrapper.get(`[data-job-id="${id}"]`);
}

describe("JobList", () => {
  beforeEach(() => {
    nats.deliver = null;
    nats.drop = null;
    nats.credentials = [];
  });

  afterEach(() => {
    useLiveStore().stop();
  });

  it("renders the jobs newest first with status, page progress, size and age", async () => {
    stubApi((method, path) =>
      method === "GET" && path.startsWith("/v1/jobs") ? jsonResponse({ items: [newer, older], nextCursor: null }) : problemResponse(404, "route_not_found", "No such endpoint"),
    );
    const wrapper = mountList();
    await settle();

    const rows = wrapper.findAll("ol li");
    expect(rows.map((row) => row.get("a").text())).toEqual(["newer.pptx", "older.pdf"]);
    expect(rows[0]!.text()).toContain("Processing");
    expect(rows[0]!.get('[data-testid="pages"]').text()).toBe("3/120 pages done");
    expect(rows[0]!.text()).toContain("PowerPoint");
    expect(rows[0]!.text()).toContain("2 MB");
    expect(rows[0]!.find("time").attributes("datetime")).toBe(newer.createdAt);
    expect(rows[1]!.text()).toContain("Ready");
    expect(rows[1]!.get('[data-testid="pages"]').text()).toBe("12/12 pages");
    expect(rows[0]!.get("a").attributes("href")).toBe(`/jobs/${newer.id}`);
  });

  it("keeps the API's order (by id) when uploads overlapped, and says '1 page' for one", async () => {
    // The gateway stamps createdAt once the upload is stored: a large file started first can get
    // a later createdAt than a small one started after it. GET /v1/jobs (and its cursor) go by id.
    const bigStartedFirst = makeJob({ id: IDS[0], filename: "big.pdf", createdAt: "2026-01-01T10:00:05.000Z", status: "completed", pageCount: 1, pagesDone: 1 });
    const smallStartedLater = makeJob({ id: IDS[1], filename: "small.pdf", createdAt: "2026-01-01T10:00:01.000Z", status: "completed", pageCount: 3, pagesDone: 3 });
    stubApi((method, path) =>
      method === "GET" && path.startsWith("/v1/jobs") ? jsonResponse({ items: [smallStartedLater, bigStartedFirst], nextCursor: null }) : problemResponse(404, "route_not_found", "No such endpoint"),
    );
    const wrapper = mountList();
    await settle();

    const rows = wrapper.findAll("ol li");
    expect(rows.map((row) => row.get("a").text())).toEqual(["small.pdf", "big.pdf"]);
    expect(rows[1]!.get('[data-testid="pages"]').text()).toBe("1/1 page");
  });

  it("applies live events and ignores one with an older revision", async () => {
    stubApi((method, path) => {
      if (path === "/v1/realtime/credentials" && method === "POST") return credentials();
      if (path.startsWith("/v1/jobs?")) return jsonResponse({ items: [newer, older], nextCursor: null });
      return problemResponse(404, "not_found", "Not found");
    });
    const wrapper = mountList();
    useLiveStore().start();
    await settle();
    expect(nats.credentials).toHaveLength(1);
    expect(useLiveStore().status).toBe("live");

    nats.deliver!(JSON.stringify(makeEvent({ type: "job.progress", jobId: newer.id, revision: 7, pagesDone: 37, pageCount: 120 })));
    await settle();
    expect(rowFor(wrapper, newer.id).get('[data-testid="pages"]').text()).toBe("37/120 pages done");

    // A late event from before revision 7 changes nothing.
    nats.deliver!(JSON.stringify(makeEvent({ type: "job.progress", jobId: newer.id, revision: 5, pagesDone: 20, pageCount: 120 })));
    await settle();
    expect(rowFor(wrapper, newer.id).get('[data-testid="pages"]').text()).toBe("37/120 pages done");

    nats.deliver!(JSON.stringify(makeEvent({ type: "job.completed", jobId: newer.id, revision: 8, pagesDone: 120, pageCount: 120 })));
    await settle();
    expect(rowFor(wrapper, newer.id).text()).toContain("Ready");
    expect(rowFor(wrapper, newer.id).get('[data-testid="pages"]').text()).toBe("120/120 pages");
  });

  it("adds a job that another tab uploaded, at the top", async () => {
    stubApi(() => jsonResponse({ items: [older], nextCursor: null }));
    const wrapper = mountList();
    await settle();

    const fresh = makeJob({ id: IDS[2], filename: "fresh.pdf", status: "queued", pageCount: null, createdAt: "2026-01-01T11:00:00.000Z" });
    useLiveStore().receive(JSON.stringify(makeEvent({ type: "job.queued", jobId: fresh.id, revision: 1, job: fresh })));
    await settle();

    expect(wrapper.findAll("ol li a").map((link) => link.text())).toEqual(["fresh.pdf", "older.pdf"]);
    expect(rowFor(wrapper, fresh.id).text()).toContain("Waiting");
  });

  it("says live updates are paused when the connection drops, then reconnects with fresh credentials", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    try {
      const api = stubApi((method, path) => (path === "/v1/realtime/credentials" ? credentials() : jsonResponse({ items: [older], nextCursor: null })));
      const wrapper = mountList();
      useLiveStore().start();
      await settle();
      expect(useLiveStore().status).toBe("live");

      nats.drop!();
      await settle();
      expect(wrapper.get('[role="status"]').text()).toContain("Live updates paused, reconnecting");

      await vi.advanceTimersByTimeAsync(2_000);
      await settle();
      expect(nats.credentials).toHaveLength(2);
      expect(useLiveStore().status).toBe("live");
      expect(wrapper.get('[role="status"]').text()).toBe("");
      // After the reconnect, the list was read again over HTTP.
      const listReads = api.mock.calls.filter(([url]) => String(url).startsWith("/v1/jobs?"));
      expect(listReads.length).toBeGreaterThanOrEqual(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it("falls back to polling when the gateway has no live updates", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const api = stubApi((method, path) => (path === "/v1/realtime/credentials" ? problemResponse(501, "not_implemented", "Not implemented") : jsonResponse({ items: [older], nextCursor: null })));
      const wrapper = mountList();
      useLiveStore().start();
      await settle();
      expect(wrapper.get('[role="status"]').text()).toContain("checking for changes every 3 s");

      const before = api.mock.calls.length;
      await vi.advanceTimersByTimeAsync(3_000);
      expect(api.mock.calls.length).toBeGreaterThan(before);
    } finally {
      vi.useRealTimers();
    }
  });

  it("shows an empty state", async () => {
    stubApi(() => jsonResponse({ items: [], nextCursor: null }));
    const wrapper = mountList();
    await settle();
    expect(wrapper.text()).toContain("No documents yet");
  });

  it("shows an error with a way to try again", async () => {
    let fail = true;
    stubApi(() => (fail ? Promise.reject(new TypeError("Failed to fetch")) : jsonResponse({ items: [older], nextCursor: null })));
    const wrapper = mountList();
    await settle();

    const alert = wrapper.get('[role="alert"]');
    expect(alert.text()).toContain("Your documents could not be loaded.");
    expect(alert.text()).toContain("Cannot reach the docflow server");

    fail = false;
    await alert.get("button").trigger("click");
    await settle();
    expect(wrapper.findAll("ol li a").map((link) => link.text())).toEqual(["older.pdf"]);
  });
});
