import express, { Router, type RequestHandler } from "express";
import { DocflowError } from "@docflow/contracts";
import type { AppContext } from "../context.ts";

/** Where `POST /v1/telemetry/traces` sends browser spans. */
export const BROWSER_TRACES_PATH = "/v1/telemetry/traces";

const MEDIA_TYPES = ["application/json", "application/x-protobuf"];

/**
 * `POST /v1/telemetry/traces`: the web app's OTLP/HTTP trace exports, forwarded to the
 * OpenTelemetry Collector (`DOCFLOW_BROWSER_TRACES_URL`, by default the traces endpoint of the
 * gateway's own OTLP/HTTP exporter). Browsers never need to reach the collector, and only signed-in
 * callers can send: the route sits behind the bearer-token check, a batch is bounded
 * (`DOCFLOW_BROWSER_TRACES_MAX_BYTES`) and the forward has its own short timeout, so a slow
 * collector costs a failed export, never a held request.
 */
export function telemetryRouter(ctx: AppContext): Router {
  const router = Router();
  const target = ctx.config.browserTracesUrl;
  const limit = ctx.config.DOCFLOW_BROWSER_TRACES_MAX_BYTES;
  const raw = express.raw({ type: MEDIA_TYPES, limit });
  const readBody: RequestHandler = (req, res, next) => {
    if (!target) return next(new DocflowError("telemetry_unavailable"));
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (!MEDIA_TYPES.includes(type)) return next(new DocflowError("telemetry_unsupported_media_type"));
    raw(req, res, (err?: unknown) => {
      if (err && (err as { type?: string }).type === "entity.too.large") return next(new DocflowError("telemetry_batch_too_large", `a batch may hold up to ${limit} bytes`));
      next(err);
    });
  };

  router.post(BROWSER_TRACES_PATH, readBody, async (req, res) => {
    const body = req.body as Buffer;
    let upstream: Response;
    try {
      upstream = await fetch(target!, {
        method: "POST",
        headers: { "content-type": req.headers["content-type"]! },
        body,
        signal: AbortSignal.timeout(ctx.config.DOCFLOW_BROWSER_TRACES_TIMEOUT_MS),
      });
      await upstream.arrayBuffer(); // drain: the connection goes back to the pool
    } catch (err) {
      ctx.log.warn({ err }, "could not forward browser spans to the collector");
      throw new DocflowError("collector_unavailable");
    }
    if (!upstream.ok) {
      ctx.log.warn({ status: upstream.status }, "the collector refused browser spans");
      throw new DocflowError("collector_unavailable", `the collector answered ${upstream.status}`);
    }
    ctx.metrics.browserSpanBatches.inc();
    res.status(204).end();
  });
  return router;
}
