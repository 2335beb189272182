import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import type { Stack } from "./stack.ts";

/**
 * Real headless Chromium for the browser end-to-end tests: the system Chromium from Debian
 * (CHROMIUM_PATH, default /usr/bin/chromium) driven by playwright-core. Playwright's own
 * browser downloads are never used.
 */

const ROOT = resolve(import.meta.dirname, "../..");

/** Where screenshots of a run go (git-ignored through `test-results/`). */
export const SCREENSHOT_DIR = join(ROOT, "test-results", "screenshots");

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

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
