import { KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { Stage } from "@docflow/contracts";

export const GROUP = "docflow.io";
export const VERSION = "v1alpha1";
export const PLURAL = "processorpools";
export const KIND = "ProcessorPool";
/** The field manager of every write (server-side apply and patches). */
export const FIELD_MANAGER = "docflow-operator";
/** Label on the Deployment and its pods: which pool they belong to. */
export const POOL_LABEL = "docflow.io/pool";
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "docflow-operator" } as const;
export const DELETION_COST = "controller.kubernetes.io/pod-deletion-cost";
/** The processor container in the PodTemplate. */
export const PROCESSOR_CONTAINER = "processor";

export interface Condition {
  type: "Ready" | "Scaling" | "Degraded";
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface ProcessorPool {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: Date;
    finalizers?: string[];
    creationTimestamp?: Date;
  };
  spec: {
    stages: Stage[];
    template: {
      podTemplateName: string;
      concurrency?: number;
      resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
      env?: { name: string; value?: string }[];
    };
    replicas?: number;
    minReplicas: number;
    maxReplicas: number;
    targetDrainSeconds: number;
    pagesPerSecondEstimate: number;
    secondsPerConversion: number;
    scaleUp: { maxStep: number };
    scaleDown: { stabilizationSeconds: number; maxStep: number };
    paused: boolean;
  };
  status?: Record<string, unknown> & { conditions?: Condition[] };
}

/** In a pod: the ServiceAccount; elsewhere: KUBECONFIG or ~/.kube/config. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const applyPatch = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

/** The HTTP status of an error from the client (ApiException), if any. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const v of [e?.code, e?.statusCode, e?.response?.statusCode]) if (typeof v === "number") return v;
  return undefined;
}

/** A short, log-friendly message for a client error (the API's Status message when there is one). */
export function errorMessage(err: unknown): string {
  const e = err as { body?: unknown; message?: string };
  if (typeof e?.body === "string") {
    try {
      const status = JSON.parse(e.body) as { message?: string };
      if (status.message) return status.message;
    } catch {
      // not JSON
    }
  }
  return e?.message?.split("\n")[0] ?? String(err);
}
