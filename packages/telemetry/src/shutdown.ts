/** Flushes and stops the SDK started by `register.ts`, if any. Call last in a graceful shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  const sdk = (globalThis as { [key: symbol]: { shutdown(): Promise<void> } | undefined })[Symbol.for("docflow.telemetry.sdk")];
  await sdk?.shutdown().catch(() => {});
}
