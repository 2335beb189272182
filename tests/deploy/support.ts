/**
 * Shared pieces of the chart tests: paths, rendering (`helm template`) into objects, the
 * kubernetes-models validator of every kind the chart renders (and ./prometheus-operator.ts for the
 * Prometheus Operator kinds), merged values.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { Ajv } from "ajv";
import { parse, parseAllDocuments } from "yaml";
import { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from "kubernetes-models/admissionregistration.k8s.io/v1";
import { CustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Job } from "kubernetes-models/batch/v1";
import { Ingress, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Pod, PodTemplate, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { validatePrometheusRule, validateServiceMonitor } from "./prometheus-operator.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CHART = join(ROOT, "charts", "docflow");
/** The ProcessorPool CRD the chart ships (Helm installs crds/ before the release). */
export const POOL_CRD_FILE = join(CHART, "crds", "processorpools.docflow.io.yaml");
export const CI_VALUES = readdirSync(join(CHART, "ci"))
  .filter((f) => f.endsWith("-values.yaml"))
  .sort()
  .map((f) => join(CHART, "ci", f));

/** The Kubernetes version the chart is rendered and linted for (it needs >= 1.30). */
export const KUBE_VERSION = "1.32.0";

/**
 * The helm binary that scripts/bootstrap.sh builds ($DOCFLOW_CACHE_DIR/bin/helm, by default
 * $HOME/.cache/docflow/bin/helm), else `helm` on PATH. Missing, every chart test fails with what
 * to do (never a skip). (charts/docflow/scripts/helm.ts does the same for the scripts.)
 */
function findHelm(): string {
  const cache = process.env["DOCFLOW_CACHE_DIR"] ?? join(homedir(), ".cache", "docflow");
  const candidates = [
    join(cache, "bin", "helm"),
    ...(process.env["PATH"] ?? "")
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, "helm")),
  ];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`helm not found (looked at ${candidates[0]} and on PATH): run \`bash scripts/bootstrap.sh\`, which builds helm v3.22.0 into ${join(cache, "bin")}`);
  return found;
}
export const HELM = findHelm();

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs helm. */
export function helm(args: string[]): HelmResult {
  const result = spawnSync(HELM, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [key: string]: any };

/** Validates one object against its Kubernetes (or KEDA) schema; throws on a schema error. */
type Validator = (obj: K8sObject) => void;
// The models' constructors take their own typed shapes; the rendered objects are checked at run time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ModelClass = new (data: any) => { validate(): void };
const model =
  (Model: ModelClass): Validator =>
  (obj) =>
    new Model(obj).validate();
export const VALIDATORS: Record<string, Validator> = {
  "apps/v1/Deployment": model(Deployment),
  "apps/v1/StatefulSet": model(StatefulSet),
  "v1/Service": model(Service),
  "v1/ServiceAccount": model(ServiceAccount),
  "v1/ConfigMap": model(ConfigMap),
  "v1/Secret": model(Secret),
  "v1/Pod": model(Pod),
  "v1/PodTemplate": model(PodTemplate),
  "apiextensions.k8s.io/v1/CustomResourceDefinition": model(CustomResourceDefinition),
  "docflow.io/v1alpha1/ProcessorPool": validateProcessorPool,
  "batch/v1/Job": model(Job),
  "policy/v1/PodDisruptionBudget": model(PodDisruptionBudget),
  "networking.k8s.io/v1/Ingress": model(Ingress),
  "networking.k8s.io/v1/NetworkPolicy": model(NetworkPolicy),
  "autoscaling/v2/HorizontalPodAutoscaler": model(HorizontalPodAutoscaler),
  "rbac.authorization.k8s.io/v1/Role": model(Role),
  "rbac.authorization.k8s.io/v1/RoleBinding": model(RoleBinding),
  "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": model(ValidatingAdmissionPolicy),
  "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": model(ValidatingAdmissionPolicyBinding),
  "keda.sh/v1alpha1/ScaledObject": model(ScaledObject),
  "keda.sh/v1alpha1/TriggerAuthentication": model(TriggerAuthentication),
  "monitoring.coreos.com/v1/ServiceMonitor": validateServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": validatePrometheusRule,
};

/**
 * A ProcessorPool against the CRD's own OpenAPI schema (crds/processorpools.docflow.io.yaml), with
 * what the API server adds: unknown fields are errors here (the API server would prune them
 * silently), and the CEL rules of spec (min <= max, replicas <= max) are evaluated by hand.
 */
function validateProcessorPool(obj: K8sObject): void {
  const crd = parse(readFileSync(POOL_CRD_FILE, "utf8")) as { spec: { versions: { name: string; schema: { openAPIV3Schema: Record<string, unknown> } }[] } };
  const version = crd.spec.versions.find((v) => `docflow.io/${v.name}` === obj.apiVersion);
  if (!version) throw new Error(`the CRD serves no ${obj.apiVersion}`);
  const schema = version.schema.openAPIV3Schema;
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const validate = ajv.compile(schema);
  const name = obj.metadata.name;
  if (!validate(obj)) throw new Error(`ProcessorPool ${name}: ${ajv.errorsText(validate.errors)}`);
  const unknown: string[] = [];
  const walk = (node: unknown, sch: Record<string, unknown> | undefined, path: string) => {
    if (!sch || node === null || typeof node !== "object" || Array.isArray(node)) {
      if (Array.isArray(node) && sch?.["items"]) node.forEach((item, i) => walk(item, sch["items"] as Record<string, unknown>, `${path}[${i}]`));
      return;
    }
    const properties = sch["properties"] as Record<string, Record<string, unknown>> | undefined;
    if (!properties || path === ".metadata") return;
    for (const [key, value] of Object.entries(node)) {
      if (!(key in properties)) unknown.push(`${path}.${key}`);
      else walk(value, properties[key], `${path}.${key}`);
    }
  };
  walk(obj, schema, "");
  if (unknown.length > 0) throw new Error(`ProcessorPool ${name}: unknown fields ${unknown.join(", ")}`);
  const spec = obj["spec"] as { minReplicas?: number; maxReplicas?: number; replicas?: number };
  const [min, max] = [spec.minReplicas ?? 1, spec.maxReplicas ?? 10];
  if (min > max) throw new Error(`ProcessorPool ${name}: minReplicas must not exceed maxReplicas`);
  if (spec.replicas !== undefined && spec.replicas > max) throw new Error(`ProcessorPool ${name}: replicas must not exceed maxReplicas`);
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw doc.errors[0];
      return doc.toJS() as K8sObject | null;
    })
    .filter((obj): obj is K8sObject => obj !== null);
}

