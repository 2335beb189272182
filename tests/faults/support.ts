import { appendFile, mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3ObjectStore } from "@docflow/infra";

/** A small seeded PRNG (mulberry32): the same seed replays the same faults at the same moments. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
