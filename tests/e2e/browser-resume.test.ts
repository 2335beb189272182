import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { PDFDocument } from "pdf-lib";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import {
  chooseFiles,
  debuggable,
  describeTus,
  launchChromium,
  newSession,
  recordedTexts,
  recordTexts,
  recordTus,
  signIn,
  throttleUploads,
  type AppSession,
  type TusExchange,
  type TusRecording,
} from "../support/browser.ts";
import { startStack, type Stack } from "../support/stack.ts";
import { launchGateway } from "../support/tus.ts";

/**
 * Resumable uploads in real headless Chromium: the web app's upload panel (Uppy's tus plugin)
 * against the real gateway, which advertises tus and a chunk size in `GET /v1/config`. What is
 * asserted is what went over the wire (every tus request the page made, and the answers), what a
 * person sees, and the job each upload made, byte for byte (its sha256).
 */

/** The advertised chunk size: small, so a 2 MiB file takes several PATCH requests. */
const CHUNK = 256 * 1024;
const DESKTOP = { width: 1280, height: 800 };
/** The rows of the upload list, for `recordTexts`. */
const UPLOAD_ROWS = 'ul[aria-labelledby="uploads-heading"] > li';

interface Fixture {
  name: string;
  path: string;
  size: number;
  sha256: string;
  bytes: Uint8Array<ArrayBuffer>;
}

