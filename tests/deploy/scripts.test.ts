/**
 * The chart's maintenance scripts (charts/docflow/scripts: readme.ts, nats-auth.ts, helm.ts) and
 * k8s/render.ts are outside the TypeScript projects of `tsc --build`: they have their own
 * tsconfig, checked here.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./support.ts";

describe("chart and k8s scripts", () => {
  it("type-check (npx tsc -p charts/docflow/scripts)", () => {
    const result = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "charts", "docflow", "scripts")], { cwd: ROOT, encoding: "utf8" });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
