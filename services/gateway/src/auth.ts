import { createHash, randomBytes } from "node:crypto";
import type { RequestHandler } from "express";
import { DocflowError, TenantId } from "@docflow/contracts";

/**
 * Maps bearer tokens to tenants. Tokens are kept only as SHA-256 digests, so
 * the lookup leaks nothing about a token through timing or a heap dump.
 */
export class TokenRegistry {
  readonly #tenants = new Map<string, TenantId>();

  constructor(pairs: Iterable<[token: string, tenant: string]>) {
    for (const [token, tenant] of pairs) {
      if (token.length < 16) throw new Error(`a token for tenant '${tenant}' is shorter than 16 characters`);
      this.#tenants.set(digest(token), TenantId.parse(tenant));
    }
  }

  /** Parses `token=tenant,token=tenant`. */
  static parse(spec: string): TokenRegistry {
    const pairs = spec
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)
      .map((pair): [string, string] => {
        const at = pair.lastIndexOf("=");
        if (at <= 0) throw new Error("DOCFLOW_DEV_TOKENS must be comma-separated token=tenant pairs");
        return [pair.slice(0, at), pair.slice(at + 1)];
      });
    return new TokenRegistry(pairs);
  }

  static generate(tenant = "dev"): { registry: TokenRegistry; token: string } {
    const token = randomBytes(24).toString("base64url");
    return { registry: new TokenRegistry([[token, tenant]]), token };
  }

  tenantFor(token: string): TenantId | undefined {
    return this.#tenants.get(digest(token));
  }
}

function digest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Requires `Authorization: Bearer <token>` and puts the caller's tenant in `res.locals.tenant`. */
export function requireTenant(tokens: TokenRegistry): RequestHandler {
  return (req, res, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    const tenant = match?.[1] ? tokens.tenantFor(match[1]) : undefined;
    if (!tenant) {
      res.set("WWW-Authenticate", 'Bearer realm="docflow"');
      throw new DocflowError("unauthorized");
    }
    res.locals.tenant = tenant;
    next();
  };
}
