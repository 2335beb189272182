import { spawn } from "node:child_process";
import { once } from "node:events";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/stack.ts";
import { testServices } from "../support/env.ts";

const ROOT = resolve(import.meta.dirname, "../..");

describe("gateway start-up while a dependency is down", () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterAll(async () => {
    await Promise.all(children.map(async (c) => {
      if (c.exitCode === null) {
        c.kill("SIGKILL");
        await once(c, "exit");
      }
    }));
  });

  it("answers liveness at once and readiness 'not ready' until it can serve (no restart loop)", async () => {
    const services = testServices();
    const [port, deadNats] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [join(ROOT, "services/gateway/src/server.ts")], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        DOCFLOW_HOST: "127.0.0.1",
        DOCFLOW_PORT: String(port),
        DOCFLOW_NATS_URL: `nats://127.0.0.1:${deadNats}`, // nothing listens there
        DOCFLOW_AMQP_URL: services.amqpUrl,
        DOCFLOW_DEV_TOKENS: "startup-token-0123456789=acme",
        DOCFLOW_DATA_DIR: join(ROOT, ".docflow/test-startup"),
      },
      stdio: "ignore",
    });
    children.push(child);
    let live: Response | undefined;
    for (let i = 0; i < 100 && !live; i++) {
      live = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      if (!live) await new Promise((r) => setTimeout(r, 100));
    }
    expect(live?.status).toBe(200);
    expect(await live!.json()).toEqual({ status: "starting" });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { code: string }).code).toBe("not_ready");
    const api = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { headers: { authorization: "Bearer startup-token-0123456789" } });
    expect(api.status).toBe(503);
    expect(child.exitCode).toBeNull();
  });
});
