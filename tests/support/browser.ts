import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page, type Request, type Response } from "playwright-core";
import type { Stack } from "./stack.ts";

/**
 * Real headless Chromium for the browser end-to-end tests: the system Chromium from Debian
 * (CHROMIUM_PATH, default /usr/bin/chromium) driven by playwright-core. Playwright's own
 * browser downloads are never used.
 */

const ROOT = resolve(import.meta.dirname, "../..");

/** Where screenshots of a run go (git-ignored through `test-results/`). */
export const SCREENSHOT_DIR = join(ROOT, "test-results", "screenshots");

export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** What a page said on its own: console errors and warnings, uncaught exceptions, failed requests. */
export interface PageLog {
  consoleErrors: string[];
  pageErrors: string[];
  failedRequests: string[];
  /** Every request the page made, as "METHOD path". */
  requests: string[];
  /** URLs of the WebSockets the page opened. */
  webSockets: string[];
}

export interface AppSession {
  context: BrowserContext;
  page: Page;
  log: PageLog;
  /** The tenant signed in. */
  tenant: string;
}

/**
 * A fresh browser context (its own storage: a different person) with one page, recording what
 * the page logs. Not signed in yet: see `signIn`.
 */
export async function newSession(browser: Browser, tenant: string, viewport = { width: 1280, height: 800 }): Promise<AppSession> {
  const context = await browser.newContext({ viewport, colorScheme: "light", locale: "en-GB", timezoneId: "UTC" });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const log: PageLog = { consoleErrors: [], pageErrors: [], failedRequests: [], requests: [], webSockets: [] };
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") log.consoleErrors.push(`[${message.type()}] ${message.text()}`);
  });
  page.on("pageerror", (error) => log.pageErrors.push(error.stack ?? error.message));
  page.on("request", (request) => {
    const url = new URL(request.url());
    log.requests.push(`${request.method()} ${url.pathname}${url.search}`);
  });
  page.on("requestfailed", (request) => log.failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText ?? "failed"}`));
  page.on("websocket", (ws) => log.webSockets.push(ws.url()));
  return { context, page, log, tenant };
}

/** Opens the sign-in link `npm start` prints: `/#token=<token>`. */
export async function signIn(session: AppSession, stack: Stack): Promise<void> {
  const token = stack.tokens[session.tenant];
  if (!token) throw new Error(`no token for tenant ${session.tenant}`);
  await session.page.goto(`${stack.baseUrl}/#token=${encodeURIComponent(token)}`);
}

/** Saves a screenshot under test-results/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  // Let the entrance animations (0.2 s) finish so the picture shows the settled screen.
  await page.waitForTimeout(300);
  await page.screenshot({ path, fullPage, animations: "disabled" });
  return path;
}

/** Sets a value on `window`; it survives anything but a page load, so its presence later proves there was none. */
export async function markWindow(page: Page, marker: string): Promise<void> {
  await page.evaluate((value) => {
    (window as unknown as { __docflowMarker?: string }).__docflowMarker = value;
  }, marker);
}

export async function windowMarker(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (window as unknown as { __docflowMarker?: string }).__docflowMarker);
}

/**
 * Records, from now on, every distinct text (whitespace collapsed) that elements matching
 * `selector` show, in the order they appear: the states a list row goes through while the page
 * stays loaded. Read with `recordedTexts`.
 */
export async function recordTexts(page: Page, selector: string): Promise<void> {
  await page.evaluate((sel) => {
    const w = window as unknown as { __docflowTexts?: string[] };
    const texts: string[] = [];
    const seen = new Set<string>();
    w.__docflowTexts = texts;
    const take = () => {
      for (const element of Array.from(document.querySelectorAll<HTMLElement>(sel))) {
        const text = element.innerText.replace(/\s+/g, " ").trim();
        if (!seen.has(text)) {
          seen.add(text);
          texts.push(text);
        }
      }
    };
    new MutationObserver(take).observe(document.body, { subtree: true, childList: true, characterData: true });
    take();
  }, selector);
}

export async function recordedTexts(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __docflowTexts?: string[] }).__docflowTexts ?? []);
}

