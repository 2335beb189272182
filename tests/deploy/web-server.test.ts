/**
 * The web image's server: nginx configured by services/web/nginx/, run here as the image runs it
 * (its command, docflow-web.sh, renders the templates and execs Debian's nginx, the package the
 * image installs), as a process of UID 10001 when the tests run as root, on a free port: SPA
 * fallback, caching, probes, the preStop drain and nginx's graceful stop on SIGQUIT, security
 * headers, the ingress' problem document, timeouts, refused configuration, and the chart's web
 * Deployment (its environment and preStop hook) driving it; then the built app in real Chromium
 * under that CSP, with no violation.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERRORS } from "@docflow/contracts";
import { CHART, ROOT, find, mergedValues, render } from "./support.ts";

const NGINX_DIR = join(ROOT, "services", "web", "nginx");
const SCRIPT = join(NGINX_DIR, "docflow-web.sh");
/** Where the Dockerfile puts services/web/nginx/ (its CMD and the chart's preStop run the script there). */
const IMAGE_SCRIPT = "/app/nginx/docflow-web.sh";
/** The image's PATH (Debian's nginx is /usr/sbin/nginx). */
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The image's user; the tests run as root on CI machines, and nginx then runs as this user, as in the image. */
const IMAGE_USER = process.getuid?.() === 0 ? { uid: 10001, gid: 10001 } : {};

interface Running {
  child: ChildProcess;
  base: string;
  port: number;
  /** The pod's /tmp (an emptyDir in the chart), and docflow-web.sh's runtime directory in it. */
  tmp: string;
  runtimeDir: string;
  exited: Promise<number | null>;
  output: string[];
}

/** Every server started: whatever a failed test left running is stopped after the file. */
const started: Running[] = [];
afterAll(async () => {
  for (const server of started) await stop(server);
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A directory the image's user may write (the pod's /tmp emptyDir). */
async function writableDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (IMAGE_USER.uid !== undefined) chownSync(dir, IMAGE_USER.uid, IMAGE_USER.gid);
  return dir;
}

function requireNginx(): void {
  if (spawnSync("nginx", ["-v"], { env: { PATH } }).status !== 0) {
    throw new Error("nginx is needed on this machine (Debian: apt-get install nginx, the package the web image installs)");
  }
}

/**
 * Starts services/web/nginx/docflow-web.sh (the image's command) on a free port of 127.0.0.1 and
 * waits until /healthz answers. `tmp`: the pod's /tmp, a new one unless given (a restart).
 */
