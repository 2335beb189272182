/**
 * Static server of the built web app (`dist/`) for the `web` image: node:http only, no
 * dependencies, run with Node's type stripping (`node server.ts`).
 *
 * - Every file of `dist/` is read once at start-up (the image's file system is read-only and
 *   the app is a few MB), so only those paths are ever served.
 * - `/assets/*` (hashed names) are cached for a year; `index.html` is `no-cache`; any other GET
 *   that is not a file (a client-side route such as `/jobs/<id>`) answers `index.html`. Missing
 *   assets and `/v1/*` are 404, never the app (a stale chunk must fail loudly, and the API is
 *   routed to the gateway by the ingress).
 * - `/healthz` (the process answers) and `/readyz` (false once SIGTERM arrived).
 * - `/edge/unavailable`: the problem document (with Retry-After) that the ingress answers in place
 *   of its own bare 503 when no gateway is ready (the chart's Traefik `errors` middleware asks
 *   for it and keeps the 503 status), so clients get the API's kind of error and know when to retry.
 * - Strict security headers on every answer, CSP included.
 *
 * Environment (all optional):
 *   DOCFLOW_WEB_HOST (0.0.0.0), DOCFLOW_WEB_PORT (8080; 0 picks a free port),
 *   DOCFLOW_WEB_DIST_DIR (`dist` beside this file),
 *   DOCFLOW_WEB_API_ORIGIN (the API's origin when it is not this one: added to connect-src),
 *   DOCFLOW_WEB_REALTIME_ORIGIN (the NATS WebSocket origin, `wss://...`: added to connect-src),
 *   DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS (65000; above the load balancer's idle timeout),
 *   DOCFLOW_WEB_HEADERS_TIMEOUT_MS (66000; above the keep-alive timeout),
 *   DOCFLOW_WEB_SHUTDOWN_DELAY_MS (0; readiness is false this long before the server stops accepting),
 *   DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS (10000; then open requests get this long).
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** How long a client is told to wait when no gateway is ready (`/edge/unavailable`). */
const RETRY_AFTER_SECONDS = 5;
const UNAVAILABLE = `${JSON.stringify({
  type: "urn:docflow:problem:service_unavailable",
  title: "docflow is not available right now", // packages/contracts ERRORS.service_unavailable
  status: 503,
  detail: `No API server is ready to take the request (a dependency may be down, or an upgrade under way). Nothing was stored; retry in ${RETRY_AFTER_SECONDS} s.`,
  code: "service_unavailable",
})}\n`;

export interface WebServerConfig {
  host: string;
  port: number;
  distDir: string;
  apiOrigin?: string | undefined;
  realtimeOrigin?: string | undefined;
  keepAliveTimeoutMs: number;
  headersTimeoutMs: number;
  shutdownDelayMs: number;
  shutdownTimeoutMs: number;
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};

/** Reads the configuration from the environment; throws naming every invalid variable. */
export function loadWebConfig(env: NodeJS.ProcessEnv = process.env): WebServerConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`  ${name}: must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const origin = (name: string, protocols: string[]): string | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === "") return undefined;
    try {
      const url = new URL(raw);
      if (!protocols.includes(url.protocol)) throw new Error("protocol");
      return `${url.protocol}//${url.host}`;
    } catch {
      problems.push(`  ${name}: must be a URL with ${protocols.join(" or ")} (got "${raw}")`);
      return undefined;
    }
  };
  const config: WebServerConfig = {
    host: env["DOCFLOW_WEB_HOST"] || "0.0.0.0",
    port: int("DOCFLOW_WEB_PORT", 8080, 0, 65535),
    distDir: resolve(env["DOCFLOW_WEB_DIST_DIR"] || join(dirname(fileURLToPath(import.meta.url)), "dist")),
    apiOrigin: origin("DOCFLOW_WEB_API_ORIGIN", ["http:", "https:"]),
    realtimeOrigin: origin("DOCFLOW_WEB_REALTIME_ORIGIN", ["ws:", "wss:"]),
    keepAliveTimeoutMs: int("DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS", 65_000, 1, 3_600_000),
    headersTimeoutMs: int("DOCFLOW_WEB_HEADERS_TIMEOUT_MS", 66_000, 1, 3_600_000),
    shutdownDelayMs: int("DOCFLOW_WEB_SHUTDOWN_DELAY_MS", 0, 0, 3_600_000),
    shutdownTimeoutMs: int("DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS", 10_000, 1, 3_600_000),
  };
  if (problems.length === 0 && config.headersTimeoutMs <= config.keepAliveTimeoutMs) {
    problems.push("  DOCFLOW_WEB_HEADERS_TIMEOUT_MS must be greater than DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS");
  }
  if (problems.length > 0) throw new Error(`invalid configuration:\n${problems.join("\n")}`);
  return config;
}

