import express, { type Express } from "express";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { DocflowError, type ClientConfig } from "@docflow/contracts";
import { requireTenant } from "./auth.ts";
import type { AppContext } from "./context.ts";
import { openApiDocument } from "./openapi.ts";
import { errorHandler, requestDeadline } from "./problem.ts";
import { documentsRouter } from "./routes/documents.ts";
import { healthRouter } from "./routes/health.ts";
import { jobsRouter } from "./routes/jobs.ts";
import { realtimeRouter } from "./routes/realtime.ts";
import { BROWSER_TRACES_PATH, telemetryRouter } from "./routes/telemetry.ts";
import { uploadChunkBytes } from "./config.ts";
import { uploadLimiter } from "./uploads/limiter.ts";
import { TUS_PATH } from "./uploads/tus.ts";

/** Builds the Express app. It does no I/O of its own: everything comes in through `ctx`. */
export function createApp(ctx: AppContext): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.set("query parser", "simple");

  app.use((req, res, next) => {
    const end = ctx.metrics.httpDuration.startTimer();
    res.once("finish", () => {
      const route = (req.route?.path as string | undefined) ?? (req.path.startsWith("/v1/") ? "unmatched" : "static");
      end({ http_route: route, http_request_method: req.method, http_response_status_code: res.statusCode });
    });
    res.set("X-Content-Type-Options", "nosniff");
    next();
  });
  app.use(requestDeadline(ctx.config.DOCFLOW_REQUEST_TIMEOUT_MS));

  app.use(healthRouter(ctx));
  const openapi = openApiDocument(ctx.config.DOCFLOW_MAX_UPLOAD_BYTES);
  app.get("/v1/openapi.json", (_req, res) => {
    res.json(openapi);
  });
  const clientConfig: ClientConfig = {
    maxUploadBytes: ctx.config.DOCFLOW_MAX_UPLOAD_BYTES,
    uploadTransport: "tus",
    uploadEndpoint: TUS_PATH,
    // Every chunk fits in the edge timeout at the slowest supported bandwidth.
    tusChunkBytes: uploadChunkBytes(ctx.config),
    // Where the web app sends its spans (null: no collector, the app records none).
    tracesEndpoint: ctx.config.browserTracesUrl ? BROWSER_TRACES_PATH : null,
  };
  app.get("/v1/config", (_req, res) => {
    res.json(clientConfig);
  });

  app.use("/v1", requireTenant(ctx.tokens));
  const limiter = uploadLimiter({ perTenant: ctx.config.DOCFLOW_MAX_UPLOADS_PER_TENANT, total: ctx.config.DOCFLOW_MAX_UPLOADS, retryAfterSeconds: 5 }, (n) => ctx.metrics.uploadsInFlight.set(n));
  const limitBodies: express.RequestHandler = (req, res, next) => (req.method === "POST" || req.method === "PATCH" ? limiter(req, res, next) : next());
  app.post("/v1/documents", limitBodies);
  app.all([TUS_PATH, `${TUS_PATH}/{*id}`], limitBodies, (req, res) => {
    void ctx.uploads.handle(req, res);
  });
  app.use(documentsRouter(ctx));
  app.use(jobsRouter(ctx));
  app.use(realtimeRouter(ctx));
  app.use(telemetryRouter(ctx));
  app.all("/v1/{*rest}", () => {
    throw new DocflowError("route_not_found");
  });

  if (ctx.config.DOCFLOW_WEB_DIR) {
    const webDir = resolve(ctx.config.DOCFLOW_WEB_DIR);
    if (existsSync(join(webDir, "index.html"))) {
      app.use(express.static(webDir, { index: "index.html", maxAge: "1h", setHeaders: (res, path) => path.endsWith("index.html") && res.set("Cache-Control", "no-cache") }));
      app.get("/{*spa}", (_req, res) => res.set("Cache-Control", "no-cache").sendFile(join(webDir, "index.html")));
    } else {
      ctx.log.warn({ webDir }, "DOCFLOW_WEB_DIR has no index.html; serving the API only");
    }
  }

  app.use(errorHandler(ctx.log));
  return app;
}
