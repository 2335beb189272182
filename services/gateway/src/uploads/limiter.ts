import type { RequestHandler } from "express";
import { sendProblem } from "../problem.ts";

export interface UploadLimits {
  perTenant: number;
  total: number;
  /** Seconds a refused client should wait before retrying. */
  retryAfterSeconds: number;
}

/**
 * Backpressure for uploads: past `perTenant` streams of one tenant or `total`
 * streams on this replica, new upload requests get 429 with Retry-After at
 * once, instead of every upload slowing down together. Counts are per replica
 * (a fleet's total is the sum over its replicas).
 */
export function uploadLimiter(limits: UploadLimits, onChange?: (inFlight: number) => void): RequestHandler {
  const perTenant = new Map<string, number>();
  let total = 0;
  return (_req, res, next) => {
    const tenant = res.locals.tenant as string;
    const mine = perTenant.get(tenant) ?? 0;
    if (mine >= limits.perTenant || total >= limits.total) {
      res.set("Retry-After", String(limits.retryAfterSeconds));
      const which = mine >= limits.perTenant ? `${limits.perTenant} at once for your account` : `${limits.total} at once on this server`;
      return sendProblem(res, "too_many_uploads", `Too many uploads in progress (at most ${which}); retry in ${limits.retryAfterSeconds} s.`);
    }
    perTenant.set(tenant, mine + 1);
    total++;
    onChange?.(total);
    res.once("close", () => {
      const left = (perTenant.get(tenant) ?? 1) - 1;
      if (left === 0) perTenant.delete(tenant);
      else perTenant.set(tenant, left);
      total--;
      onChange?.(total);
    });
    next();
  };
}
