/**
 * The web image's static server (services/web/server.ts), run as the image runs it
 * (`node server.ts`): SPA fallback, caching, probes, graceful shutdown, security headers; then the
 * built app in real Chromium under that CSP, with no violation.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./support.ts";

const SERVER = join(ROOT, "services", "web", "server.ts");

interface Running {
  child: ChildProcess;
  base: string;
  exited: Promise<number | null>;
  output: string[];
}

/** Starts `node services/web/server.ts` on a free port and waits for its "listening" line. */
async function startServer(env: Record<string, string>): Promise<Running> {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env["PATH"] ?? "", DOCFLOW_WEB_HOST: "127.0.0.1", DOCFLOW_WEB_PORT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`web server did not start:\n${output.join("")}`)), 10_000);
    lines.on("line", (line) => {
      output.push(line);
      const entry = JSON.parse(line) as { msg: string; port?: number };
      if (entry.port !== undefined) {
        clearTimeout(timer);
        resolve(entry.port);
      }
    });
    void exited.then((code) => reject(new Error(`web server exited (${code}):\n${output.join("\n")}`)));
  });
  return { child, base: `http://127.0.0.1:${port}`, exited, output };
}

async function stop(server: Running | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null) return;
  server.child.kill("SIGKILL");
  await server.exited;
}

const CSP_WITH_REALTIME = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self' wss://nats.example.com; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

describe("services/web/server.ts", () => {
  let dist: string;
  let server: Running | undefined;

  beforeAll(async () => {
    dist = await mkdtemp(join(tmpdir(), "docflow-web-dist-"));
    await mkdir(join(dist, "assets"));
    await writeFile(join(dist, "index.html"), '<!doctype html><title>docflow</title><script type="module" src="/assets/app-abc123.js"></script>');
    await writeFile(join(dist, "assets", "app-abc123.js"), "console.log('app');");
    await writeFile(join(dist, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
    server = await startServer({ DOCFLOW_WEB_DIST_DIR: dist, DOCFLOW_WEB_REALTIME_ORIGIN: "wss://nats.example.com/some/path", DOCFLOW_WEB_SHUTDOWN_DELAY_MS: "300" });
  });
  afterAll(async () => {
    await stop(server);
    await rm(dist, { recursive: true, force: true });
  });

  const get = (path: string, init?: RequestInit) => fetch(`${server?.base}${path}`, init);

  it("answers index.html for the app's routes, no-cache, with the strict security headers", async () => {
    for (const path of ["/", "/jobs/0190a000-0000-7000-8000-000000000001", "/sign-in"]) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(await res.text()).toContain("<title>docflow</title>");
      expect(res.headers.get("content-security-policy")).toBe(CSP_WITH_REALTIME);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("permissions-policy")).toContain("camera=()");
    }
  });

  it("caches hashed assets for a year and answers 304 to a matching ETag", async () => {
    const res = await get("/assets/app-abc123.js");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const etag = res.headers.get("etag") ?? "";
    expect((await get("/assets/app-abc123.js", { headers: { "If-None-Match": etag } })).status).toBe(304);
    expect((await get("/favicon.svg")).headers.get("content-type")).toBe("image/svg+xml");
  });

  it("answers 404, never the app, for missing files, the API and paths outside dist", async () => {
    for (const path of ["/assets/app-old999.js", "/v1/jobs", "/v1", "/missing.css", "/%2e%2e/server.ts", "/..%2fpackage.json"]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(await res.text()).not.toContain("docflow</title>");
    }
    expect((await get("/", { method: "POST" })).status).toBe(405);
  });

  it("has probes, and on SIGTERM fails readiness first, then stops", async () => {
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/readyz")).status).toBe(200);
    server?.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    expect((await get("/readyz")).status).toBe(503);
    expect((await get("/healthz")).status).toBe(200);
    expect(await server?.exited).toBe(0);
  });

  it("refuses bad configuration, naming the variable", () => {
    const result = spawnSync(process.execPath, [SERVER], { env: { PATH: process.env["PATH"] ?? "", DOCFLOW_WEB_DIST_DIR: dist, DOCFLOW_WEB_REALTIME_ORIGIN: "https://not-a-websocket", DOCFLOW_WEB_PORT: "http" }, encoding: "utf8", timeout: 10_000 });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain("DOCFLOW_WEB_REALTIME_ORIGIN");
    expect(result.stdout).toContain("DOCFLOW_WEB_PORT");
  });
});

/**
 * The built app (services/web/dist; built when missing) in Chromium, with the API mocked at the
 * browser: every view renders and the page reports no CSP violation, except zod's capability probe
 * (`try { Function("") } catch`), which only tells zod to validate without generated code.
 */
