import { z } from "zod";
import { parseEnv, sharedEnv } from "@docflow/infra";

/** Everything the operator reads from its environment, parsed once at start-up. */
export const operatorEnv = {
  DOCFLOW_AMQP_URL: sharedEnv.DOCFLOW_AMQP_URL,
  DOCFLOW_AMQP_NAMESPACE: sharedEnv.DOCFLOW_AMQP_NAMESPACE,
  DOCFLOW_NATS_URL: sharedEnv.DOCFLOW_NATS_URL,
  DOCFLOW_NATS_CREDS: sharedEnv.DOCFLOW_NATS_CREDS,
  DOCFLOW_JOBS_BUCKET: sharedEnv.DOCFLOW_JOBS_BUCKET,
  /** The namespace whose ProcessorPools it reconciles (its own; the Role is namespaced). */
  DOCFLOW_OPERATOR_NAMESPACE: z.string().min(1).default("default"),
  /** This replica's identity in the Lease (the pod name in a cluster). */
  DOCFLOW_OPERATOR_POD_NAME: z.string().min(1).default(`operator-${process.pid}`),
  /** The coordination.k8s.io Lease the replicas elect a leader on. */
  DOCFLOW_OPERATOR_LEASE_NAME: z.string().min(1).default("docflow-operator"),
  /** Lease duration: a leader that has not renewed for this long is replaced. */
  DOCFLOW_OPERATOR_LEASE_SECONDS: z.coerce.number().int().min(2).max(300).default(15),
  /** Port of `/healthz`, `/readyz` and `/metrics`; 0 picks a free one. */
  DOCFLOW_OPERATOR_PORT: z.coerce.number().int().min(0).max(65535).default(8082),
  DOCFLOW_OPERATOR_HOST: z.string().default("0.0.0.0"),
  /** How often each pool's backlog is read and a decision taken. */
  DOCFLOW_OPERATOR_INTERVAL_SECONDS: z.coerce.number().min(1).max(600).default(15),
  /** Port of the processors' `/metrics` (their probe server), read for in-flight tasks and pages done. */
  DOCFLOW_PROCESSOR_METRICS_PORT: z.coerce.number().int().min(1).max(65535).default(8081),
  /** Tasks one processor runs at once when a pool does not say (the chart's processor.concurrency). */
  DOCFLOW_PROCESSOR_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /** Render messages of one job in flight at once (the processors' DOCFLOW_RANGE_WINDOW). */
  DOCFLOW_RANGE_WINDOW: z.coerce.number().int().min(1).max(1000).default(4),
  /** Pages per render message (the processors' DOCFLOW_RANGE_SIZE). */
  DOCFLOW_RANGE_SIZE: z.coerce.number().int().min(1).max(1000).default(8),
  /** The processors' task timeout: a pod busy longer than this is stuck, and may be removed at scale-in. */
  DOCFLOW_TASK_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  /** Kubeconfig file (outside a cluster); in a pod the ServiceAccount's token is used. */
  KUBECONFIG: z.string().optional(),
};

export type OperatorConfig = ReturnType<typeof loadConfig>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  return parseEnv(operatorEnv, env);
}
