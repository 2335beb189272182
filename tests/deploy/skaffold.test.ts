/**
 * skaffold.yaml: valid against Skaffold's published v4beta13 schema, one artifact per service
 * named like it (docker, context = repository root), and the Helm release sets exactly the image
 * values the chart has.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROOT, mergedValues, render, valueAt } from "./support.ts";

/** Skaffold's published JSON schema for v4beta13 (draft-07, Apache-2.0), vendored for offline validation. */
const schemaPath = join(import.meta.dirname, "fixtures", "skaffold-v4beta13.json");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const skaffold = parse(readFileSync(join(ROOT, "skaffold.yaml"), "utf8")) as any;

describe("skaffold.yaml", () => {
  it("validates against the Skaffold v4beta13 schema", () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    ajv.addVocabulary(["preferredOrder", "x-intellij-html-description"]);
    const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")) as object);
    expect(validate(skaffold), ajv.errorsText(validate.errors)).toBe(true);
    // and the schema is not vacuous
    expect(validate({ ...skaffold, build: { artifacts: [{ image: "gateway", docker: { dockerfile: 1 } }] } })).toBe(false);
  });

  it("is apiVersion skaffold/v4beta13 (the schema does not pin it)", () => {
    expect(skaffold.apiVersion).toBe("skaffold/v4beta13");
    expect(skaffold.kind).toBe("Config");
  });

  it("builds one image per service, named like it, from the repository root", () => {
    const artifacts = skaffold.build.artifacts as { image: string; context: string; docker: { dockerfile: string } }[];
    expect(artifacts.map((a) => a.image)).toEqual(["gateway", "processor", "web", "operator"]);
    for (const artifact of artifacts) {
      expect(artifact.context).toBe(".");
      expect(artifact.docker.dockerfile).toBe(`services/${artifact.image}/Dockerfile`);
      expect(existsSync(join(ROOT, artifact.docker.dockerfile))).toBe(true);
    }
  });

  it("deploys charts/docflow with the built images in the chart's image values", () => {
    const [release] = skaffold.deploy.helm.releases as { chartPath: string; setValueTemplates: Record<string, string> }[];
    expect(release?.chartPath).toBe("charts/docflow");
    const values = mergedValues();
    const set = release?.setValueTemplates ?? {};
    for (const service of ["gateway", "processor", "web", "operator"]) {
      expect(set[`${service}.image.repository`]).toBe(`{{.IMAGE_REPO_${service}}}`);
      expect(set[`${service}.image.tag`]).toBe(`{{.IMAGE_TAG_${service}}}@{{.IMAGE_DIGEST_${service}}}`);
    }
    for (const key of Object.keys(set)) expect(valueAt(values, key).found, key).toBe(true);
    // What Skaffold would render: repository + tag@digest gives a pinned reference.
    const objects = render({ set: { "gateway.image.repository": "registry.local/gateway", "gateway.image.tag": "abc123@sha256:0123" } });
    expect(objects.find((o) => o.kind === "Deployment" && o.metadata.name === "docflow-gateway")?.spec.template.spec.containers[0].image).toBe("registry.local/gateway:abc123@sha256:0123");
  });

  it("has an evaluation profile whose values file renders, forwarding a port the gateway's Service has", () => {
    const profile = (skaffold.profiles as { name: string; patches: { path: string; value: string[] }[]; portForward: { resourceName: string; port: number }[] }[]).find(
      (p) => p.name === "evaluation",
    )!;
    expect(profile).toBeDefined();
    const files = profile.patches.find((p) => p.path === "/deploy/helm/releases/0/valuesFiles")!.value;
    for (const file of files) expect(existsSync(join(ROOT, file)), file).toBe(true);
    const objects = render({ valuesFiles: files.map((f) => join(ROOT, f)) });
    for (const forward of profile.portForward) {
      const service = objects.find((o) => o.kind === "Service" && o.metadata.name === forward.resourceName);
      expect(service, forward.resourceName).toBeDefined();
      expect(service!.spec.ports.map((p: { port: number }) => p.port)).toContain(forward.port);
    }
    // The evaluation install runs the brokers and the S3 server in the release.
    expect(objects.filter((o) => o.kind === "StatefulSet").length).toBeGreaterThanOrEqual(3);
  });

  it("has a cluster profile for scripts/cluster.sh's cluster: pushed builds on the local base image, the cluster's values after evaluation's", () => {
    type Patch = { op: string; path: string; value: unknown };
    const profile = (skaffold.profiles as { name: string; patches: Patch[] }[]).find((p) => p.name === "cluster")!;
    expect(profile).toBeDefined();
    const at = (path: string) => profile.patches.filter((p) => p.path === path).map((p) => p.value);
    expect(at("/build/local")).toEqual([{ push: true, useBuildkit: false, concurrency: 1 }]);
    for (let i = 0; i < skaffold.build.artifacts.length; i++) {
      expect(at(`/build/artifacts/${i}/docker/network`)).toEqual(["host"]);
      expect((at(`/build/artifacts/${i}/docker/buildArgs`)[0] as { BASE_IMAGE: string }).BASE_IMAGE).toMatch(/DOCFLOW_NODE_BASE_IMAGE.*localhost\/docflow\/node:24-bookworm-slim/);
    }
    // Appended to the evaluation profile's list (`-p evaluation,cluster`), never replacing it.
    const files = at("/deploy/helm/releases/0/valuesFiles/-") as string[];
    expect(profile.patches.filter((p) => p.path.startsWith("/deploy/helm/releases/0/valuesFiles")).every((p) => p.path.endsWith("/-"))).toBe(true);
    expect(files[0]).toBe("scripts/cluster/values.yaml");
    expect(files.slice(1, 3)).toEqual([expect.stringMatching(/DOCFLOW_CLUSTER_STATE.*\/values-images\.yaml$/), expect.stringMatching(/DOCFLOW_CLUSTER_STATE.*\/values-tokens\.yaml$/)]);
    expect(at("/deploy/helm/releases/0/setValueTemplates/imageRegistry")).toEqual([""]);
    // Rendered as Skaffold would: its image names win over the cluster values' imageRegistry.
    const objects = render({
      valuesFiles: ["charts/docflow/values-evaluation.yaml", files[0]!].map((f) => join(ROOT, f)),
      set: { imageRegistry: "", "gateway.image.repository": "localhost:5000/gateway", "gateway.image.tag": "v1@sha256:0123" },
    });
    expect(objects.find((o) => o.kind === "Deployment" && o.metadata.name === "docflow-gateway")?.spec.template.spec.containers[0].image).toBe("localhost:5000/gateway:v1@sha256:0123");
  });
});
