import type { Logger } from "@docflow/telemetry";

/** How long one close step of a shutdown may take before the process goes on without it. */
export const CLOSE_STEP_MS = 5_000;

/**
 * Runs a shutdown's close steps in order (office slots, caches, the AMQP connection, a NATS
 * drain...), each given at most `eachMs`. A dependency that is gone, such as a broker deleted in
 * the same `helm uninstall` or namespace deletion, must not hold a pod until its grace period
 * ends: work in flight is settled before these steps, and what they would flush is lost with the
 * connection anyway. A step that fails or runs out of time is logged, never thrown.
 */
export async function closeAll(steps: readonly (readonly [name: string, close: () => Promise<unknown>])[], log: Logger, eachMs = CLOSE_STEP_MS): Promise<void> {
  for (const [name, close] of steps) {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      close().then(
        () => "closed",
        (err: unknown) => `failed: ${err instanceof Error ? err.message : String(err)}`,
      ),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`not closed within ${eachMs} ms`), eachMs);
      }),
    ]);
    clearTimeout(timer);
    const ms = Math.round(performance.now() - started);
    if (outcome === "closed") log.debug({ step: name, ms }, "shutdown step done");
    else log.warn({ step: name, ms, outcome }, "shutdown step did not complete; going on without it");
  }
}
