import { appendFile, mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3ObjectStore } from "@docflow/infra";

export { seededRandom as random } from "@docflow/tools/random";

/** Every key under `prefix`. */
export async function listKeys(store: S3ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/**
 * The figures of one fault, printed (`[fault] <name> {...}`) and appended as a JSON line to
 * DOCFLOW_FAULT_FIGURES (default test-results/faults.jsonl), from which docs/reliability.md's
 * table is written.
 */
export async function reportFigures(fault: string, figures: Record<string, number | string>): Promise<void> {
  const line = { fault, at: new Date().toISOString(), ...figures };
  console.log(`[fault] ${fault} ${JSON.stringify(figures)}`);
  const file = resolve(process.env.DOCFLOW_FAULT_FIGURES ?? resolve(import.meta.dirname, "../../test-results/faults.jsonl"));
  await mkdir(dirname(file), { recursive: true });
  await appendFile(file, `${JSON.stringify(line)}\n`);
}