describe("the built web app under the CSP, in Chromium", () => {
  const distDir = join(ROOT, "services", "web", "dist");
  const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
  let browser: Browser;
  let withRealtime: Running;
  let withoutRealtime: Running;

  beforeAll(async () => {
    if (!existsSync(join(distDir, "index.html"))) {
      const build = spawnSync("npm", ["run", "build", "-w", "services/web"], { cwd: ROOT, encoding: "utf8" });
      if (build.status !== 0) throw new Error(`npm run build -w services/web failed:\n${build.stdout}\n${build.stderr}`);
    }
    if (!existsSync(chromiumPath)) throw new Error(`Chromium is needed at ${chromiumPath} (CHROMIUM_PATH): scripts/bootstrap.sh installs it`);
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"], timeout: 30_000 });
    withRealtime = await startServer({ DOCFLOW_WEB_DIST_DIR: distDir, DOCFLOW_WEB_REALTIME_ORIGIN: "wss://nats.example.com" });
    withoutRealtime = await startServer({ DOCFLOW_WEB_DIST_DIR: distDir });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await stop(withRealtime);
    await stop(withoutRealtime);
  });

  const JOB_ID = "0190a000-0000-7000-8000-000000000001";
  const now = new Date().toISOString();
  const job = { id: JOB_ID, status: "processing", filename: "report.pdf", contentType: "application/pdf", size: 123456, sha256: "ab".repeat(32), pageCount: 3, pagesDone: 1, createdAt: now, updatedAt: now };
  const problem = (status: number, code: string) => ({ status, contentType: "application/problem+json", body: JSON.stringify({ type: "about:blank", title: code, status, code }) });

  interface Violation {
    directive: string;
    blocked: string;
    source: string;
    line: number;
    column: number;
  }

  async function openApp(): Promise<{ page: Page; violations: Violation[]; errors: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const violations: Violation[] = [];
    const errors: string[] = [];
    await page.exposeFunction("__cspViolation", (v: Violation) => violations.push(v));
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        (window as unknown as { __cspViolation: (v: unknown) => void }).__cspViolation({ directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, column: e.columnNumber });
      });
    });
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
    });
    await page.route("**/v1/**", async (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === "/v1/config") return route.fulfill({ json: { uploadTransport: "tus", tusChunkBytes: 5242880 } });
      if (path === "/v1/jobs") return route.fulfill({ json: { items: [job], nextCursor: null } });
      if (path === `/v1/jobs/${JOB_ID}`) return route.fulfill({ json: job, headers: { ETag: '"3"' } });
      if (path === `/v1/jobs/${JOB_ID}/result`) return route.fulfill(problem(409, "job_not_ready"));
      if (path === `/v1/jobs/${JOB_ID}/pages/1`) return route.fulfill({ json: { n: 1, width: 600, height: 800, text: "Hello", thumbnailUrl: "", previewUrl: "" } });
      if (/\/pages\/\d+\/(thumbnail|preview)$/.test(path)) return route.fulfill({ contentType: "image/svg+xml", body: "<svg xmlns='http://www.w3.org/2000/svg' width='6' height='8'><rect width='6' height='8'/></svg>" });
      if (path.startsWith(`/v1/jobs/${JOB_ID}/pages/`)) return route.fulfill(problem(404, "page_not_ready"));
      if (path === "/v1/realtime/credentials") {
        return route.fulfill({ json: { url: "wss://nats.example.com", jwt: "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig", subject: "docflow.events.acme.>", expiresAt: new Date(Date.now() + 900_000).toISOString() } });
      }
      return route.fulfill(problem(404, "not_found"));
    });
    return { page, violations, errors };
  }

  /** zod's `allowsEval` probe: an eval violation at `try{return Function(``),!0}catch`. */
  async function isZodEvalProbe(base: string, v: Violation): Promise<boolean> {
    if (v.blocked !== "eval" || !v.source.startsWith(base)) return false;
    const source = await (await fetch(v.source)).text();
    const line = source.split("\n")[v.line - 1] ?? "";
    const around = line.slice(Math.max(0, v.column - 60), v.column + 40);
    return /try\s*\{\s*return\s*(new\s+)?Function\(\s*(``|""|'')\s*\)\s*,\s*!0\s*\}\s*catch/.test(around);
  }

  async function visitAll(base: string): Promise<{ violations: Violation[]; errors: string[]; texts: string[] }> {
    const { page, violations, errors } = await openApp();
    const texts: string[] = [];
    for (const path of ["/sign-in", "/#token=test-token", `/jobs/${JOB_ID}`, "/no/such/page"]) {
      await page.goto(`${base}${path}`);
      await page.waitForLoadState("networkidle");
      texts.push(await page.locator("body").innerText());
    }
    const unexpected: Violation[] = [];
    for (const v of violations) if (!(await isZodEvalProbe(base, v))) unexpected.push(v);
    await page.context().close();
    return { violations: unexpected, errors: errors.filter((e) => !/Refused to evaluate a string as JavaScript/.test(e)), texts };
  }

  it("renders every view with no CSP violation when the realtime origin is configured", async () => {
    const { violations, errors, texts } = await visitAll(withRealtime.base);
    expect(texts[0]).toMatch(/Sign in/);
    expect(texts[1]).toContain("report.pdf");
    expect(texts[2]).toMatch(/Page 1/);
    expect(texts[3]).toMatch(/not found/i);
    expect(violations).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("reports the violation when the NATS WebSocket origin is missing from connect-src (the check can fail)", async () => {
    const { violations } = await visitAll(withoutRealtime.base);
    expect(violations.some((v) => v.directive === "connect-src" && v.blocked.startsWith("wss://nats.example.com"))).toBe(true);
  });
});