describe("resumable uploads in Chromium on the real stack", () => {
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  let dir: string;
  let tenant: string;
  const sessions: AppSession[] = [];

  const debug = (name: string, body: () => Promise<void>) => debuggable(name, () => ({ stack, sessions }), body);
  const authorization = () => ({ authorization: `Bearer ${stack!.tokens[tenant]}` });

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${stack!.baseUrl}${path}`, { headers: authorization() });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  /** A real PDF (three text pages) padded with an unreferenced stream of random bytes to a little over `bytes`. */
  async function paddedPdf(name: string, bytes: number): Promise<Fixture> {
    const path = join(dir, name);
    await makeTextPdf(path, defaultPages(3));
    const doc = await PDFDocument.load(await readFile(path));
    doc.context.register(doc.context.stream(randomBytes(bytes)));
    const data = new Uint8Array(await doc.save({ useObjectStreams: false }));
    await writeFile(path, data);
    return { name, path, size: data.length, sha256: createHash("sha256").update(data).digest("hex"), bytes: data };
  }

  /** A fresh tab (its own storage), signed in, once the runtime config has switched uploads to tus. */
  async function openApp(): Promise<AppSession> {
    const session = await newSession(browser!, tenant, DESKTOP);
    sessions.push(session);
    const config = session.page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/config");
    await signIn(session, stack!);
    expect(await (await config).json()).toMatchObject({ uploadTransport: "tus", uploadEndpoint: "/v1/uploads", tusChunkBytes: CHUNK });
    await session.page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
    return session;
  }

  const uploadRow = (page: Page, filename: string) => page.getByRole("list", { name: "Uploads" }).getByRole("listitem").filter({ hasText: filename });

  /** What the server says of an upload now (a tus HEAD from the test, as the tenant). */
  async function serverOffset(uploadPath: string): Promise<number> {
    const res = await fetch(`${stack!.baseUrl}${uploadPath}`, { method: "HEAD", headers: { ...authorization(), "Tus-Resumable": "1.0.0" } });
    expect(res.status).toBe(200);
    return Number(res.headers.get("upload-offset"));
  }

  /** The job an upload made, once processed: same bytes as the file, every page done. */
  async function expectCompletedJob(jobId: string | null | undefined, file: Fixture): Promise<Job> {
    expect(jobId, "the id of the job the upload made").toMatch(/^[0-9a-f-]{36}$/);
    let job: Job | undefined;
    await expect.poll(async () => (job = await api<Job>(`/v1/jobs/${jobId}`)).status, { timeout: 30_000, interval: 250 }).toBe("completed");
    expect(job).toMatchObject({ filename: file.name, size: file.size, sha256: file.sha256, contentType: "application/pdf", pageCount: 3, pagesDone: 3 });
    return job!;
  }

  /** The path of the upload the recorded creation made. */
  function uploadPathOf(tus: TusRecording): string {
    const creation = tus.exchanges.find((e) => e.method === "POST" && e.location !== null);
    expect(creation, describeTus(tus.exchanges)).toBeDefined();
    return new URL(creation!.location!, stack!.baseUrl).pathname;
  }

  /**
   * One upload, as tus does it: one creation, then HEAD and PATCH requests to the upload it
   * created only, each PATCH at most a chunk long. Returns the upload's path.
   */
  function expectOneTusUpload(tus: TusRecording, file: Fixture): string {
    const wire = describeTus(tus.exchanges);
    const creations = tus.exchanges.filter((e) => e.method === "POST");
    expect(creations, wire).toHaveLength(1);
    expect(creations[0]).toMatchObject({ path: "/v1/uploads", uploadLength: file.size, status: 201 });
    const uploadPath = new URL(creations[0]!.location!, stack!.baseUrl).pathname;
    expect(uploadPath, wire).toMatch(/^\/v1\/uploads\/[\w-]+$/);
    expect(
      tus.exchanges.slice(1).every((e) => e.path === uploadPath && (e.method === "PATCH" || e.method === "HEAD")),
      wire,
    ).toBe(true);
    for (const patch of tus.patches()) {
      // The size of a request that failed early may not be known; every answered one's is.
      if (patch.failure === null) expect(patch.bodyBytes, wire).not.toBeNull();
      expect(patch.bodyBytes ?? 0, wire).toBeLessThanOrEqual(CHUNK);
    }
    return uploadPath;
  }

  /** The answered PATCH that finished the upload (200, with the job's id). */
  function finalPatch(tus: TusRecording, file: Fixture): TusExchange {
    const last = tus
      .patches()
      .filter((e) => e.status !== null)
      .at(-1);
    expect(last, describeTus(tus.exchanges)).toMatchObject({ status: 200, responseOffset: file.size });
    return last!;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-browser-resume-"));
    const [startedStack, startedBrowser] = await Promise.allSettled([startStack({ web: true, env: { DOCFLOW_UPLOAD_CHUNK_BYTES: String(CHUNK) } }), launchChromium()]);
    // Keep whichever started (afterAll stops it) before reporting a failure.
    if (startedStack.status === "fulfilled") stack = startedStack.value;
    if (startedBrowser.status === "fulfilled") browser = startedBrowser.value;
    for (const result of [startedStack, startedBrowser]) if (result.status === "rejected") throw result.reason;
    tenant = Object.keys(stack!.tokens)[0]!;
  });

  afterAll(async () => {
    await Promise.allSettled(sessions.map((s) => s.context.close()));
    await browser?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "sends a file several chunks long as tus PATCHes of at most the advertised chunk size, back to back",
    debug("chunks", async () => {
      const file = await paddedPdf("chunked.pdf", 2 * 1024 * 1024);
      const { page, log } = await openApp();
      const tus = recordTus(page);
      await chooseFiles(page, [file.path]);
      const row = uploadRow(page, file.name);
      await row.getByText("Uploaded.").waitFor({ timeout: 30_000 });
      await tus.stop();
      const wire = describeTus(tus.exchanges);

      expectOneTusUpload(tus, file);
      // Nothing went the old way (one multipart POST).
      expect(
        log.requests.filter((r) => r.startsWith("POST /v1/documents")),
        wire,
      ).toEqual([]);
      // Full chunks from offset 0, each where the previous one ended, the last one the rest.
      const patches = tus.patches();
      expect(patches, wire).toHaveLength(Math.ceil(file.size / CHUNK));
      patches.forEach((patch, i) => {
        expect(patch, wire).toMatchObject({ uploadOffset: i * CHUNK, bodyBytes: Math.min(CHUNK, file.size - i * CHUNK), responseOffset: Math.min((i + 1) * CHUNK, file.size) });
      });
      expect(
        tus.exchanges.filter((e) => e.method === "HEAD" || e.failure !== null),
        wire,
      ).toEqual([]);
      const job = await expectCompletedJob(finalPatch(tus, file).jobId, file);
      expect(await row.getByRole("link", { name: "Follow its processing" }).getAttribute("href")).toBe(`/jobs/${job.id}`);
    }),
  );

  it(
    "rides out a dropped connection: waits while offline, then asks the server for its offset and goes on from there",
    debug("offline", async () => {
      const file = await paddedPdf("flaky-network.pdf", 2 * 1024 * 1024);
      const { page, context } = await openApp();
      await recordTexts(page, UPLOAD_ROWS);
      // A slow uplink: each PATCH waits 600 ms before it leaves the browser. (A DevTools throttle
      // would do too, but it and Playwright's offline emulation override each other.)
      await page.route("**/v1/uploads/*", async (route) => {
        if (route.request().method() === "PATCH") await sleep(600);
        await route.continue().catch(() => undefined); // offline by now: the request fails, as it should
      });
      const tus = recordTus(page);
      await chooseFiles(page, [file.path]);
      const row = uploadRow(page, file.name);

      // Two chunks in, and the third on its way: the network goes.
      await expect.poll(() => tus.patches().filter((e) => e.status === 204).length, { timeout: 20_000, interval: 20 }).toBeGreaterThanOrEqual(2);
      await expect.poll(() => tus.patches().filter((e) => e.status === null && e.failure === null).length, { timeout: 5_000, interval: 20 }).toBe(1);
      await context.setOffline(true);
      const offlineAt = tus.elapsed();
      await row.getByText("Connection lost. The upload goes on when you are back online.").waitFor({ timeout: 5_000 });
      await page.waitForTimeout(3_000);
      expect(await row.getByText("Upload failed.").count()).toBe(0);
      await context.setOffline(false);
      const onlineAt = tus.elapsed();

      // Then it finishes without anyone doing anything.
      await row.getByText("Uploaded.").waitFor({ timeout: 30_000 });
      await tus.stop();
      const wire = `offline ${offlineAt}-${onlineAt} ms\n${describeTus(tus.exchanges)}`;
      const uploadPath = expectOneTusUpload(tus, file);

      // The chunk in flight failed for want of a network ...
      const failed = tus.exchanges.filter((e) => e.failure !== null);
      expect(failed, wire).toHaveLength(1);
      expect(failed[0], wire).toMatchObject({ method: "PATCH", failure: "net::ERR_INTERNET_DISCONNECTED" });
      expect(failed[0]!.uploadOffset, wire).toBeGreaterThan(0);
      // ... and while offline nothing was tried (no retries burnt): the upload waited for the connection.
      expect(
        tus.exchanges.filter((e) => e.sentAt > offlineAt && e.sentAt < onlineAt),
        wire,
      ).toEqual([]);
      // Back online: a HEAD for the server's offset, then PATCHes from exactly there.
      const after = tus.exchanges.filter((e) => e.sentAt >= onlineAt);
      expect(after[0], wire).toMatchObject({ method: "HEAD", path: uploadPath, status: 200 });
      const resumedAt = after[0]!.responseOffset!;
      expect(resumedAt, wire).toBeGreaterThanOrEqual(2 * CHUNK);
      expect(after[1], wire).toMatchObject({ method: "PATCH", uploadOffset: resumedAt });
      // What a person saw: the connection lost, the upload going on from where it was, never a failure.
      const texts = (await recordedTexts(page)).filter((t) => t.includes(file.name));
      expect(
        texts.some((t) => t.includes("Connection lost.")),
        JSON.stringify(texts),
      ).toBe(true);
      expect(
        texts.some((t) => t.includes("resumed from")),
        JSON.stringify(texts),
      ).toBe(true);
      expect(
        texts.some((t) => t.includes("Upload failed")),
        JSON.stringify(texts),
      ).toBe(false);
      await expectCompletedJob(finalPatch(tus, file).jobId, file);
    }),
  );

  it(
    "retries failed requests with growing delays, and finds its job when the answer to the last chunk is lost",
    debug("backoff", async () => {
      const file = await paddedPdf("backoff.pdf", 1024 * 1024);
      const { page } = await openApp();
      const attempts: { at: number; method: string; failed: boolean }[] = [];
      let patches = 0;
      let toFail = 0;
      let lostJobId: string | null = null;
      let lostStatus = 0;
      await page.route("**/v1/uploads/*", async (route) => {
        const request = route.request();
        const offset = Number(request.headers()["upload-offset"] ?? -1);
        if (request.method() === "PATCH" && ++patches === 2) toFail = 3;
        if (toFail > 0) {
          // The connection breaks: the second chunk, then the two next tries.
          toFail -= 1;
          attempts.push({ at: Date.now(), method: request.method(), failed: true });
          return route.abort("connectionreset");
        }
        if (attempts.length > 0 && attempts.at(-1)!.failed) attempts.push({ at: Date.now(), method: request.method(), failed: false });
        if (request.method() === "PATCH" && offset + CHUNK >= file.size && lostJobId === null) {
          // The last chunk reaches the server, but its answer never reaches the browser.
          const res = await fetch(request.url(), {
            method: "PATCH",
            headers: { ...authorization(), "Tus-Resumable": "1.0.0", "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
            body: file.bytes.subarray(offset),
          });
          lostStatus = res.status;
          lostJobId = res.headers.get("docflow-job-id") ?? "";
          return route.abort("connectionreset");
        }
        return route.continue();
      });
      const tus = recordTus(page);
      await chooseFiles(page, [file.path]);
      const row = uploadRow(page, file.name);
      await row.getByText("Uploaded.").waitFor({ timeout: 30_000 });
      await tus.stop();
      const wire = `${JSON.stringify(attempts)}\n${describeTus(tus.exchanges)}`;
      expectOneTusUpload(tus, file);

      // Three failures, then a try that went through; after the failed PATCH, tus asks (HEAD) where the server is.
      expect(
        attempts.map((a) => `${a.method} ${a.failed ? "failed" : "ok"}`),
        wire,
      ).toEqual(["PATCH failed", "HEAD failed", "HEAD failed", "HEAD ok"]);
      const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
      // Retry delays 0, 1 s, 3 s: each wait longer than the one before.
      expect(gaps[0]!, wire).toBeLessThan(500);
      expect(gaps[1]!, wire).toBeGreaterThanOrEqual(900);
      expect(gaps[2]!, wire).toBeGreaterThanOrEqual(2_800);
      expect(gaps[2]! - gaps[1]!, wire).toBeGreaterThanOrEqual(1_500);
      expect(await row.getByText("Upload failed.").count()).toBe(0);

      // The last answer was lost: a HEAD found the upload complete, and its metadata named the job.
      expect(lostStatus, wire).toBe(200);
      const last = tus.exchanges.at(-1)!;
      expect(last, wire).toMatchObject({ method: "HEAD", status: 200, responseOffset: file.size });
      await expectCompletedJob(lostJobId, file);
      expect(await row.getByRole("link", { name: "Follow its processing" }).getAttribute("href")).toBe(`/jobs/${lostJobId}`);
    }),
  );

  it(
    "resumes after a page reload from the server's offset when the same file is picked again",
    debug("reload", async () => {
      const file = await paddedPdf("reloaded.pdf", 2 * 1024 * 1024);
      const { page, context } = await openApp();
      const throttle = await throttleUploads(context, page, 256 * 1024);
      try {
        const tus = recordTus(page);
        await chooseFiles(page, [file.path]);
        await expect.poll(() => tus.patches().filter((e) => e.status === 204).length, { timeout: 20_000, interval: 20 }).toBeGreaterThanOrEqual(2);
        const uploadPath = uploadPathOf(tus);

        await page.reload();
        const reloadedAt = tus.elapsed();
        await page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
        await throttle.set(undefined);
        // The server has part of it; the browser remembers where (tus-js-client's fingerprint in localStorage).
        const onServer = await serverOffset(uploadPath);
        expect(onServer).toBeGreaterThanOrEqual(2 * CHUNK);
        expect(onServer).toBeLessThan(file.size);
        const stored = async () => Object.values(await page.evaluate(() => ({ ...localStorage }))).filter((v) => v.includes(uploadPath));
        expect(await stored()).toHaveLength(1);

        await recordTexts(page, UPLOAD_ROWS);
        await chooseFiles(page, [file.path]);
        const row = uploadRow(page, file.name);
        await row.getByText("Uploaded.").waitFor({ timeout: 30_000 });
        await tus.stop();
        const wire = `reloaded at ${reloadedAt} ms\n${describeTus(tus.exchanges)}`;
        expectOneTusUpload(tus, file);

        // After the reload: no new upload, a HEAD, then PATCHes from the server's offset: only the rest was sent.
        const after = tus.exchanges.filter((e) => e.sentAt >= reloadedAt);
        expect(after[0], wire).toMatchObject({ method: "HEAD", path: uploadPath, status: 200, responseOffset: onServer });
        expect(after[1], wire).toMatchObject({ method: "PATCH", uploadOffset: onServer });
        const sent = after.filter((e) => e.method === "PATCH").reduce((sum, e) => sum + e.bodyBytes!, 0);
        expect(sent, wire).toBe(file.size - onServer);
        expect(sent, wire).toBeLessThan(file.size);
        // The page said so; and once done, the upload is forgotten (the same file again would be a new upload).
        const texts = (await recordedTexts(page)).filter((t) => t.includes(file.name));
        expect(
          texts.some((t) => t.includes("resumed from")),
          JSON.stringify(texts),
        ).toBe(true);
        expect(await row.textContent()).toContain("Resumed from");
        expect(await stored()).toEqual([]);
        await expectCompletedJob(finalPatch(tus, file).jobId, file);
      } finally {
        await throttle.release();
      }
    }),
  );

  it(
    "keeps an upload resumable when one leaves the upload screen mid-upload and comes back",
    debug("leave", async () => {
      // Something to look at on another screen.
      const other = await paddedPdf("other.pdf", 1024);
      const res = await fetch(`${stack!.baseUrl}/v1/documents?filename=${other.name}`, { method: "POST", headers: authorization(), body: other.bytes });
      expect(res.status).toBe(202);

      const file = await paddedPdf("left-behind.pdf", 2 * 1024 * 1024);
      const { page, context, log } = await openApp();
      const throttle = await throttleUploads(context, page, 256 * 1024);
      try {
        const tus = recordTus(page);
        await chooseFiles(page, [file.path]);
        await expect.poll(() => tus.patches().filter((e) => e.status === 204).length, { timeout: 20_000, interval: 20 }).toBeGreaterThanOrEqual(2);
        const uploadPath = uploadPathOf(tus);

        // Off to another document and back, in the same page.
        await page.getByRole("list", { name: "Documents, newest first" }).getByRole("link", { name: other.name, exact: true }).click();
        await page.getByRole("heading", { level: 1, name: other.name }).waitFor();
        const leftAt = tus.elapsed();
        await page.getByRole("banner").getByRole("link", { name: "docflow" }).click();
        await page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
        await throttle.set(undefined);
        // Leaving did not end the upload on the server (no DELETE), it only stopped sending.
        expect(
          log.requests.filter((r) => r.startsWith("DELETE ")),
          describeTus(tus.exchanges),
        ).toEqual([]);
        const onServer = await serverOffset(uploadPath);
        expect(onServer).toBeGreaterThan(0);

        await chooseFiles(page, [file.path]);
        const row = uploadRow(page, file.name);
        await row.getByText("Uploaded.").waitFor({ timeout: 30_000 });
        await tus.stop();
        const wire = `left at ${leftAt} ms\n${describeTus(tus.exchanges)}`;
        expectOneTusUpload(tus, file);
        const after = tus.exchanges.filter((e) => e.sentAt >= leftAt);
        expect(after[0], wire).toMatchObject({ method: "HEAD", path: uploadPath, status: 200, responseOffset: onServer });
        expect(after[1], wire).toMatchObject({ method: "PATCH", uploadOffset: onServer });
        expect(await row.textContent()).toContain("Resumed from");
        await expectCompletedJob(finalPatch(tus, file).jobId, file);
      } finally {
        await throttle.release();
      }
    }),
  );
  it(
    "waits out 429 Too Many Requests for as long as Retry-After says, and every upload still completes",
    debug("retry-after", async () => {
      // A replica that admits one upload request per tenant at a time (it answers 429, Retry-After: 5).
      const tight = await launchGateway(stack!, { DOCFLOW_MAX_UPLOADS_PER_TENANT: "1" });
      // The stack's logs come with a failure; this replica's warnings and errors too.
      onTestFailed(() =>
        console.error(
          `--- the 1-upload replica's warnings and errors\n${
            tight
              .logs()
              .split("\n")
              .filter((l) => /"level":[4-6]0/.test(l))
              .join("\n")
              .slice(-16_000) || "(none)"
          }`,
        ),
      );
      try {
        const session = await newSession(browser!, tenant, DESKTOP);
        sessions.push(session);
        await signIn(session, { ...stack!, baseUrl: tight.url });
        await session.page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
        const files = await Promise.all([1, 2, 3].map((n) => paddedPdf(`busy-${n}.pdf`, 3 * CHUNK)));
        const tus = recordTus(session.page);
        await chooseFiles(
          session.page,
          files.map((f) => f.path),
        );
        for (const file of files) await uploadRow(session.page, file.name).getByText("Uploaded.").waitFor({ timeout: 90_000 });
        await tus.stop();
        const wire = describeTus(tus.exchanges);

        const refused = tus.exchanges.filter((e) => e.status === 429);
        expect(refused.length, wire).toBeGreaterThan(0);
        // The request a 429 refused is sent again only after the 5 s the gateway asked for.
        for (const answer of refused) {
          const again = tus.exchanges.find((e) => e.sentAt > answer.endedAt! && e.path === answer.path && e.method === answer.method);
          expect(again, wire).toBeDefined();
          expect(again!.sentAt - answer.endedAt!, wire).toBeGreaterThanOrEqual(4_500);
        }
        // Each file's row links to its job, which holds the file's bytes.
        for (const file of files) {
          const href = await uploadRow(session.page, file.name).getByRole("link", { name: "Follow its processing" }).getAttribute("href");
          await expectCompletedJob(href?.replace(/^\/jobs\//, ""), file);
        }
      } finally {
        await tight.stop("SIGKILL");
      }
    }),
    120_000,
  );
});