/** Counts the images in `scope` that the browser has actually decoded (naturalWidth > 0). */
export async function decodedImages(page: Page, selector: string): Promise<{ total: number; decoded: number; widths: number[] }> {
  return page.locator(selector).evaluateAll((images) => {
    const list = images as HTMLImageElement[];
    const decoded = list.filter((image) => image.complete && image.naturalWidth > 0);
    return { total: list.length, decoded: decoded.length, widths: decoded.map((image) => image.naturalWidth) };
  });
}

function tail(text: string, maxLines: number, maxChars: number): string {
  const lines = text.split("\n");
  const cut = lines.slice(-maxLines).join("\n");
  return cut.length > maxChars ? `…${cut.slice(-maxChars)}` : cut;
}

/**
 * Wraps a test body so that a failure carries what explains it: a screenshot of every open page,
 * each page's console errors, uncaught exceptions and failed requests, and the tail of the
 * stack's logs (gateway and processor), appended to the thrown error's message.
 */
export function debuggable(name: string, get: () => { stack: Stack | undefined; sessions: AppSession[] }, body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (error) {
      const { stack, sessions } = get();
      const parts: string[] = [];
      for (const [index, session] of sessions.entries()) {
        let shot = "";
        if (!session.page.isClosed()) {
          try {
            shot = await screenshot(session.page, `FAILED-${name}-${index}-${session.tenant}`);
          } catch (shotError) {
            shot = `(no screenshot: ${shotError instanceof Error ? shotError.message : String(shotError)})`;
          }
        }
        const url = session.page.isClosed() ? "(closed)" : session.page.url();
        parts.push(
          `--- browser page ${index} (tenant ${session.tenant}) at ${url}`,
          `screenshot: ${shot}`,
          `console errors/warnings:\n${session.log.consoleErrors.join("\n") || "(none)"}`,
          `uncaught exceptions:\n${session.log.pageErrors.join("\n") || "(none)"}`,
          `failed requests:\n${session.log.failedRequests.join("\n") || "(none)"}`,
          `last requests:\n${session.log.requests.slice(-25).join("\n") || "(none)"}`,
        );
      }
      parts.push(`--- stack logs (tail)\n${stack ? tail(stack.logs(), 80, 16_000) : "(no stack)"}`);
      const details = `\n\n${parts.join("\n")}`;
      if (error instanceof Error) {
        error.message += details;
        throw error;
      }
      throw new Error(`${String(error)}${details}`, { cause: error });
    }
  };
}

/** Picks files the way a person does: "Choose files" opens the system file chooser. */
export async function chooseFiles(page: Page, paths: string[]): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByRole("button", { name: "Choose files" }).click()]);
  await chooser.setFiles(paths);
}

/** One tus request the page made (to `/v1/uploads` or an upload's URL), and what came of it. */
export interface TusExchange {
  method: string;
  /** Path of the request URL (`/v1/uploads` for creation, `/v1/uploads/<id>` after). */
  path: string;
  /** When it was sent, in ms since the recording started. */
  sentAt: number;
  /** When it ended (answered or failed), in ms since the recording started; null while in flight. */
  endedAt: number | null;
  /** The request's `Upload-Offset` (PATCH) and `Upload-Length` (creation). */
  uploadOffset: number | null;
  uploadLength: number | null;
  /** The body's size as sent (`Content-Length`), once known. */
  bodyBytes: number | null;
  /** The answer's status; null while in flight or when the request failed. */
  status: number | null;
  /** The answer's `Upload-Offset` (PATCH, HEAD), `Location` (creation) and `Docflow-Job-Id` (final PATCH). */
  responseOffset: number | null;
  location: string | null;
  jobId: string | null;
  /** Why the request failed (net::ERR_…), when it did. */
  failure: string | null;
}

export interface TusRecording {
  exchanges: TusExchange[];
  /** Now, on the recording's clock (ms since it started), to compare with `sentAt` and `endedAt`. */
  elapsed(): number;
  /** The recorded PATCH requests, in the order they were sent. */
  patches(): TusExchange[];
  /** Stops recording and waits for the headers being read. */
  stop(): Promise<void>;
  /** Waits for the headers of the requests so far (Content-Length comes asynchronously). */
  settled(): Promise<void>;
}

const header = (headers: Record<string, string>, name: string): string | null => headers[name.toLowerCase()] ?? null;
const numberHeader = (headers: Record<string, string>, name: string): number | null => {
  const value = header(headers, name);
  return value === null || value === "" ? null : Number(value);
};

