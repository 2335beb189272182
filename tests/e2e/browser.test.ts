import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makePptx, makeTextPdf, pageWords } from "../fixtures/generate.ts";
import { debuggable, decodedImages, launchChromium, markWindow, newSession, recordedTexts, recordTexts, screenshot, signIn, windowMarker, type AppSession } from "../support/browser.ts";
import { startStack, type Stack } from "../support/stack.ts";

/**
 * The web app in real headless Chromium, served by the real gateway (DOCFLOW_WEB_DIR) on the
 * real stack: uploads go through the app's file picker, live updates come over NATS WebSocket
 * with the credentials the gateway mints. Every assertion is about what a person sees.
 * Screenshots of the main screens go to test-results/screenshots/.
 */

const REPORT_PAGES = 12;
const LONG_PAGES = 40;
const DESKTOP = { width: 1280, height: 800 };

describe("web app in Chromium on the real stack", () => {
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  let dir: string;
  let acme: string;
  let globex: string;
  /** The first tenant's tab, kept across tests like a person keeps one tab open. */
  let alice: AppSession;
  const sessions: AppSession[] = [];
  let reportJobId = "";

  const debug = (name: string, body: () => Promise<void>) => debuggable(name, () => ({ stack, sessions }), body);
  const file = (name: string) => join(dir, name);

  const api = async <T>(tenant: string, path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`${stack!.baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${stack!.tokens[tenant]}`, ...(init.headers as Record<string, string>) } });
    if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  /** Picks files the way a person does: "Choose files" opens the system file chooser. */
  async function chooseFiles(page: Page, paths: string[]): Promise<void> {
    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByRole("button", { name: "Choose files" }).click()]);
    expect(chooser.isMultiple()).toBe(true);
    await chooser.setFiles(paths);
  }

  /** Back to the documents screen through the header's home link (no page load). */
  async function goToDocuments(page: Page): Promise<void> {
    await page.getByRole("banner").getByRole("link", { name: "docflow" }).click();
    await page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
  }

  const jobsList = (page: Page) => page.getByRole("list", { name: "Documents, newest first" });
  const jobRow = (page: Page, filename: string) =>
    jobsList(page)
      .getByRole("listitem")
      .filter({ has: page.getByRole("link", { name: filename, exact: true }) });
  const uploadRow = (page: Page, filename: string) => page.getByRole("list", { name: "Uploads" }).getByRole("listitem").filter({ hasText: filename });
  const pagesGrid = (page: Page) => page.getByRole("list", { name: "Pages" });
  /** Pages shown as ready (a thumbnail tile one can open), as opposed to "Processing…" placeholders. */
  const readyTiles = (page: Page) => pagesGrid(page).getByRole("button", { name: /^Page \d+$/ });
  const listReads = (session: AppSession) => session.log.requests.filter((r) => r.startsWith("GET /v1/jobs?")).length;

  /**
   * The tab threw nothing and logged no error or warning (the app warns, for one, about a live
   * event that does not match the contract). A 404 answer is expected where the test asks for
   * something that is not there (another tenant's job, a page not rendered yet).
   */
  function expectNoErrors(session: AppSession): void {
    expect(session.log.pageErrors, `uncaught exceptions in the ${session.tenant} tab`).toEqual([]);
    const unexpected = session.log.consoleErrors.filter((m) => !m.includes("the server responded with a status of 404"));
    expect(unexpected, `console errors and warnings in the ${session.tenant} tab`).toEqual([]);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-browser-"));
    // Small page ranges: a long document's pages become ready range by range, visibly.
    const [startedStack, startedBrowser, fixtures] = await Promise.allSettled([
      startStack({ web: true, env: { DOCFLOW_RANGE_SIZE: "2" } }),
      launchChromium(),
      Promise.all([
        makeTextPdf(file("report.pdf"), defaultPages(REPORT_PAGES)),
        makeTextPdf(file("long-report.pdf"), defaultPages(LONG_PAGES)),
        makeTextPdf(file("private.pdf"), defaultPages(1)),
        makePptx(file("deck.pptx"), ["Quarterly results alpha", "Roadmap bravo", "Questions charlie"]),
        writeFile(file("notes.txt"), "meeting notes, not a document the app takes\n"),
      ]),
    ]);
    // Keep whichever started (afterAll stops it) before reporting a failure.
    if (startedStack.status === "fulfilled") stack = startedStack.value;
    if (startedBrowser.status === "fulfilled") browser = startedBrowser.value;
    for (const result of [startedStack, startedBrowser, fixtures]) if (result.status === "rejected") throw result.reason;
    if (!stack || !browser) throw new Error("unreachable");
    [acme, globex] = Object.keys(stack.tokens) as [string, string];
    alice = await newSession(browser, acme, DESKTOP);
    sessions.push(alice);
  });

  afterAll(async () => {
    await Promise.allSettled(sessions.map((s) => s.context.close()));
    await browser?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "signs in from the #token= link, takes the token out of the address bar and shows live updates as connected",
    debug("sign-in", async () => {
      const { page, log } = alice;
      await signIn(alice, stack!);
      await page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
      expect(page.url()).toBe(`${stack!.baseUrl}/`);
      expect(await page.evaluate(() => location.href)).not.toContain("token");
      await expect(page.title()).resolves.toBe("Documents · docflow");

      const header = page.getByRole("banner");
      await header.getByText("Live", { exact: true }).waitFor();
      expect(await header.getByText("Connecting…").count()).toBe(0);
      // "Live" is backed by a real WebSocket to NATS, with the credentials the gateway minted.
      expect(log.requests).toContain("POST /v1/realtime/credentials");
      expect(log.webSockets.map((url) => new URL(url).host)).toContain(new URL(stack!.env.DOCFLOW_REALTIME_WS_URL!).host);
      await page.getByText("No documents yet").waitFor();
      expectNoErrors(alice);
    }),
  );

  it(
    "uploads a PDF and a PPTX picked together, shows upload progress, and the jobs complete live without a reload",
    debug("upload", async () => {
      const { page, context } = alice;
      await markWindow(page, "before-upload");
      await recordTexts(page, 'ol[aria-label="Documents, newest first"] > li');
      const readsBefore = listReads(alice);
      let loads = 0;
      const onLoad = () => (loads += 1);
      page.on("load", onLoad);

      // A slow uplink (24 KB/s) so the upload can be watched; the PPTX (~54 KB) takes ~2 s.
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 24 * 1024 });
      try {
        await chooseFiles(page, [file("report.pdf"), file("deck.pptx")]);
        const deckUpload = uploadRow(page, "deck.pptx");
        const progress = deckUpload.getByRole("progressbar", { name: "Upload of deck.pptx" });
        let percent = 0;
        await expect
          .poll(async () => (percent = Number((await progress.getAttribute("aria-valuenow", { timeout: 1_000 }).catch(() => null)) ?? 0)), { timeout: 15_000, interval: 50 })
          .toBeGreaterThan(0);
        expect(percent).toBeLessThan(100);
        expect(await deckUpload.textContent()).toMatch(/\d+% · [\d.]+ KB of [\d.]+ KB|Sent\. Waiting for the server to confirm/);
        await screenshot(page, "upload-in-progress");
      } finally {
        await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }).catch(() => undefined);
        await cdp.detach().catch(() => undefined);
      }

      // Each upload ends as "Uploaded." with a link to its job.
      for (const name of ["report.pdf", "deck.pptx"]) {
        const row = uploadRow(page, name);
        await row.getByText("Uploaded.").waitFor({ timeout: 30_000 });
        await row.getByRole("link", { name: "Follow its processing" }).waitFor();
      }

      // Both jobs are in the list and reach "Ready" with every page done, in this same page.
      const report = jobRow(page, "report.pdf");
      const deck = jobRow(page, "deck.pptx");
      await report.waitFor();
      await deck.waitFor();
      await report.getByText("Ready", { exact: true }).waitFor({ timeout: 60_000 });
      await report.getByText(`${REPORT_PAGES}/${REPORT_PAGES} pages`).waitFor();
      await deck.getByText("Ready", { exact: true }).waitFor({ timeout: 90_000 });
      await deck.getByText("3/3 pages").waitFor();
      expect(await report.textContent()).toContain("PDF");
      expect(await deck.textContent()).toContain("PowerPoint");
      // Newest first: the list order matches the API's.
      const theirs = await api<{ items: Job[] }>(acme, "/v1/jobs");
      const names = await jobsList(page).getByRole("link").allTextContents();
      expect(names.map((n) => n.trim())).toEqual(theirs.items.map((j) => j.filename));
      expect(theirs.items.every((j) => j.status === "completed")).toBe(true);
      reportJobId = theirs.items.find((j) => j.filename === "report.pdf")!.id;

      // Each row changed in place, from waiting or processing to ready ...
      const rowStates = await recordedTexts(page);
      for (const name of ["report.pdf", "deck.pptx"]) {
        const states = rowStates.filter((text) => text.startsWith(`${name} `));
        expect(
          states.some((text) => /\b(Waiting|Processing)\b/.test(text)),
          `${name} went ${JSON.stringify(states)}`,
        ).toBe(true);
        expect(states.at(-1), `${name} went ${JSON.stringify(states)}`).toMatch(/\bReady\b/);
      }
      // ... with no reload and no re-read of the list: the changes arrived over the live connection.
      page.off("load", onLoad);
      expect(await windowMarker(page)).toBe("before-upload");
      expect(loads).toBe(0);
      expect(listReads(alice)).toBe(readsBefore);
      await page.getByRole("banner").getByText("Live", { exact: true }).waitFor({ timeout: 1_000 });
      await screenshot(page, "jobs-list");

      // The same list on a 360 px wide phone screen: everything fits, nothing scrolls sideways.
      await page.setViewportSize({ width: 360, height: 740 });
      try {
        await report.getByText(`${REPORT_PAGES}/${REPORT_PAGES} pages`).waitFor();
        expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
        await screenshot(page, "jobs-list-360");
      } finally {
        await page.setViewportSize(DESKTOP);
      }
      expectNoErrors(alice);
    }),
  );

  it(
    "shows a decoded thumbnail for every page, a page's text, and finds the page that contains a word",
    debug("job-view", async () => {
      const { page } = alice;
      await jobRow(page, "report.pdf").getByRole("link", { name: "report.pdf" }).click();
      await page.getByRole("heading", { level: 1, name: "report.pdf" }).waitFor();
      expect(new URL(page.url()).pathname).toBe(`/jobs/${reportJobId}`);
      await page.getByText(`${REPORT_PAGES} pages`, { exact: true }).waitFor();

      // Every page has a tile; scroll through them like a person (thumbnails load when near view).
      const tiles = readyTiles(page);
      await expect.poll(() => tiles.count()).toBe(REPORT_PAGES);
      for (let n = 1; n <= REPORT_PAGES; n++)
        await pagesGrid(page)
          .getByRole("button", { name: `Page ${n}`, exact: true })
          .scrollIntoViewIfNeeded();
      await expect.poll(async () => (await decodedImages(page, '[aria-label="Pages"] img')).decoded, { timeout: 15_000 }).toBe(REPORT_PAGES);
      const thumbs = await decodedImages(page, '[aria-label="Pages"] img');
      expect(thumbs.widths.every((w) => w === 200)).toBe(true); // the 200 px WebP thumbnails
      await page.evaluate(() => window.scrollTo(0, 0));
      await screenshot(page, "job-pages");

      // Open page 5: its preview image and its extracted text.
      await pagesGrid(page).getByRole("button", { name: "Page 5", exact: true }).click();
      const dialog = page.getByRole("dialog", { name: `Page 5 of ${REPORT_PAGES}` });
      await dialog.waitFor();
      const text = dialog.getByRole("region", { name: "Text on this page" });
      await expect.poll(() => text.textContent()).toContain(pageWords(5));
      expect(await text.textContent()).toContain(`Page 5 of ${REPORT_PAGES}`);
      const preview = dialog.getByRole("img", { name: "Page 5" });
      await expect.poll(() => preview.evaluate((img: HTMLImageElement) => (img.complete ? img.naturalWidth : 0)), { timeout: 15_000 }).toBeGreaterThanOrEqual(1270);
      await screenshot(page, "page-text", false);

      // "Next" moves to page 6 and its text.
      await dialog.getByRole("button", { name: "Next page" }).click();
      const dialog6 = page.getByRole("dialog", { name: `Page 6 of ${REPORT_PAGES}` });
      await expect.poll(() => dialog6.getByRole("region", { name: "Text on this page" }).textContent()).toContain(pageWords(6));
      await page.keyboard.press("Escape");
      await dialog6.waitFor({ state: "hidden" });

      // Search for a word that only page 7 has: the grid shows page 7 alone, the word marked.
      const word = pageWords(7).split(" ")[1]!; // "hotel7"
      await page.getByRole("searchbox", { name: "Search the text of this document" }).fill(word);
      await page.getByText(`1 page contains “${word}”`).waitFor();
      await expect.poll(() => pagesGrid(page).getByRole("listitem").count()).toBe(1);
      const match = pagesGrid(page).getByRole("listitem").first();
      expect(await match.getByRole("button").textContent()).toContain("Page 7");
      expect(await match.locator("mark").allTextContents()).toEqual([word]);
      await screenshot(page, "job-search");

      // Opening the match shows page 7 with the word highlighted in its text.
      await match.getByRole("button").click();
      const dialog7 = page.getByRole("dialog", { name: `Page 7 of ${REPORT_PAGES}` });
      await expect.poll(() => dialog7.getByRole("region", { name: "Text on this page" }).locator("mark").allTextContents()).toEqual([word]);
      await page.keyboard.press("Escape");
      await dialog7.waitFor({ state: "hidden" });

      // A word on no page.
      await page.getByRole("searchbox", { name: "Search the text of this document" }).fill("zzzz-not-there");
      await page.getByText("No page contains “zzzz-not-there”").waitFor();
      expect(await pagesGrid(page).getByRole("listitem").count()).toBe(0);
      await page.getByRole("searchbox", { name: "Search the text of this document" }).fill("");
      await expect.poll(() => pagesGrid(page).getByRole("listitem").count()).toBe(REPORT_PAGES);
      expectNoErrors(alice);
    }),
  );

  it(
    "never shows one tenant's documents to another, live or by address",
    debug("second-tenant", async () => {
      // The first tenant's tab goes back to its list, to see its own new document arrive.
      await alice.page.getByRole("link", { name: "All documents" }).click();
      await alice.page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();

      const bob = await newSession(browser!, globex, DESKTOP);
      sessions.push(bob);
      const { page } = bob;
      await signIn(bob, stack!);
      await page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
      await page.getByRole("banner").getByText("Live", { exact: true }).waitFor();
      await page.getByText("No documents yet").waitFor();

      // The first tenant uploads while the second one watches: nothing arrives.
      const res = await fetch(`${stack!.baseUrl}/v1/documents?filename=private.pdf`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack!.tokens[acme]}` },
        body: await readFile(file("private.pdf")),
      });
      expect(res.status).toBe(202);
      const privateJob = (await res.json()) as Job;
      await expect.poll(async () => (await api<Job>(acme, `/v1/jobs/${privateJob.id}`)).status, { timeout: 30_000, interval: 200 }).toBe("completed");
      // The first tenant's own tab got it live in the meantime (so events did flow).
      await jobRow(alice.page, "private.pdf").getByText("Ready", { exact: true }).waitFor({ timeout: 10_000 });
      expect(await page.getByText("No documents yet").isVisible()).toBe(true);
      for (const name of ["report.pdf", "deck.pptx", "private.pdf"]) expect(await page.getByText(name).count()).toBe(0);
      expect(await page.getByRole("list", { name: "Documents, newest first" }).count()).toBe(0);
      await screenshot(page, "second-tenant-empty");

      // The first tenant's job by its address: not found, and nothing of it shown.
      await page.goto(`${stack!.baseUrl}/jobs/${reportJobId}`);
      await page.getByRole("heading", { level: 1, name: "Document not found" }).waitFor();
      await page.getByText("It may have been deleted, or the link is wrong.").waitFor();
      expect(await page.getByText("report.pdf").count()).toBe(0);
      expect(await pagesGrid(page).count()).toBe(0);
      await screenshot(page, "second-tenant-not-found");
      expectNoErrors(bob);
    }),
  );

  it(
    "streams a long document's pages into the open job view as they are rendered",
    debug("streaming", async () => {
      const { page } = alice;
      // Tall enough for all 40 tiles at once, so every thumbnail loads without scrolling.
      await page.setViewportSize({ width: 1280, height: 2200 });
      try {
        await goToDocuments(page);
        await markWindow(page, "before-long-upload");
        await chooseFiles(page, [file("long-report.pdf")]);
        // Straight from the upload row to the job, while it is processed.
        await uploadRow(page, "long-report.pdf").getByRole("link", { name: "Follow its processing" }).click({ timeout: 30_000 });
        await page.getByRole("heading", { level: 1, name: "long-report.pdf" }).waitFor();

        const samples: { at: number; ready: number; decoded: number; progress: string }[] = [];
        const t0 = Date.now();
        for (;;) {
          const [ready, images, progress] = await Promise.all([
            readyTiles(page).count(),
            decodedImages(page, '[aria-label="Pages"] img'),
            page
              .getByText(/^\d+\/\d+ pages done$|^\d+ pages$/)
              .first()
              .textContent({ timeout: 1_000 })
              .catch(() => ""),
          ]);
          samples.push({ at: Date.now() - t0, ready, decoded: images.decoded, progress: progress ?? "" });
          if (ready === LONG_PAGES && images.decoded === LONG_PAGES) break;
          if (Date.now() - t0 > 60_000) throw new Error(`pages did not all arrive in 60 s: ${JSON.stringify(samples.slice(-5))}`);
          if (samples.length === 4) await screenshot(page, "job-streaming", false);
          await page.waitForTimeout(150);
        }
        const readyCounts = samples.map((s) => s.ready);
        const described = JSON.stringify(samples.map((s) => `${s.at}ms:${s.ready}/${s.decoded} ${s.progress}`));
        // More pages appear over time, never fewer, in the same page (no reload).
        expect(readyCounts[0], described).toBeLessThan(LONG_PAGES);
        expect(readyCounts, described).toEqual([...readyCounts].sort((a, b) => a - b));
        expect(new Set(readyCounts.filter((c) => c > 0 && c < LONG_PAGES)).size, described).toBeGreaterThanOrEqual(2);
        expect(new Set(samples.map((s) => s.decoded).filter((c) => c > 0 && c < LONG_PAGES)).size, described).toBeGreaterThanOrEqual(1);
        // The progress line counted up ("17/40 pages done") and ends as "40 pages".
        expect(
          samples.some((s) => /^\d+\/40 pages done$/.test(s.progress)),
          described,
        ).toBe(true);
        await page.getByText(`${LONG_PAGES} pages`, { exact: true }).waitFor({ timeout: 10_000 });
        await page.getByRole("main").getByText("Ready", { exact: true }).waitFor();
        expect(await windowMarker(page)).toBe("before-long-upload");
        console.log(`[browser] ${LONG_PAGES} pages streamed in: ${described}`);
      } finally {
        await page.setViewportSize(DESKTOP);
      }
      expectNoErrors(alice);
    }),
  );

  it(
    "refuses a text file with a clear message, before anything is uploaded",
    debug("refused", async () => {
      const { page, log } = alice;
      await goToDocuments(page);
      const postsBefore = log.requests.filter((r) => r.startsWith("POST /v1/documents")).length;
      await chooseFiles(page, [file("notes.txt")]);
      const row = uploadRow(page, "notes.txt");
      await row.getByText("Not uploaded.").waitFor();
      expect(await row.textContent()).toContain("Only PDF and PowerPoint (.pptx) files can be uploaded.");
      await screenshot(page, "upload-refused");
      await page.waitForTimeout(300);
      expect(log.requests.filter((r) => r.startsWith("POST /v1/documents")).length).toBe(postsBefore);
      expect(await jobRow(page, "notes.txt").count()).toBe(0);
      const theirs = await api<{ items: Job[] }>(acme, "/v1/jobs");
      expect(theirs.items.map((j) => j.filename)).not.toContain("notes.txt");
      expectNoErrors(alice);
    }),
  );
});
