/**
 * A control for event-loop delay figures on a shared machine: a Node process that does nothing
 * but measure its own timer drift the way `registerEventLoopMetrics` does (a 20 ms interval; how
 * late it runs). It only waits, so whatever delay it sees comes from the machine (CPU starved by
 * other processes), not from its own work. Run with `fork()`; message "cut" answers with the
 * figures since the previous cut.
 */
if (process.send) {
  const intervalMs = 20;
  let samples: number[] = [];
  let expected = performance.now() + intervalMs;
  setInterval(() => {
    const now = performance.now();
    samples.push(Math.max(0, now - expected));
    expected = now + intervalMs;
  }, intervalMs);
  process.on("message", (m) => {
    if (m !== "cut") return;
    const s = samples.sort((a, b) => a - b);
    samples = [];
    const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]! : Number.NaN);
    process.send!({ n: s.length, p50: at(0.5), p99: at(0.99), max: s.at(-1) ?? Number.NaN, above50: s.length ? s.filter((x) => x > 50).length / s.length : Number.NaN });
  });
  process.on("disconnect", () => process.exit(0));
}