/**
 * Records every tus request `page` makes (and the answers), in order: what a tus client did,
 * from the network's point of view. Headers the browser adds itself (Content-Length) are read
 * asynchronously: call `settled()` before reading `bodyBytes`.
 */
export function recordTus(page: Page, pathPrefix = "/v1/uploads"): TusRecording {
  const t0 = Date.now();
  const exchanges: TusExchange[] = [];
  const byRequest = new Map<Request, TusExchange>();
  const pending: Promise<unknown>[] = [];
  const onRequest = (request: Request) => {
    const url = new URL(request.url());
    if (!url.pathname.startsWith(pathPrefix)) return;
    const headers = request.headers();
    const exchange: TusExchange = {
      method: request.method(),
      path: url.pathname,
      sentAt: Date.now() - t0,
      endedAt: null,
      uploadOffset: numberHeader(headers, "Upload-Offset"),
      uploadLength: numberHeader(headers, "Upload-Length"),
      bodyBytes: null,
      status: null,
      responseOffset: null,
      location: null,
      jobId: null,
      failure: null,
    };
    exchanges.push(exchange);
    byRequest.set(request, exchange);
    pending.push(
      request.allHeaders().then(
        (all) => {
          const length = numberHeader(all, "Content-Length");
          exchange.bodyBytes = length ?? (request.postDataBuffer()?.length || null);
        },
        () => undefined,
      ),
    );
  };
  const onResponse = (response: Response) => {
    const exchange = byRequest.get(response.request());
    if (!exchange) return;
    const headers = response.headers();
    exchange.endedAt = Date.now() - t0;
    exchange.status = response.status();
    exchange.responseOffset = numberHeader(headers, "Upload-Offset");
    exchange.location = header(headers, "Location");
    exchange.jobId = header(headers, "Docflow-Job-Id");
  };
  const onFailed = (request: Request) => {
    const exchange = byRequest.get(request);
    if (!exchange) return;
    exchange.endedAt = Date.now() - t0;
    exchange.failure = request.failure()?.errorText ?? "failed";
  };
  page.on("request", onRequest);
  page.on("response", onResponse);
  page.on("requestfailed", onFailed);
  const settled = async () => {
    await Promise.all(pending);
  };
  return {
    exchanges,
    elapsed: () => Date.now() - t0,
    patches: () => exchanges.filter((e) => e.method === "PATCH"),
    settled,
    async stop() {
      page.off("request", onRequest);
      page.off("response", onResponse);
      page.off("requestfailed", onFailed);
      await settled();
    },
  };
}

/** A tus exchange as one line, for failure messages: `PATCH /v1/uploads/… @512 +256K -> 200 @768 (1203-2210 ms)`. */
export function describeTus(exchanges: TusExchange[]): string {
  return exchanges
    .map((e) => {
      const sent = e.uploadOffset === null ? "" : ` @${e.uploadOffset}`;
      const body = e.bodyBytes === null ? "" : ` +${e.bodyBytes}`;
      const answer = e.failure ?? (e.status === null ? "(in flight)" : `${e.status}${e.responseOffset === null ? "" : ` @${e.responseOffset}`}`);
      return `${e.method} ${e.path.replace(/\/v1\/uploads\/(.{8}).*/, "/v1/uploads/$1…")}${sent}${body} -> ${answer} (${e.sentAt}-${e.endedAt ?? "…"} ms)`;
    })
    .join("\n");
}

/**
 * Slows the page's uploads (and only them) to `bytesPerSecond` through the DevTools protocol, as a
 * slow uplink would; `undefined` lifts the limit. Returns a function that lifts it and detaches.
 */
export async function throttleUploads(context: BrowserContext, page: Page, bytesPerSecond: number): Promise<{ set(bytesPerSecond: number | undefined): Promise<void>; release(): Promise<void> }> {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const set = async (rate: number | undefined) => {
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: rate === undefined ? 0 : 10, downloadThroughput: -1, uploadThroughput: rate ?? -1 });
  };
  await set(bytesPerSecond);
  return {
    set,
    async release() {
      await set(undefined).catch(() => undefined);
      await cdp.detach().catch(() => undefined);
    },
  };
}
