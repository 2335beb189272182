import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jwtAuthenticator, wsconnect, type NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, JobEvent } from "@docflow/contracts";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { startStack, type Stack } from "../support/stack.ts";

interface Credentials {
  url: string;
  jwt: string;
  subject: string;
  expiresAt: string;
}

describe("live updates: browser credentials for NATS over WebSocket", () => {
  let stack: Stack;
  let acme: string;
  let globex: string;
  const open: NatsConnection[] = [];

  const credentials = async (tenant: string): Promise<Credentials> => {
    const res = await fetch(`${stack.baseUrl}/v1/realtime/credentials`, { method: "POST", headers: { authorization: `Bearer ${stack.tokens[tenant]}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    return (await res.json()) as Credentials;
  };
  const connectAs = async (creds: Credentials) => {
    const nc = await wsconnect({ servers: creds.url, authenticator: jwtAuthenticator(creds.jwt) });
    open.push(nc);
    return nc;
  };
  /** The first error nats-server reports on this connection (permission violations arrive asynchronously). */
  const nextError = async (nc: NatsConnection): Promise<string> => {
    for await (const s of nc.status()) if (s.type === "error") return `${s.error.name}: ${s.error.message}`;
    return "closed";
  };

  beforeAll(async () => {
    stack = await startStack();
    [acme, globex] = Object.keys(stack.tokens) as [string, string];
  });
  afterAll(async () => {
    await Promise.all(open.map((nc) => nc.close().catch(() => {})));
    await stack?.stop();
  });

  it("mints short-lived credentials for the caller's tenant only", async () => {
    const creds = await credentials(acme);
    expect(creds.subject).toBe(`docflow.events.${acme}.>`);
    expect(creds.url).toMatch(/^wss?:\/\//);
    const ttl = Date.parse(creds.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(900_000);
    const anonymous = await fetch(`${stack.baseUrl}/v1/realtime/credentials`, { method: "POST" });
    expect(anonymous.status).toBe(401);
  });

  it("delivers a job's events, page by page, to its tenant's browser", async () => {
    const nc = await connectAs(await credentials(acme));
    const sub = nc.subscribe(`docflow.events.${acme}.>`);
    await nc.flush();
    const dir = await mkdtemp(join(tmpdir(), "docflow-rt-"));
    await makeTextPdf(join(dir, "live.pdf"), defaultPages(3));
    const res = await fetch(`${stack.baseUrl}/v1/documents?filename=live.pdf`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.tokens[acme]}` },
      body: await readFile(join(dir, "live.pdf")),
    });
    const job = (await res.json()) as Job;
    const seen: JobEvent[] = [];
    for await (const m of sub) {
      const event = m.json<JobEvent>();
      if (event.jobId !== job.id) continue;
      seen.push(event);
      if (event.type === "job.completed") break;
    }
    expect(seen[0]?.type).toBe("job.queued");
    expect(
      seen
        .filter((e) => e.type === "page.ready")
        .map((e) => e.page)
        .sort(),
    ).toEqual([1, 2, 3]);
    const revisions = seen.map((e) => e.revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
  });

  it("refuses a subscription to another tenant's subjects with a permission error", async () => {
    const nc = await connectAs(await credentials(globex));
    const errors = nextError(nc);
    nc.subscribe(`docflow.events.${acme}.>`);
    await nc.flush().catch(() => {});
    expect(await errors).toMatch(/Permissions Violation for Subscription to "docflow\.events\./);
  });

  it("refuses any publish from browser credentials", async () => {
    const nc = await connectAs(await credentials(acme));
    const errors = nextError(nc);
    nc.publish(`docflow.events.${acme}.forged`, JSON.stringify({ type: "job.completed" }));
    await nc.flush().catch(() => {});
    expect(await errors).toMatch(/Permissions Violation for Publish/);
  });
});
