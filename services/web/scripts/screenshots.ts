/**
 * Screenshots of the built app, for people to look at (not a test).
 *
 *   npm run build -w services/web
 *   (cd services/web && npx vite preview --port 4173 --strictPort) &
 *   node services/web/scripts/screenshots.ts [http://127.0.0.1:4173]
 *
 * Drives the system Chromium (`CHROMIUM_PATH`, default /usr/bin/chromium) headless
 * at phone and desktop sizes. "offline" shots talk to whatever answers `/v1` (with
 * no gateway running: the error states); "demo" shots answer `/v1` from canned
 * data inside the browser, to show populated screens. Files go to
 * services/web/screenshots/ (git-ignored).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Page, type Route } from "playwright-core";

const base = process.argv[2] ?? process.env["WEB_URL"] ?? "http://127.0.0.1:4173";
const outDir = join(dirname(fileURLToPath(import.meta.url)), "..", "screenshots");
const executablePath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const viewports = [
  { name: "360", width: 360, height: 740 },
  { name: "1280", width: 1280, height: 800 },
] as const;

const JOB_IDS = ["01890a5d-ac96-7000-8000-00000000000a", "01890a5d-ac96-7000-8000-00000000000b", "01890a5d-ac96-7000-8000-00000000000c", "01890a5d-ac96-7000-8000-00000000000d"];

function ago(minutes: number): string {
  return new Date(Date.now() - minutes * 60_000).toISOString();
}

const demoJobs = [
  { id: JOB_IDS[0], status: "processing", filename: "Annual report 2025.pdf", contentType: "application/pdf", size: 18_874_368, pageCount: 120, pagesDone: 37, createdAt: ago(1), updatedAt: ago(0) },
  {
    id: JOB_IDS[1],
    status: "queued",
    filename: "Team offsite.pptx",
    contentType: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    size: 5_452_595,
    pageCount: null,
    pagesDone: 0,
    createdAt: ago(2),
    updatedAt: ago(2),
  },
  {
    id: JOB_IDS[2],
    status: "completed",
    filename: "Supplier contract (signed).pdf",
    contentType: "application/pdf",
    size: 734_003,
    pageCount: 14,
    pagesDone: 14,
    createdAt: ago(95),
    updatedAt: ago(94),
    completedAt: ago(94),
  },
  {
    id: JOB_IDS[3],
    status: "failed",
    filename: "scan-protected.pdf",
    contentType: "application/pdf",
    size: 2_097_152,
    pageCount: null,
    pagesDone: 0,
    createdAt: ago(60 * 26),
    updatedAt: ago(60 * 26),
    error: { code: "pdf_encrypted", message: "The PDF is protected by a password" },
  },
].map((job) => ({ sha256: "0".repeat(64), ...job }));

const lorem = [
  "Revenue grew in every region, led by the northern markets.",
  "Operating costs fell by four percent after the move to shared services.",
  "The board proposes a dividend of 1.20 EUR per share.",
  "Invoice terms were shortened to thirty days for all new suppliers.",
];

function thumbnailSvg(n: number): string {
  const lines = Array.from({ length: 9 }, (_, i) => `<rect x="22" y="${70 + i * 16}" width="${110 - ((i * 13 + n * 7) % 40)}" height="6" rx="3" fill="#c9ced8"/>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 155 219"><rect width="155" height="219" fill="#fff"/><rect x="22" y="28" width="80" height="12" rx="3" fill="#2b59c3"/><text x="22" y="58" font-family="sans-serif" font-size="10" fill="#667">Section ${n}</text>${lines}<text x="130" y="205" font-family="sans-serif" font-size="9" fill="#99a">${n}</text></svg>`;
}

/** Answers `/v1` from the demo data (only in the "demo" shots). */
async function demoApi(route: Route): Promise<void> {
  const url = new URL(route.request().url());
  const path = url.pathname;
  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    route.fulfill({ status, contentType: status >= 400 ? "application/problem+json" : "application/json", headers, body: JSON.stringify(body) });
  if (path === "/v1/config") return json({ maxUploadBytes: 512 * 1024 * 1024, uploadTransport: "tus", uploadEndpoint: "/v1/uploads", tusChunkBytes: 8 * 1024 * 1024 });
  if (path === "/v1/realtime/credentials") return json({ type: "about:blank", title: "Not implemented", status: 501, code: "not_implemented" }, 501);
  if (path === "/v1/jobs") return json({ items: demoJobs, nextCursor: null });
  if (path.startsWith("/v1/uploads")) return; // the upload stays "in flight"
  const jobMatch = /^\/v1\/jobs\/([^/]+)(.*)$/.exec(path);
  const job = demoJobs.find((candidate) => candidate.id === jobMatch?.[1]);
  if (!jobMatch || !job) return json({ title: "Not found", status: 404, code: "not_found" }, 404);
  const rest = jobMatch[2] ?? "";
  if (rest === "") return json(job, 200, { ETag: '"12"' });
  const pageMatch = /^\/pages\/(\d+)(\/thumbnail|\/preview)?$/.exec(rest);
  if (pageMatch) {
    const n = Number(pageMatch[1]);
    const ready = n <= job.pagesDone && (job.status === "completed" || n % 5 !== 4);
    if (!ready) return json({ title: "This page has not been processed yet", status: 404, code: "page_not_ready" }, 404);
    if (pageMatch[2]) return route.fulfill({ status: 200, contentType: "image/svg+xml", body: thumbnailSvg(n) });
    return json({
      n,
      width: 1240,
      height: 1754,
      text: `Section ${n}\n${lorem[n % lorem.length]}\n${lorem[(n + 1) % lorem.length]}`,
      thumbnailUrl: `/v1/jobs/${job.id}/pages/${n}/thumbnail`,
      previewUrl: `/v1/jobs/${job.id}/pages/${n}/preview`,
    });
  }
  if (rest === "/result") return json({ title: "The job has not finished processing yet", status: 409, code: "job_not_ready" }, 409);
  return json({ title: "No such endpoint", status: 404, code: "route_not_found" }, 404);
}

