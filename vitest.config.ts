import { existsSync } from "node:fs";
import { defineConfig } from "vitest/config";

/**
 * One runner for the repo, four projects:
 * - unit: beside the code, no services;
 * - web: the SPA's component tests (jsdom), from services/web/vitest.config.ts;
 * - integration: real RabbitMQ, NATS and S3 server (URLs from scripts/test.ts);
 * - e2e: the real stack (gateway and processor processes) on those services;
 * - faults: the same stack under faults (processes killed, dependencies stopped), each test
 *   printing its figures (tests/faults/, docs/reliability.md); scripts/test.ts runs it on its own
 *   after the others (DOCFLOW_TEST_FAULTS_AFTER=1 leaves it out of their run);
 * - deploy: how docflow ships: the Helm chart, k8s/ manifests, skaffold.yaml, the Dockerfiles and
 *   images' contents, and the web image's nginx
 *   (helm from scripts/bootstrap.sh; no services needed);
 * - system: docflow's own images in containers (tests/system/), only when a container engine runs
 *   the services (scripts/test.ts builds the images and sets DOCFLOW_TEST_SYSTEM=1; it says so
 *   when it does not);
 * - cluster: the SRE's day on a real Kubernetes cluster (tests/cluster/), only when
 *   DOCFLOW_TEST_KUBECONFIG names one (scripts/test.ts starts and deploys the local cluster of
 *   scripts/cluster.sh and runs this project on its own, after the others).
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "services/gateway/src/**/*.test.ts", "services/processor/src/**/*.test.ts", "services/operator/src/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
        },
      },
      ...(existsSync("services/web/vitest.config.ts") ? ["services/web/vitest.config.ts"] : []),
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["tests/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 240_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      ...(process.env.DOCFLOW_TEST_FAULTS_AFTER === "1"
        ? []
        : [
            {
              test: {
                name: "faults",
                include: ["tests/faults/**/*.test.ts"],
                environment: "node",
                testTimeout: 900_000,
                hookTimeout: 180_000,
                fileParallelism: false,
              },
            },
          ]),
      {
        test: {
          name: "deploy",
          include: ["tests/deploy/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      ...(process.env.DOCFLOW_TEST_SYSTEM === "1"
        ? [
            {
              test: {
                name: "system",
                include: ["tests/system/**/*.test.ts"],
                environment: "node",
                testTimeout: 240_000,
                hookTimeout: 300_000,
                fileParallelism: false,
              },
            },
          ]
        : []),
      ...(process.env.DOCFLOW_TEST_KUBECONFIG
        ? [
            {
              test: {
                name: "cluster",
                include: ["tests/cluster/**/*.test.ts"],
                environment: "node",
                testTimeout: 600_000,
                hookTimeout: 300_000,
                fileParallelism: false,
              },
            },
          ]
        : []),
    ],
  },
});