async function startWeb(env: Record<string, string>, tmp?: string): Promise<Running> {
  const port = await freePort();
  const dir = tmp ?? (await writableDir("docflow-web-tmp-"));
  const child = spawn(SCRIPT, [], {
    env: { PATH, ...env, DOCFLOW_WEB_HOST: "127.0.0.1", DOCFLOW_WEB_PORT: String(port), DOCFLOW_WEB_RUNTIME_DIR: join(dir, "web") },
    stdio: ["ignore", "pipe", "pipe"],
    ...IMAGE_USER,
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.stdout?.on("data", (d: Buffer) => output.push(d.toString()));
  child.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
  const running: Running = { child, base: `http://127.0.0.1:${port}`, port, tmp: dir, runtimeDir: join(dir, "web"), exited, output };
  started.push(running);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`web exited (${child.exitCode}):\n${output.join("")}`);
    const res = await fetch(`${running.base}/healthz`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`web did not start:\n${output.join("")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return running;
}

/** nginx's fast stop (SIGTERM); never SIGKILL, which would leave its worker serving the port. */
async function stop(server: Running | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null) return;
  server.child.kill("SIGTERM");
  await server.exited;
}

/** `docflow-web.sh drain READY DRAIN`, the chart's preStop hook, against a running server. */
function drain(server: Running, ready: number, delay: number): Promise<number | null> {
  const child = spawn(SCRIPT, ["drain", String(ready), String(delay)], { env: { PATH, DOCFLOW_WEB_RUNTIME_DIR: server.runtimeDir }, stdio: "ignore", ...IMAGE_USER });
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** A raw HTTP/1.1 connection: what was received, and when the server closed it. */
function rawConnection(port: number): { socket: Socket; received: () => string; closed: Promise<number> } {
  const socket = connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (d: Buffer) => chunks.push(d));
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
  return { socket, received: () => Buffer.concat(chunks).toString("latin1"), closed };
}

const CSP_WITH_REALTIME =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self' wss://nats.example.com; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

function expectSecurityHeaders(res: Response, csp = CSP_WITH_REALTIME): void {
  const what = `${res.status} ${res.url}`;
  expect(res.headers.get("content-security-policy"), what).toBe(csp);
  expect(res.headers.get("x-content-type-options"), what).toBe("nosniff");
  expect(res.headers.get("referrer-policy"), what).toBe("no-referrer");
  expect(res.headers.get("permissions-policy"), what).toBe("camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), hid=(), browsing-topics=()");
  expect(res.headers.get("x-frame-options"), what).toBe("DENY");
  expect(res.headers.get("cross-origin-opener-policy"), what).toBe("same-origin");
  expect(res.headers.get("cross-origin-resource-policy"), what).toBe("same-origin");
}

/** A built app in miniature, readable by the image's user. */
async function makeDist(files: Record<string, string | Buffer>): Promise<string> {
  const dist = await mkdtemp(join(tmpdir(), "docflow-web-dist-"));
  chmodSync(dist, 0o755);
  for (const [path, body] of Object.entries(files)) {
    await mkdir(join(dist, path, ".."), { recursive: true });
    await writeFile(join(dist, path), body);
  }
  return dist;
}

describe("services/web/nginx", () => {
  let dist: string;
  let server: Running | undefined;
  const scratch: string[] = [];

  beforeAll(async () => {
    requireNginx();
    dist = await makeDist({
      "index.html": '<!doctype html><title>docflow</title><script type="module" src="/assets/app-abc123.js"></script>',
      "assets/app-abc123.js": "console.log('app');",
      // Larger than the socket buffers: a download of it stays in flight while the client reads slowly.
      "assets/big-abc123.bin": Buffer.alloc(48 * 1024 * 1024, 7),
      "favicon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
    });
    server = await startWeb({ DOCFLOW_WEB_DIST_DIR: dist, DOCFLOW_WEB_REALTIME_ORIGIN: "wss://nats.example.com/some/path" });
    scratch.push(server.tmp);
  });
  afterAll(async () => {
    await stop(server);
    await rm(dist, { recursive: true, force: true });
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  });

  const get = (path: string, init?: RequestInit) => fetch(`${server?.base}${path}`, init);

  it("answers index.html for the app's routes, no-cache, with the strict security headers", async () => {
    for (const path of ["/", "/index.html", "/jobs/0190a000-0000-7000-8000-000000000001", "/sign-in", "/assets"]) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(await res.text()).toContain("<title>docflow</title>");
      expectSecurityHeaders(res);
    }
  });

  it("caches hashed assets for a year and answers 304 to a matching ETag; other files for an hour", async () => {
    const res = await get("/assets/app-abc123.js");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(await res.text()).toBe("console.log('app');");
    const etag = res.headers.get("etag") ?? "";
    expect(etag).not.toBe("");
    const revalidated = await get("/assets/app-abc123.js", { headers: { "If-None-Match": etag } });
    expect(revalidated.status).toBe(304);
    expectSecurityHeaders(revalidated);
    const icon = await get("/favicon.svg");
    expect(icon.headers.get("content-type")).toBe("image/svg+xml");
    expect(icon.headers.get("cache-control")).toBe("public, max-age=3600");
    // As the Node server did: no compression (the assets are small and the edge may compress).
    expect((await get("/assets/app-abc123.js", { headers: { "Accept-Encoding": "gzip" } })).headers.get("content-encoding")).toBeNull();
  });

  it("answers 404, never the app, for missing files and the API; 400 for a path above dist; 405 for other methods", async () => {
    for (const path of ["/assets/app-old999.js", "/assets/", "/v1/jobs", "/v1", "/missing.css", "/%2e%2e/server.ts"]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-type"), path).toBe("text/plain; charset=utf-8");
      expect(res.headers.get("cache-control"), path).toBe("no-store");
      expect(await res.text(), path).toBe("not found\n");
      expectSecurityHeaders(res);
    }
    // nginx refuses a path that climbs above the root, and a bad %-escape, before any lookup.
    for (const path of ["/..%2fpackage.json", "/assets/..%2f..%2fnginx/docflow-web.sh", "/%zz"]) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      expect(await res.text(), path).toBe("bad request\n");
      expectSecurityHeaders(res);
    }
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
      const res = await get("/", { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
      expectSecurityHeaders(res);
    }
    const head = await get("/jobs/x", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("answers /edge/unavailable with the API's problem document for the ingress, byte for byte as before, and Retry-After", async () => {
    const res = await get("/edge/unavailable");
    // 200 here: the Traefik errors middleware keeps the 503 of the failed request.
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.headers.get("retry-after")).toBe("5");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expectSecurityHeaders(res);
    const expected = `${JSON.stringify({
      type: "urn:docflow:problem:service_unavailable",
      title: ERRORS.service_unavailable.title,
      status: ERRORS.service_unavailable.status,
      detail: "No API server is ready to take the request (a dependency may be down, or an upgrade under way). Nothing was stored; retry in 5 s.",
      code: "service_unavailable",
    })}\n`;
    expect(await res.text()).toBe(expected);
  });

  it("renders the timeouts: keep-alive 65 s and request header 66 s by default, shutdown 10 s", async () => {
    const conf = await readFile(join(server?.runtimeDir ?? "", "nginx.conf"), "utf8");
    expect(conf).toMatch(/^\s*keepalive_timeout 65000ms;$/m);
    expect(conf).toMatch(/^\s*client_header_timeout 66000ms;$/m);
    expect(conf).toMatch(/^\s*worker_shutdown_timeout 10000ms;$/m);
    expect(conf).not.toContain("${");
  });

  it("closes an idle keep-alive connection after DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS, a silent one after DOCFLOW_WEB_HEADERS_TIMEOUT_MS", async () => {
    const quick = await startWeb({ DOCFLOW_WEB_DIST_DIR: dist, DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS: "800", DOCFLOW_WEB_HEADERS_TIMEOUT_MS: "1600" });
    scratch.push(quick.tmp);
    try {
      const idle = rawConnection(quick.port);
      idle.socket.write("GET /healthz HTTP/1.1\r\nHost: web\r\n\r\n");
      while (!idle.received().endsWith("ok\n")) await new Promise((r) => setTimeout(r, 10));
      const answered = Date.now();
      expect(idle.received()).toMatch(/^HTTP\/1\.1 200 /);
      expect((await idle.closed) - answered).toBeGreaterThanOrEqual(700);
      expect(Date.now() - answered).toBeLessThan(1500);

      const silent = rawConnection(quick.port);
      const opened = Date.now();
      await new Promise((r) => silent.socket.once("connect", r));
      expect((await silent.closed) - opened).toBeGreaterThanOrEqual(1500);
      expect(Date.now() - opened).toBeLessThan(2600);
      expect(silent.received()).toBe("");
    } finally {
      await stop(quick);
    }
  });

  it("drains: the preStop hook keeps it ready, then fails readiness while it still serves; SIGQUIT then stops it; a restart is ready", async () => {
    const pod = await startWeb({ DOCFLOW_WEB_DIST_DIR: dist });
    scratch.push(pod.tmp);
    const hook = drain(pod, 1, 1);
    await new Promise((r) => setTimeout(r, 400));
    expect((await fetch(`${pod.base}/readyz`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1000));
    const draining = await fetch(`${pod.base}/readyz`);
    expect(draining.status).toBe(503);
    expect(await draining.text()).toBe("draining\n");
    expect((await fetch(`${pod.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${pod.base}/jobs/x`)).status).toBe(200);
    expect(await hook).toBe(0);

    // Then the kubelet sends the image's STOPSIGNAL. A download in flight completes; new
    // connections are refused; nginx exits 0 once it is done.
    const download = rawConnection(pod.port);
    download.socket.write("GET /assets/big-abc123.bin HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n");
    await new Promise((r) => download.socket.once("data", r));
    download.socket.pause();
    pod.child.kill("SIGQUIT");
    await new Promise((r) => setTimeout(r, 300));
    await expect(fetch(`${pod.base}/healthz`)).rejects.toThrow();
    expect(pod.child.exitCode).toBeNull();
    download.socket.resume();
    await download.closed;
    const [head = "", body = ""] = download.received().split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(body.length).toBe(48 * 1024 * 1024);
    expect(await pod.exited).toBe(0);

    // A container restarted in the same pod finds the draining mark in its /tmp: it is ready again.
    expect(existsSync(join(pod.runtimeDir, "draining"))).toBe(true);
    const restarted = await startWeb({ DOCFLOW_WEB_DIST_DIR: dist }, pod.tmp);
    try {
      expect((await fetch(`${restarted.base}/readyz`)).status).toBe(200);
    } finally {
      await stop(restarted);
    }
  });

  it("gives requests in flight DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS after SIGQUIT, then closes them", async () => {
    const pod = await startWeb({ DOCFLOW_WEB_DIST_DIR: dist, DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS: "700" });
    scratch.push(pod.tmp);
    const download = rawConnection(pod.port);
    download.socket.write("GET /assets/big-abc123.bin HTTP/1.1\r\nHost: web\r\n\r\n");
    await new Promise((r) => download.socket.once("data", r));
    download.socket.pause();
    const signalled = Date.now();
    pod.child.kill("SIGQUIT");
    expect(await pod.exited).toBe(0);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(600);
    expect(Date.now() - signalled).toBeLessThan(5000);
    download.socket.destroy();
  });

  it("refuses bad configuration, naming every invalid variable, and lets nothing but an origin into the CSP", () => {
    const result = spawnSync(SCRIPT, [], {
      env: {
        PATH,
        DOCFLOW_WEB_DIST_DIR: dist,
        DOCFLOW_WEB_REALTIME_ORIGIN: "https://not-a-websocket",
        DOCFLOW_WEB_API_ORIGIN: "https://api.example.com; script-src *",
        DOCFLOW_WEB_PORT: "http",
        DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS: "0",
      },
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(result.status).toBe(1);
    const entry = JSON.parse(result.stdout) as { level: string; service: string; msg: string; err: string };
    expect(entry).toMatchObject({ level: "error", service: "web", msg: "web failed to start" });
    for (const name of ["DOCFLOW_WEB_REALTIME_ORIGIN", "DOCFLOW_WEB_API_ORIGIN", "DOCFLOW_WEB_PORT", "DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS"]) expect(entry.err).toContain(name);
    const missing = spawnSync(SCRIPT, [], { env: { PATH, DOCFLOW_WEB_DIST_DIR: join(dist, "nowhere") }, encoding: "utf8", timeout: 10_000 });
    expect(missing.status).toBe(1);
    expect(missing.stdout).toContain("has no index.html");
  });

  it("adds only the origins of DOCFLOW_WEB_API_ORIGIN and DOCFLOW_WEB_REALTIME_ORIGIN to connect-src", async () => {
    const other = await startWeb({
      DOCFLOW_WEB_DIST_DIR: dist,
      DOCFLOW_WEB_API_ORIGIN: "HTTPS://API.example.com:443/v1?x=1",
      DOCFLOW_WEB_REALTIME_ORIGIN: "wss://user:secret@nats.example.com:8443/nats",
    });
    scratch.push(other.tmp);
    try {
      const res = await fetch(`${other.base}/`);
      expectSecurityHeaders(res, CSP_WITH_REALTIME.replace("connect-src 'self' wss://nats.example.com", "connect-src 'self' https://api.example.com wss://nats.example.com:8443"));
    } finally {
      await stop(other);
    }
  });

  it("runs with the chart's web Deployment: its environment, the image's command, and the preStop drain", async () => {
    // The production example: the API and NATS' WebSocket on origins of their own.
    const valuesFiles = [join(CHART, "ci", "production-values.yaml")];
    const values = mergedValues(valuesFiles);
    expect(values.web.apiOrigin).toBe("https://api.example.com");
    expect(values.realtime.wsUrl).toBe("wss://realtime.example.com:443/");
    const deployment = find(render({ valuesFiles }), "Deployment", "docflow-web");
    const container = deployment.spec.template.spec.containers[0];
    // The image's command (the Dockerfile's CMD) runs; the preStop hook is the script's drain.
    expect(container.command).toBeUndefined();
    expect(container.args).toBeUndefined();
    const cmd = readFileSync(join(ROOT, "services", "web", "Dockerfile"), "utf8").match(/^CMD (.*)$/m)?.[1] ?? "null";
    expect(JSON.parse(cmd)).toEqual([IMAGE_SCRIPT]);
    expect(container.lifecycle.preStop.exec.command).toEqual([IMAGE_SCRIPT, "drain", String(values.web.preStopSleepSeconds), String(values.web.shutdownDelaySeconds)]);
    // Every variable the chart sets is one the script reads.
    const env = Object.fromEntries((container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    const script = readFileSync(SCRIPT, "utf8");
    for (const name of Object.keys(env)) expect(script, name).toContain(name);
    const pod = await startWeb({ ...env, DOCFLOW_WEB_DIST_DIR: dist });
    scratch.push(pod.tmp);
    try {
      const res = await fetch(`${pod.base}/`);
      expect(res.status).toBe(200);
      expectSecurityHeaders(res, CSP_WITH_REALTIME.replace("connect-src 'self' wss://nats.example.com", "connect-src 'self' https://api.example.com wss://realtime.example.com"));
      const conf = await readFile(join(pod.runtimeDir, "nginx.conf"), "utf8");
      expect(conf).toMatch(new RegExp(`^\\s*keepalive_timeout ${values.gateway.keepAliveTimeoutSeconds * 1000}ms;$`, "m"));
      expect(conf).toMatch(new RegExp(`^\\s*client_header_timeout ${values.gateway.headersTimeoutSeconds * 1000}ms;$`, "m"));
      expect(conf).toMatch(new RegExp(`^\\s*worker_shutdown_timeout ${values.web.shutdownTimeoutSeconds * 1000}ms;$`, "m"));
    } finally {
      await stop(pod);
    }
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
    requireNginx();
    if (!existsSync(join(distDir, "index.html"))) {
      const build = spawnSync("npm", ["run", "build", "-w", "services/web"], { cwd: ROOT, encoding: "utf8" });
      if (build.status !== 0) throw new Error(`npm run build -w services/web failed:\n${build.stdout}\n${build.stderr}`);
    }
    if (!existsSync(chromiumPath)) throw new Error(`Chromium is needed at ${chromiumPath} (CHROMIUM_PATH): scripts/bootstrap.sh installs it`);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      timeout: 30_000,
    });
    withRealtime = await startWeb({ DOCFLOW_WEB_DIST_DIR: distDir, DOCFLOW_WEB_REALTIME_ORIGIN: "wss://nats.example.com" });
    withoutRealtime = await startWeb({ DOCFLOW_WEB_DIST_DIR: distDir });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await stop(withRealtime);
    await stop(withoutRealtime);
    for (const server of [withRealtime, withoutRealtime]) if (server) await rm(server.tmp, { recursive: true, force: true });
  });

  const JOB_ID = "0190a000-0000-7000-8000-000000000001";
  const now = new Date().toISOString();
  const job = {
    id: JOB_ID,
    status: "processing",
    filename: "report.pdf",
    contentType: "application/pdf",
    size: 123456,
    sha256: "ab".repeat(32),
    pageCount: 3,
    pagesDone: 1,
    createdAt: now,
    updatedAt: now,
  };
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
        (window as unknown as { __cspViolation: (v: unknown) => void }).__cspViolation({
          directive: e.effectiveDirective,
          blocked: e.blockedURI,
          source: e.sourceFile,
          line: e.lineNumber,
          column: e.columnNumber,
        });
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
      if (/\/pages\/\d+\/(thumbnail|preview)$/.test(path))
        return route.fulfill({ contentType: "image/svg+xml", body: "<svg xmlns='http://www.w3.org/2000/svg' width='6' height='8'><rect width='6' height='8'/></svg>" });
      if (path.startsWith(`/v1/jobs/${JOB_ID}/pages/`)) return route.fulfill(problem(404, "page_not_ready"));
      if (path === "/v1/realtime/credentials") {
        return route.fulfill({
          json: {
            url: "wss://nats.example.com",
            jwt: "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig",
            subject: "docflow.events.acme.>",
            expiresAt: new Date(Date.now() + 900_000).toISOString(),
          },
        });
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