async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  await page.waitForLoadState("networkidle", { timeout: 3_000 }).catch(() => undefined);
  await page.waitForTimeout(400);
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage });
  console.log(path);
}

mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "docflow-shots-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  colorScheme: "light",
});

try {
  for (const viewport of viewports) {
    const size = { width: viewport.width, height: viewport.height };

    // Sign-in screen (nobody signed in yet).
    let page = await context.newPage();
    await page.setViewportSize(size);
    await page.goto(`${base}/sign-in`);
    await shot(page, `sign-in-${viewport.name}`);
    await page.close();

    // Jobs screen with the link `npm start` prints; no gateway is answering.
    page = await context.newPage();
    await page.setViewportSize(size);
    await page.goto(`${base}/#token=screenshot-token`);
    await page.waitForSelector("h1");
    await shot(page, `jobs-offline-${viewport.name}`);
    await page.evaluate(() => sessionStorage.clear());
    await page.close();

    // Populated screens from canned data.
    page = await context.newPage();
    await page.setViewportSize(size);
    await page.route("**/v1/**", demoApi);
    await page.goto(`${base}/#token=screenshot-token`);
    await page.waitForSelector("ol li");
    await shot(page, `jobs-demo-${viewport.name}`);
    await page.setInputFiles('[data-testid="file-input"]', [
      { name: "Board minutes.pdf", mimeType: "application/pdf", buffer: Buffer.alloc(300_000, 32) },
      { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") },
    ]);
    await page.waitForSelector(".uploads li");
    await shot(page, `jobs-uploading-${viewport.name}`);
    await page.goto(`${base}/jobs/${JOB_IDS[0]}`);
    await page.waitForSelector("ol.grid li");
    await page.waitForTimeout(2_500);
    await shot(page, `job-demo-${viewport.name}`, false);
    await page.fill('input[type="search"]', "dividend");
    await shot(page, `job-search-${viewport.name}`);
    await page.fill('input[type="search"]', "");
    await page.click('[data-page="2"] button');
    await page.waitForSelector("dialog[open] img");
    await shot(page, `page-preview-${viewport.name}`, false);
    await page.keyboard.press("Escape");
    await page.goto(`${base}/jobs/${JOB_IDS[3]}`);
    await page.waitForSelector("#failure-title");
    await shot(page, `job-failed-${viewport.name}`);
    await page.evaluate(() => sessionStorage.clear());
    await page.close();
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
