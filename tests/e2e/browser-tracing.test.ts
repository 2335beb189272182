import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { chooseFiles, launchChromium, newSession, signIn, type AppSession } from "../support/browser.ts";
import { startOtlpReceiver, type ReceivedSpan } from "../support/otlp.ts";
import { startStack, type Stack } from "../support/stack.ts";

const SERVER = 2;
const CLIENT = 3;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

/**
 * The browser is the first hop of the trace: the web app in real Chromium, its OTLP exports going
 * through the real gateway (`POST /v1/telemetry/traces`) to a receiver inside the test, as they
 * would to a collector.
 */
describe("browser tracing", () => {
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let session: AppSession;
  let dir: string;
  const apiRequests: Request[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-browser-trace-"));
    otlp = await startOtlpReceiver();
    [stack, browser] = await Promise.all([
      startStack({
        web: true,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_METRICS_EXPORTER: "none", OTEL_LOGS_EXPORTER: "none" },
      }),
      launchChromium(),
    ]);
    const tenant = Object.keys(stack.tokens)[0]!;
    session = await newSession(browser, tenant);
    session.page.on("request", (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith("/v1/") && !path.startsWith("/v1/telemetry/")) apiRequests.push(r);
    });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await otlp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Waits until the receiver holds a span matching `pick`. */
  async function spanWhere(what: string, pick: (s: ReceivedSpan) => boolean, timeoutMs = 20_000): Promise<ReceivedSpan> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = otlp.spans.find(pick);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${what} span after ${timeoutMs} ms; received: ${otlp.spans.map((s) => `${s.service}:${s.name}`).join(", ")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it("sends traceparent with API calls, and the browser's span is the parent of the gateway's server span", async () => {
    await signIn(session, stack!);
    await session.page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
    const pdf = join(dir, "traced.pdf");
    await makeTextPdf(pdf, defaultPages(2));
    await chooseFiles(session.page, [pdf]);
    const link = session.page.getByRole("list", { name: "Documents, newest first" }).getByRole("link", { name: "traced.pdf", exact: true });
    await link.waitFor({ timeout: 60_000 });
    await link.click(); // the job's view reads the job: GET /v1/jobs/{id}
    await session.page.getByRole("heading", { level: 1, name: "traced.pdf" }).waitFor();

    // Tracing starts once `/v1/config` said where spans go (what the app asks at start-up, before
    // that, is untraced); from then on every API call carries W3C trace context: the listing and
    // each of the upload's requests.
    const headers = await Promise.all(apiRequests.map(async (r) => ({ what: `${r.method()} ${new URL(r.url()).pathname}`, traceparent: (await r.allHeaders())["traceparent"] })));
    const firstTraced = headers.findIndex((h) => h.traceparent !== undefined);
    expect(firstTraced, `no API request carried traceparent (page errors: ${JSON.stringify([...session.log.pageErrors, ...session.log.consoleErrors])})`).toBeGreaterThan(0);
    const startUp = new Set(["GET /v1/config", "POST /v1/realtime/credentials", "GET /v1/jobs"]);
    expect(
      headers
        .slice(0, firstTraced)
        .map((h) => h.what)
        .filter((w) => !startUp.has(w)),
    ).toEqual([]);
    const traced = headers.slice(firstTraced);
    expect(traced.map((h) => h.what)).toEqual(expect.arrayContaining(["POST /v1/uploads", expect.stringMatching(/^PATCH \/v1\/uploads\//), expect.stringMatching(/^GET \/v1\/jobs\/[^/]+$/)]));
    const missing = traced.filter((h) => !h.traceparent || !TRACEPARENT.test(h.traceparent)).map((h) => h.what);
    expect(missing, "API requests without a valid traceparent once tracing started").toEqual([]);

    // Reading the job: the browser's client span is the parent of the gateway's server span.
    const read = traced.find((h) => /^GET \/v1\/jobs\/[^/]+$/.test(h.what))!;
    const [, traceId, parentId] = TRACEPARENT.exec(read.traceparent!)!;
    const browserSpan = await spanWhere("browser fetch", (s) => s.service === "web" && s.spanId === parentId);
    expect(browserSpan).toMatchObject({ traceId, kind: CLIENT });
    const serverSpan = await spanWhere("gateway server", (s) => s.service === "gateway" && s.kind === SERVER && s.parentSpanId === parentId);
    expect(serverSpan.traceId).toBe(traceId);

    // The upload is one trace: every tus request (creation, chunks, the final one that creates the
    // job) carries the context of the browser's upload span, and the job's processing continues
    // it, down to each page.
    const uploadRequests = traced.filter((h) => h.what.startsWith("POST /v1/uploads") || h.what.startsWith("PATCH /v1/uploads/"));
    const contexts = new Set(uploadRequests.map((h) => TRACEPARENT.exec(h.traceparent!)!.slice(1, 3).join("/")));
    expect(contexts.size, "one trace context for all of the upload's requests").toBe(1);
    const [uploadTrace, uploadSpanId] = [...contexts][0]!.split("/") as [string, string];
    const uploadSpan = await spanWhere("browser upload", (s) => s.service === "web" && s.spanId === uploadSpanId);
    expect(uploadSpan).toMatchObject({ traceId: uploadTrace, name: "upload traced.pdf", kind: CLIENT });
    expect(uploadSpan.attributes["docflow.job.id"]).toEqual(expect.any(String));
    await spanWhere("gateway upload", (s) => s.service === "gateway" && s.kind === SERVER && s.parentSpanId === uploadSpanId);
    for (const page of [1, 2]) await spanWhere(`processor page ${page}`, (s) => s.service === "processor" && s.traceId === uploadTrace && s.name === `page ${page}`, 60_000);

    // The page load and Web Vitals are recorded (LCP is reported once the page is hidden).
    await spanWhere("document load", (s) => s.service === "web" && s.name === "documentLoad");
    await session.page.goto("about:blank");
    await spanWhere("web vital", (s) => s.service === "web" && s.name.startsWith("web_vital ") && typeof s.attributes["web_vital.value"] === "number");
  });

  it("refuses span exports without a token and batches over the limit", async () => {
    const url = `${stack!.baseUrl}/v1/telemetry/traces`;
    expect((await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(401);
    const token = stack!.tokens[session.tenant]!;
    const big = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "x".repeat(600 * 1024) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { code: string }).code).toBe("telemetry_batch_too_large");
    const wrongType = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" }, body: "hi" });
    expect(wrongType.status).toBe(415);
  });
});
