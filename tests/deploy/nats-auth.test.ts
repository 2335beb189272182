/**
 * charts/docflow/scripts/nats-auth.ts: the NATS auth material for a Kubernetes install (a Secret
 * with the services' credentials file and the signing seed, the server's auth configuration, and
 * chart values using them) fits the chart.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROOT, containerEnv, find, render } from "./support.ts";

describe("charts/docflow/scripts/nats-auth.ts", () => {
  it("writes a Secret, the server's auth config and values that the chart renders", async () => {
    const dir = await mkdtemp(join(tmpdir(), "docflow-nats-auth-"));
    try {
      const result = spawnSync(process.execPath, [join(ROOT, "charts", "docflow", "scripts", "nats-auth.ts"), "--out", dir, "--namespace", "docs", "--secret", "docs-nats"], { encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const secret = parse(await readFile(join(dir, "nats-secret.yaml"), "utf8")) as any;
      expect(secret).toMatchObject({ kind: "Secret", metadata: { name: "docs-nats", namespace: "docs" } });
      expect(secret.stringData["nats.creds"]).toContain("-----BEGIN NATS USER JWT-----");
      expect(secret.stringData["signing-seed"]).toMatch(/^SA[A-Z2-7]{56}$/);
      // The evaluation NATS (evaluation.nats.authConfigKey) includes the server's auth config from the same Secret.
      expect(secret.stringData["nats-server-auth.conf"]).toBe(await readFile(join(dir, "nats-server-auth.conf"), "utf8"));
      expect(await readFile(join(dir, "nats-server-auth.conf"), "utf8")).toMatch(/^operator: /);
      expect(((await stat(join(dir, "nats-secret.yaml"))).mode & 0o777).toString(8)).toBe("600");
      // The values pass the chart's schema and validation once the WebSocket URL is set.
      const valuesFile = join(dir, "values-nats.yaml");
      const values = parse(await readFile(valuesFile, "utf8")) as { realtime: { wsUrl: string } };
      values.realtime.wsUrl = "wss://nats.example.com";
      await writeFile(valuesFile, JSON.stringify(values));
      const objects = render({ valuesFiles: [valuesFile] });
      const env = containerEnv(find(objects, "Deployment", "docflow-gateway"));
      expect(env.get("DOCFLOW_REALTIME_SIGNING_SEED")?.valueFrom?.["secretKeyRef"]).toEqual({ name: "docs-nats", key: "signing-seed" });
      expect(env.get("DOCFLOW_NATS_CREDS")?.value).toBe("/etc/docflow/nats/nats.creds");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
