import { z } from "zod";

/** Environment shared by the gateway and the processor. Defaults suit the local stack. */
export const sharedEnv = {
  /** RabbitMQ URL (credentials included). */
  DOCFLOW_AMQP_URL: z.string().url().default("amqp://guest:guest@127.0.0.1:5672"),
  /** Prefix of RabbitMQ queue and exchange names (several installs or test runs can share a broker). */
  DOCFLOW_AMQP_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .default("docflow"),
  /** NATS URL, comma-separated for several servers. */
  DOCFLOW_NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  /** Path of the services' NATS credentials file (a user JWT and its seed; decentralised auth). */
  DOCFLOW_NATS_CREDS: z.string().optional(),
  /** JetStream KV bucket holding job records. */
  DOCFLOW_JOBS_BUCKET: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default("docflow-jobs"),
  /** How many times a work message is delivered before it is dead-lettered and its job failed. */
  DOCFLOW_DELIVERY_LIMIT: z.coerce.number().int().min(1).max(100).default(3),
  /** Object store driver: `fs` (a directory, single machine) or `s3`. */
  DOCFLOW_STORAGE: z.enum(["fs", "s3"]).default("fs"),
  /** Root of local state; the fs object store lives in `<dir>/objects`. */
  DOCFLOW_DATA_DIR: z.string().default(".docflow"),
  DOCFLOW_S3_BUCKET: z.string().default("docflow"),
  /** Endpoint of an S3-compatible server; unset for AWS S3. */
  DOCFLOW_S3_ENDPOINT: z.string().url().optional(),
  /** Create the bucket at start-up if it is missing (local and test setups). */
  DOCFLOW_S3_CREATE_BUCKET: z.stringbool().default(false),
  AWS_REGION: z.string().default("us-east-1"),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
};

/**
 * Parses the environment once, failing fast with every offending variable named.
 */
export function parseEnv<T extends z.ZodRawShape>(shape: T, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<T>> {
  const result = z.object(shape).safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join("\n")}`);
  }
  return result.data;
}
