import { Router } from "express";
import { sendProblem } from "../problem.ts";
import type { AppContext } from "../context.ts";

/**
 * `/healthz` answers from the process alone: if it answers, the event loop
 * turns. It never checks a dependency (a broker outage must not restart every
 * pod). `/readyz` checks dependencies and turns false first on SIGTERM.
 */
export function healthRouter(ctx: AppContext): Router {
  const router = Router();

  router.get("/healthz", (_req, res) => {
    res.set("Cache-Control", "no-store").json({ status: "ok" });
  });

  router.get("/readyz", async (_req, res) => {
    res.set("Cache-Control", "no-store");
    if (ctx.draining()) return sendProblem(res, "not_ready", "draining", { checks: { draining: "shutting down" } });
    const checks: Record<string, string> = {};
    await Promise.all(
      Object.entries(ctx.readiness).map(async ([name, check]) => {
        try {
          await withTimeout(Promise.resolve(check()), 2000);
          checks[name] = "ok";
        } catch (err) {
          checks[name] = (err as Error).message || "failed";
        }
      }),
    );
    const failing = Object.entries(checks).filter(([, v]) => v !== "ok");
    if (failing.length > 0) return sendProblem(res, "not_ready", failing.map(([k, v]) => `${k}: ${v}`).join("; "), { checks });
    res.json({ status: "ready", checks });
  });

  router.get("/metrics", async (_req, res) => {
    res.set("Content-Type", ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  return router;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}
