import express from "express";
import { describe, expect, it } from "vitest";
import { createLogger } from "@docflow/telemetry";
import { TokenRegistry, requireTenant } from "./auth.ts";
import { errorHandler } from "./problem.ts";

async function call(app: express.Express, headers: Record<string, string>) {
  const server = app.listen(0);
  await new Promise((r) => server.once("listening", r));
  const { port } = server.address() as { port: number };
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1/x`, { headers });
    return { status: res.status, type: res.headers.get("content-type"), body: await res.json(), www: res.headers.get("www-authenticate") };
  } finally {
    server.close();
  }
}

describe("bearer tokens", () => {
  const tokens = TokenRegistry.parse("alpha-token-0123456789=acme, beta-token-0123456789=globex");
  const app = express();
  app.use("/v1", requireTenant(tokens));
  app.get("/v1/x", (_req, res) => void res.json({ tenant: res.locals.tenant }));
  app.use(errorHandler(createLogger("test")));

  it("maps each token to its tenant", async () => {
    expect((await call(app, { authorization: "Bearer alpha-token-0123456789" })).body).toEqual({ tenant: "acme" });
    expect((await call(app, { authorization: "bearer beta-token-0123456789" })).body).toEqual({ tenant: "globex" });
  });

  it("answers 401 problem+json for a missing, malformed or unknown token", async () => {
    for (const headers of [{}, { authorization: "Basic abc" }, { authorization: "Bearer nope-nope-nope-nope" }] as Record<string, string>[]) {
      const res = await call(app, headers);
      expect(res.status).toBe(401);
      expect(res.type).toMatch(/application\/problem\+json/);
      expect(res.body).toMatchObject({ status: 401, code: "unauthorized" });
      expect(res.www).toMatch(/^Bearer/);
    }
  });

  it("refuses weak tokens and bad tenant ids at start-up", () => {
    expect(() => TokenRegistry.parse("short=acme")).toThrow(/shorter than 16/);
    expect(() => TokenRegistry.parse("long-enough-token-123=Bad Tenant")).toThrow();
    expect(() => TokenRegistry.parse("no-pair-here")).toThrow(/token=tenant/);
  });

  it("generates a token for tenant dev when none is configured", () => {
    const { registry, token } = TokenRegistry.generate();
    expect(registry.tenantFor(token)).toBe("dev");
    expect(token.length).toBeGreaterThanOrEqual(32);
  });
});
