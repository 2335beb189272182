import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { launchService, serviceEnv, stopAll, type ServiceProcess } from "@docflow/tools/launch";
import { freePort } from "@docflow/tools/ports";
import { testServices } from "../support/env.ts";

const ROOT = resolve(import.meta.dirname, "../..");

describe("gateway start-up while a dependency is down", () => {
  const children: ServiceProcess[] = [];
  afterAll(() => stopAll(children, { signal: "SIGKILL" }));

  it("answers liveness at once and readiness 'not ready' until it can serve (no restart loop)", async () => {
    const services = testServices();
    const [port, deadNats] = [await freePort(), await freePort()];
    const child = launchService("gateway", {
      telemetry: false,
      env: {
        ...serviceEnv(
          { amqpUrl: services.amqpUrl, natsUrl: `nats://127.0.0.1:${deadNats}` }, // nothing listens on that NATS port
          { storage: "fs", dataDir: join(ROOT, ".docflow/test-startup"), tokens: { "startup-token-0123456789": "acme" } },
        ),
        DOCFLOW_HOST: "127.0.0.1",
        DOCFLOW_PORT: String(port),
      },
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
    expect(child.exitInfo()).toBeUndefined();
  });
});