export interface RenderOptions {
  valuesFiles?: string[];
  set?: Record<string, string | number | boolean>;
  /** `--set-json` pairs (lists and maps). */
  setJson?: Record<string, unknown>;
  /** Render as `helm upgrade` does (`--is-upgrade`), against a cluster serving these API versions (`--api-versions`). */
  upgrade?: { apiVersions: string[] };
}

/** `helm template docflow charts/docflow -n docflow` with values files and `--set` pairs: helm's result. */
export function renderResult(options: RenderOptions = {}): HelmResult {
  const args = ["template", "docflow", CHART, "--namespace", "docflow", "--kube-version", KUBE_VERSION];
  for (const file of options.valuesFiles ?? []) args.push("-f", file);
  for (const [key, value] of Object.entries(options.set ?? {})) args.push(typeof value === "string" ? "--set-string" : "--set", `${key}=${value}`);
  for (const [key, value] of Object.entries(options.setJson ?? {})) args.push("--set-json", `${key}=${JSON.stringify(value)}`);
  if (options.upgrade) args.push("--is-upgrade", ...options.upgrade.apiVersions.flatMap((v) => ["--api-versions", v]));
  return helm(args);
}

/** `helm template` of the chart; throws with helm's stderr when it fails. */
export function render(options: RenderOptions = {}): K8sObject[] {
  const result = renderResult(options);
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseObjects(result.stdout);
}

/** Runs a repository script with this Node (`node <script> <args>`) from the repository root. */
export function runScript(script: string, args: string[] = []): HelmResult {
  const result = spawnSync(process.execPath, [join(ROOT, script), ...args], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** The value at a dotted path of the values, and whether the path exists. */
export function valueAt(values: unknown, key: string): { found: boolean; value: unknown } {
  let node: unknown = values;
  for (const part of key.split(".")) {
    if (!isPlainObject(node) || !(part in node)) return { found: false, value: undefined };
    node = node[part];
  }
  return { found: true, value: node };
}

/** Dotted paths of every leaf of the values (scalars, lists, empty maps). */
export function leafPaths(values: unknown, prefix = ""): string[] {
  if (!isPlainObject(values) || Object.keys(values).length === 0) return prefix ? [prefix] : [];
  return Object.entries(values).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

/** The `## @param <key> <description>` comments of values.yaml. */
export function paramKeys(valuesText: string): string[] {
  return [...valuesText.matchAll(/^\s*## @param (\S+)\s+\S/gm)].map((m) => m[1] ?? "");
}

/**
 * A component's workload, Deployment-shaped: its Deployment, or (processor.autoscaling.engine
 * operator) the PodTemplate the operator makes the Deployments from, as `{metadata, spec: {template}}`.
 */
export function workload(objects: K8sObject[], name: string): K8sObject {
  const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name === name);
  if (deployment) return deployment;
  const template = objects.find((o) => o.kind === "PodTemplate" && o.metadata.name === name);
  if (template) return asDeployment(template);
  throw new Error(`no Deployment or PodTemplate ${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
}

/** A PodTemplate as the Deployment the operator makes from it (`spec.template`), for the checks of pod specs. */
export function asDeployment(template: K8sObject): K8sObject {
  return { apiVersion: "apps/v1", kind: "Deployment", metadata: template.metadata, spec: { template: template["template"] } };
}

/** Every Deployment, and every PodTemplate as a Deployment (see `workload`). */
export function deploymentsOf(objects: K8sObject[]): K8sObject[] {
  return [...objects.filter((o) => o.kind === "Deployment"), ...objects.filter((o) => o.kind === "PodTemplate").map(asDeployment)];
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const obj = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!obj) throw new Error(`no ${kind} ${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  return obj;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Helm's merge of values: maps merge deeply, anything else replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(override)) return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = key in base ? mergeValues(base[key], value) : value;
  return out;
}

/** values.yaml merged with the given values files (as Helm does). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function mergedValues(valuesFiles: string[] = []): any {
  return valuesFiles.reduce<unknown>((acc, file) => mergeValues(acc, parse(readFileSync(file, "utf8")) ?? {}), parse(readFileSync(join(CHART, "values.yaml"), "utf8")));
}

/** The env of a Deployment's first container as name -> value (valueFrom entries as their source). */
export function containerEnv(deployment: K8sObject): Map<string, { value?: string; valueFrom?: Record<string, Record<string, string>> }> {
  const container = deployment.spec.template.spec.containers[0];
  return new Map((container.env ?? []).map((e: { name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }) => [e.name, e]));
}

/** A plain env value of a Deployment's first container; throws when it is missing or not a plain value. */
export function envValue(deployment: K8sObject, name: string): string {
  const entry = containerEnv(deployment).get(name);
  if (entry?.value === undefined) throw new Error(`${deployment.metadata.name} has no plain env ${name}`);
  return entry.value;
}