/** The Content-Security-Policy of every answer. */
export function contentSecurityPolicy(config: Pick<WebServerConfig, "apiOrigin" | "realtimeOrigin">): string {
  const connect = ["'self'", config.apiOrigin, config.realtimeOrigin].filter((s): s is string => Boolean(s));
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    `connect-src ${connect.join(" ")}`,
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "object-src 'none'",
  ].join("; ");
}

function securityHeaders(config: WebServerConfig): Record<string, string> {
  return {
    "Content-Security-Policy": contentSecurityPolicy(config),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), hid=(), browsing-topics=()",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
  };
}

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
  cacheControl: string;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Every file of the built app by URL path (`/index.html`, `/assets/x-abc123.js`...). */
export async function loadDist(distDir: string): Promise<Map<string, StaticFile>> {
  const files = new Map<string, StaticFile>();
  for (const path of await listFiles(distDir)) {
    const urlPath = `/${relative(distDir, path).split(sep).join("/")}`;
    const body = await readFile(path);
    const cacheControl = urlPath.startsWith("/assets/")
      ? "public, max-age=31536000, immutable"
      : urlPath === "/index.html"
        ? "no-cache"
        : "public, max-age=3600";
    files.set(urlPath, {
      body,
      type: MIME[extname(path).toLowerCase()] ?? "application/octet-stream",
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
      cacheControl,
    });
  }
  if (!files.has("/index.html")) throw new Error(`${distDir} has no index.html: build the app first (npm run build -w services/web)`);
  return files;
}

export interface WebServer {
  server: Server;
  /** Readiness turns false at once, then after the delay the server stops accepting and closes. */
  drain(): Promise<void>;
}

/** Creates the server (not yet listening). */
export function createWebServer(config: WebServerConfig, files: Map<string, StaticFile>): WebServer {
  const headers = securityHeaders(config);
  const index = files.get("/index.html");
  if (!index) throw new Error("the app has no index.html");
  let draining = false;

  function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: Buffer | string, extra: Record<string, string> = {}): void {
    const buffer = typeof body === "string" ? Buffer.from(body) : body;
    res.writeHead(status, { ...headers, "Content-Type": type, "Content-Length": String(buffer.length), ...extra });
    res.end(req.method === "HEAD" ? undefined : buffer);
  }

  function serveFile(req: IncomingMessage, res: ServerResponse, file: StaticFile): void {
    const common = { "Cache-Control": file.cacheControl, ETag: file.etag };
    const match = req.headers["if-none-match"];
    if (match !== undefined && match.split(",").some((tag) => tag.trim().replace(/^W\//, "") === file.etag)) {
      res.writeHead(304, { ...headers, ...common });
      res.end();
      return;
    }
    send(req, res, 200, file.type, file.body, common);
  }

  const server = createServer({ keepAliveTimeout: config.keepAliveTimeoutMs, headersTimeout: config.headersTimeoutMs, requestTimeout: Math.max(30_000, config.headersTimeoutMs) }, (req, res) => {
    const text = "text/plain; charset=utf-8";
    const noStore = { "Cache-Control": "no-store" };
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(req, res, 405, text, "method not allowed\n", { Allow: "GET, HEAD" });
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      send(req, res, 400, text, "bad request\n");
      return;
    }
    if (path === "/healthz") return send(req, res, 200, text, "ok\n", noStore);
    if (path === "/readyz") return draining ? send(req, res, 503, text, "draining\n", noStore) : send(req, res, 200, text, "ready\n", noStore);
    if (path === "/edge/unavailable") return send(req, res, 200, "application/problem+json", UNAVAILABLE, { ...noStore, "Retry-After": String(RETRY_AFTER_SECONDS) });
    const file = files.get(path === "/" ? "/index.html" : path);
    if (file) return serveFile(req, res, file);
    // Not a file: a client-side route gets the app; a missing asset or an API path does not.
    if (path.startsWith("/assets/") || path === "/v1" || path.startsWith("/v1/") || extname(path) !== "") {
      send(req, res, 404, text, "not found\n", noStore);
      return;
    }
    serveFile(req, res, index);
  });

  async function drain(): Promise<void> {
    if (draining) return;
    draining = true;
    await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
    const closed = once(server, "close");
    server.close();
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  return { server, drain };
}

function log(level: "info" | "error", msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), service: "web", msg, ...fields })}\n`);
}

async function main(): Promise<void> {
  const config = loadWebConfig();
  const files = await loadDist(config.distDir);
  const web = createWebServer(config, files);
  web.server.listen(config.port, config.host);
  await once(web.server, "listening");
  const address = web.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  log("info", `web listening on http://${config.host}:${port}`, { port, files: files.size, csp: contentSecurityPolicy(config) });
  const stop = (signal: string) => {
    log("info", "draining: readiness is now false", { signal });
    web.drain().then(
      () => {
        log("info", "stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log("error", "shutdown failed", { err: String(err) });
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    log("error", "web failed to start", { err: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}
