/**
 * A test build's hook, loaded with `--import` into a service under test (never
 * in production): SIGUSR2 makes the process hold its event loop for
 * `DOCFLOW_TEST_BLOCK_MS` (default 1200 ms) with synchronous work, as a
 * CPU-bound handler or a monkey-patched loop would.
 */
process.on("SIGUSR2", () => {
  const until = Date.now() + Number(process.env.DOCFLOW_TEST_BLOCK_MS ?? 1200);
  while (Date.now() < until) {
    // busy: nothing else runs on this loop meanwhile
  }
});
