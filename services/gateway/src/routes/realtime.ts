import { Router } from "express";
import { encodeUser } from "@nats-io/jwt";
import { createUser, fromSeed } from "@nats-io/nkeys";
import { DocflowError, tenantEventsWildcard, type RealtimeCredentials, type TenantId } from "@docflow/contracts";
import type { AppContext } from "../context.ts";

/**
 * `POST /v1/realtime/credentials`: a short-lived NATS bearer JWT for the
 * browser, valid over WebSocket only, allowed to subscribe to its own tenant's
 * events and to publish nothing. nats-server enforces all of it (permissions,
 * expiry, connection type); the gateway only signs.
 */
export function realtimeRouter(ctx: AppContext): Router {
  const router = Router();
  const { DOCFLOW_REALTIME_SIGNING_SEED: seed, DOCFLOW_REALTIME_ACCOUNT: account, DOCFLOW_REALTIME_WS_URL: url, DOCFLOW_REALTIME_TTL_SECONDS: ttl } = ctx.config;
  const signer = seed ? fromSeed(new TextEncoder().encode(seed)) : undefined;

  router.post("/v1/realtime/credentials", async (_req, res) => {
    if (!signer || !account || !url) throw new DocflowError("realtime_unavailable");
    const tenant = res.locals.tenant as TenantId;
    const subject = tenantEventsWildcard(tenant);
    const expires = Math.floor(Date.now() / 1000) + ttl;
    const jwt = await encodeUser(
      `browser:${tenant}`,
      createUser(),
      signer,
      {
        issuer_account: account,
        bearer_token: true,
        allowed_connection_types: ["WEBSOCKET"],
        pub: { deny: [">"] },
        sub: { allow: [subject] },
        subs: 10,
        data: -1,
        payload: -1,
      },
      { exp: expires },
    );
    res.set("Cache-Control", "no-store").json({ url, jwt, subject, expiresAt: new Date(expires * 1000).toISOString() } satisfies RealtimeCredentials);
  });

  return router;
}
