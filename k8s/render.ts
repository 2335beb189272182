/**
 * Renders k8s/base/docflow.yaml, the plain manifests for those who do not use Helm, from the
 * chart's defaults: `helm template docflow charts/docflow -n default`, without Helm's own labels
 * (helm.sh/chart, app.kubernetes.io/managed-by) and hooks (the `helm test` pod). Namespace
 * `default`: objects carry none, and kustomize's `namespace:` rewrites RoleBinding subjects only
 * when they are in `default`. Beside it, k8s/base/processorpools.docflow.io.yaml: the chart's CRD
 * (crds/, which `helm template` leaves out and Helm installs before the release).
 *
 *   node k8s/render.ts           rewrite k8s/base/docflow.yaml and the CRD
 *   node k8s/render.ts --check   exit 1 when either is out of date (tests/deploy/k8s.test.ts does the same)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, stringify } from "yaml";
import { helmTemplate } from "../charts/docflow/scripts/helm.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const BASE_FILE = join(ROOT, "k8s", "base", "docflow.yaml");
export const CRD_FILE = join(ROOT, "k8s", "base", "processorpools.docflow.io.yaml");
const CHART_CRD_FILE = join(ROOT, "charts", "docflow", "crds", "processorpools.docflow.io.yaml");
const HELM_LABELS = ["helm.sh/chart", "app.kubernetes.io/managed-by"];

type Obj = Record<string, unknown>;

function stripLabels(meta: unknown): void {
  if (!meta || typeof meta !== "object") return;
  const labels = (meta as Obj)["labels"];
  if (labels && typeof labels === "object") for (const key of HELM_LABELS) delete (labels as Obj)[key];
}

/** Helm's output as plain manifests (objects in Helm's install order). */
export function toPlainManifests(helmOutput: string): Obj[] {
  const objects: Obj[] = [];
  for (const doc of parseAllDocuments(helmOutput)) {
    if (doc.errors.length > 0) throw doc.errors[0];
    const obj = doc.toJS() as Obj | null;
    if (!obj) continue;
    const meta = obj["metadata"] as Obj | undefined;
    const annotations = meta?.["annotations"] as Obj | undefined;
    if (annotations?.["helm.sh/hook"] !== undefined) continue;
    stripLabels(meta);
    const spec = obj["spec"] as Obj | undefined;
    const template = spec?.["template"] as Obj | undefined;
    stripLabels(template?.["metadata"]);
    objects.push(obj);
  }
  return objects;
}

/** The content of k8s/base/docflow.yaml. */
export function renderBase(): string {
  const result = helmTemplate(join(ROOT, "charts", "docflow"), { release: "docflow", namespace: "default" });
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  const header = [
    "# Generated from charts/docflow with its default values by `node k8s/render.ts`: do not edit.",
    "# Customise with a kustomize overlay (see k8s/overlays/example) or install the chart instead.",
  ].join("\n");
  return `${header}\n${toPlainManifests(result.stdout).map((obj) => `---\n${stringify(obj, { lineWidth: 0, version: "1.1" })}`).join("")}`;
}

/** The content of k8s/base/processorpools.docflow.io.yaml: the chart's CRD, as it is. */
export function renderCrd(): string {
  return `# Copied from charts/docflow/crds/ by \`node k8s/render.ts\`: do not edit.\n${readFileSync(CHART_CRD_FILE, "utf8")}`;
}

function main(): void {
  const files: [string, string][] = [[BASE_FILE, renderBase()], [CRD_FILE, renderCrd()]];
  if (process.argv.includes("--check")) {
    for (const [file, next] of files) {
      let current = "";
      try {
        current = readFileSync(file, "utf8");
      } catch {
        // missing: out of date
      }
      if (current !== next) {
        process.stderr.write(`${file.slice(ROOT.length + 1)} is out of date: run node k8s/render.ts\n`);
        process.exit(1);
      }
    }
    return;
  }
  for (const [file, next] of files) {
    writeFileSync(file, next);
    process.stdout.write(`wrote ${file}\n`);
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) main();
