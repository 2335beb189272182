/**
 * What a processor pod says about itself on `/metrics` (Prometheus text format): the tasks it
 * holds now and the pages it has done since it started. The operator reads it from each pod of
 * a pool at every decision; a pod that does not answer in time counts as unknown (protected at
 * scale-in like a busy one).
 */
export interface ProcessorSample {
  inFlight: number;
  pagesTotal: number;
  redeliveredTotal: number;
}

const WANTED = {
  docflow_tasks_in_flight: "inFlight",
  docflow_pages_processed_total: "pagesTotal",
  docflow_tasks_redelivered_total: "redeliveredTotal",
} as const;

/** Sums each wanted metric's samples (all label sets) in a Prometheus text exposition. */
export function parseProcessorMetrics(text: string): ProcessorSample {
  const sample: ProcessorSample = { inFlight: 0, pagesTotal: 0, redeliveredTotal: 0 };
  let seen = false;
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue;
    const name = line.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)?.[0];
    if (!name || !(name in WANTED)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isFinite(value)) continue;
    sample[WANTED[name as keyof typeof WANTED]] += value;
    if (name === "docflow_tasks_in_flight") seen = true;
  }
  if (!seen) throw new Error("docflow_tasks_in_flight missing: not a docflow processor's /metrics");
  return sample;
}

export async function readProcessor(podIP: string, port: number, timeoutMs = 2000): Promise<ProcessorSample> {
  const host = podIP.includes(":") ? `[${podIP}]` : podIP;
  const res = await fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return parseProcessorMetrics(await res.text());
}
