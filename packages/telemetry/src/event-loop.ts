import { monitorEventLoopDelay } from "node:perf_hooks";

export interface EventLoopMonitor {
  /** Event-loop delay percentiles in milliseconds since the last reset. */
  snapshot(): { p50: number; p99: number; max: number };
  reset(): void;
  stop(): void;
}

/** Samples event-loop delay with the runtime's own histogram (no timers of ours on the loop). */
export function startEventLoopMonitor(resolutionMs = 10): EventLoopMonitor {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  const ms = (ns: number) => ns / 1e6;
  return {
    snapshot: () => ({ p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) }),
    reset: () => h.reset(),
    stop: () => h.disable(),
  };
}
