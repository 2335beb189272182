/**
 * Runs the Helm binary that scripts/bootstrap.sh builds ($DOCFLOW_CACHE_DIR/bin/helm, by default
 * $HOME/.cache/docflow/bin/helm), else `helm` on PATH. Used by the chart tests and k8s/render.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";

/** The Kubernetes version charts are rendered and linted for (the chart needs >= 1.30). */
export const KUBE_VERSION = "1.32.0";

/** Path of the helm binary; throws with what to do when there is none. */
export function findHelm(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env["DOCFLOW_CACHE_DIR"] ?? join(homedir(), ".cache", "docflow");
  const candidates = [join(cache, "bin", "helm"), ...(env["PATH"] ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "helm"))];
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    throw new Error(`helm not found (looked at ${candidates[0]} and on PATH): run \`bash scripts/bootstrap.sh\`, which builds helm v3.22.0 into ${join(cache, "bin")}`);
  }
  return found;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with the given arguments (synchronously; renders take well under a second). */
export function helm(args: string[], helmBin = findHelm()): HelmResult {
  const result = spawnSync(helmBin, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** `helm template` of a chart with values files and `--set` pairs, for KUBE_VERSION. */
export function helmTemplate(chartDir: string, options: { release?: string; namespace?: string; valuesFiles?: string[]; set?: Record<string, string | number | boolean>; extraArgs?: string[] } = {}, helmBin = findHelm()): HelmResult {
  const args = ["template", options.release ?? "docflow", chartDir, "--namespace", options.namespace ?? "docflow", "--kube-version", KUBE_VERSION];
  for (const file of options.valuesFiles ?? []) args.push("-f", file);
  for (const [key, value] of Object.entries(options.set ?? {})) args.push(typeof value === "string" ? "--set-string" : "--set", `${key}=${value}`);
  args.push(...(options.extraArgs ?? []));
  return helm(args, helmBin);
}
