/**
 * k8s/: the plain manifests for those who do not use Helm are the chart's default render (kept in
 * sync: `node k8s/render.ts`), and kustomize builds the base and the example overlay.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { POOL_CRD_FILE, ROOT, VALIDATORS, asDeployment, parseObjects, render, runScript } from "./support.ts";

const BASE_FILE = join(ROOT, "k8s", "base", "docflow.yaml");

function kustomize(dir: string): string {
  const result = spawnSync("kubectl", ["kustomize", join(ROOT, dir)], { encoding: "utf8" });
  if (result.error) throw new Error(`kubectl is needed for the kustomize checks: ${result.error.message}`);
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return result.stdout;
}

describe("k8s/base", () => {
  it("is the chart's default render, without Helm's labels and hooks (run node k8s/render.ts after changing the chart)", () => {
    const check = runScript("k8s/render.ts", ["--check"]);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });

  it("holds the same objects as helm template, modulo Helm's labels", () => {
    const strip = (objects: ReturnType<typeof parseObjects>) =>
      objects
        .filter((o) => o.metadata.annotations?.["helm.sh/hook"] === undefined)
        .map((o) => JSON.stringify(o, (key, value: unknown) => (key === "helm.sh/chart" || key === "app.kubernetes.io/managed-by" ? undefined : value)));
    const fromHelm = strip(render());
    const fromBase = strip(parseObjects(readFileSync(BASE_FILE, "utf8")));
    // The base is rendered in namespace `default` (see k8s/render.ts), the chart tests in `docflow`.
    expect(fromBase.map((o) => o.replace(/"namespace":"default"/g, '"namespace":"docflow"'))).toEqual(fromHelm);
  });

  it("holds the ProcessorPool CRD of the chart's crds/, which kustomize applies with the rest", () => {
    expect(readFileSync(join(ROOT, "k8s", "base", "processorpools.docflow.io.yaml"), "utf8")).toContain(readFileSync(POOL_CRD_FILE, "utf8"));
    const objects = parseObjects(kustomize("k8s/base"));
    expect(objects.filter((o) => o.kind === "CustomResourceDefinition").map((o) => o.metadata.name)).toEqual(["processorpools.docflow.io"]);
    expect(objects.filter((o) => o.kind === "ProcessorPool").map((o) => o.spec.template.podTemplateName)).toEqual(["docflow-processor"]);
  });

  it("builds with kubectl kustomize, into valid objects", () => {
    const objects = parseObjects(kustomize("k8s/base"));
    expect(objects.length).toBeGreaterThan(10);
    for (const obj of objects) {
      expect(obj.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("kustomize");
      const validate = VALIDATORS[`${obj.apiVersion}/${obj.kind}`];
      expect(validate, obj.kind).toBeDefined();
      expect(() => validate?.(obj), `${obj.kind}/${obj.metadata.name}`).not.toThrow();
    }
  });

  it("takes an overlay's namespace, images and credentials (k8s/overlays/example)", () => {
    const objects = parseObjects(kustomize("k8s/overlays/example"));
    // The CRD is cluster-scoped; everything else lands in the overlay's namespace.
    for (const obj of objects.filter((o) => o.kind !== "CustomResourceDefinition")) expect(obj.metadata.namespace, `${obj.kind}/${obj.metadata.name}`).toBe("docflow-example");
    const images = [...objects.filter((o) => o.kind === "Deployment"), ...objects.filter((o) => o.kind === "PodTemplate").map(asDeployment)].map(
      (d) => d.spec.template.spec.containers[0].image as string,
    );
    expect(images.sort()).toEqual([
      "registry.example.com/docflow/gateway:0.1.0",
      "registry.example.com/docflow/operator:0.1.0",
      "registry.example.com/docflow/processor:0.1.0",
      "registry.example.com/docflow/web:0.1.0",
    ]);
    for (const binding of objects.filter((o) => o.kind === "RoleBinding")) expect(binding.subjects[0].namespace, binding.metadata.name).toBe("docflow-example");
    const secret = objects.find((o) => o.kind === "Secret");
    expect(secret?.stringData["amqp-url"]).toContain("rabbitmq.messaging.svc");
  });
});
