import { createServer } from "node:http";
import { once } from "node:events";
import { AmqpConnection, JobStore, WorkPublisher, closeAll, connectNats, openObjectStore } from "@docflow/infra";
import { createLogger, shutdownTelemetry } from "@docflow/telemetry";
import { join } from "node:path";
import { loadConfig, retryDelays } from "./config.ts";
import { Consumers } from "./consumer.ts";
import type { ProcessorContext } from "./context.ts";
import { createMetrics } from "./metrics.ts";
import { OFFICE_DIR_PREFIX, OfficeSlots } from "./office-slots.ts";
import { SOURCE_CACHE_PREFIX, SourceCache, removeStaleCaches } from "./source-cache.ts";
import { startSweeper } from "./sweeper.ts";

const log = createLogger("processor");

async function main(): Promise<void> {
  const config = loadConfig();
  const metrics = createMetrics();
  let draining = false;
  let running: { amqp: AmqpConnection; consumers: Consumers; nats: Awaited<ReturnType<typeof connectNats>> } | undefined = undefined;
  // Probes and metrics listen before the dependencies are connected (as the gateway does):
  // liveness answers from the start and readiness stays false until the consumers run, so a
  // dependency that comes up later (any order on Kubernetes) delays work instead of restarting
  // the pod. This loop only waits on child processes and I/O, so it always answers.
  const probes = createServer(async (req, res) => {
    res.setHeader("Cache-Control", "no-store");
    if (req.url === "/healthz") return void res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ status: running ? "ok" : "starting" }));
    if (req.url === "/readyz") {
      const ready = !draining && running !== undefined && running.amqp.connected && running.consumers.consuming && !running.nats.isClosed();
      return void res
        .writeHead(ready ? 200 : 503, { "Content-Type": "application/json" })
        .end(JSON.stringify({ status: ready ? "ready" : running ? "not ready" : "starting", inFlight: running?.consumers.inFlight ?? 0 }));
    }
    if (req.url === "/metrics") return void res.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(await metrics.registry.metrics());
    res.writeHead(404).end();
  });
  probes.listen(config.DOCFLOW_PROCESSOR_PORT, config.DOCFLOW_PROCESSOR_HOST);
  await once(probes, "listening");
  const address = probes.address();
  const port = typeof address === "object" && address ? address.port : null;

  const store = await openObjectStore(config, log);
  const nats = await connectNats({ url: config.DOCFLOW_NATS_URL, name: "processor", credsFile: config.DOCFLOW_NATS_CREDS }, log);
  const jobs = await JobStore.open(nats, config.DOCFLOW_JOBS_BUCKET);
  const publisher = new WorkPublisher(config.DOCFLOW_AMQP_NAMESPACE, {
    onPublish: (queue, outcome, seconds) => metrics.queuePublishDuration.observe({ messaging_destination_name: queue, outcome }, seconds),
  });
  const office = new OfficeSlots(join(config.DOCFLOW_WORK_DIR, `${OFFICE_DIR_PREFIX}${process.pid}`), config.DOCFLOW_CONVERT_PREFETCH);
  // Per process: several processors may share one work dir (local mode, or a container restarted
  // in the same pod); a dead one's source cache and LibreOffice profiles are removed.
  await removeStaleCaches(config.DOCFLOW_WORK_DIR, SOURCE_CACHE_PREFIX);
  await removeStaleCaches(config.DOCFLOW_WORK_DIR, OFFICE_DIR_PREFIX);
  await office.open();
  const sources = new SourceCache(store, {
    dir: join(config.DOCFLOW_WORK_DIR, `${SOURCE_CACHE_PREFIX}${process.pid}`),
    maxBytes: config.DOCFLOW_SOURCE_CACHE_BYTES,
    idleMs: config.DOCFLOW_SOURCE_CACHE_IDLE_MS,
  });
  await sources.open();
  const ctx: ProcessorContext = { config, log, store, jobs, publisher, nats, metrics, office, sources };
  const consumers = new Consumers(ctx);
  const amqp = await AmqpConnection.open(
    {
      url: config.DOCFLOW_AMQP_URL,
      connectionName: `processor-${process.pid}`,
      namespace: config.DOCFLOW_AMQP_NAMESPACE,
      deliveryLimit: config.DOCFLOW_DELIVERY_LIMIT,
      retryDelaysMs: retryDelays(config),
      setup: async (model) => {
        await publisher.setup(model);
        await consumers.setup(model);
      },
    },
    log,
  );
  const stopSweeper = startSweeper(ctx);
  running = { amqp, consumers, nats };
  log.info({ port, concurrency: config.DOCFLOW_PROCESSOR_CONCURRENCY }, "processor consuming");

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    log.info({ signal, inFlight: consumers.inFlight }, "draining: no new tasks, finishing in-flight ones");
    stopSweeper();
    await consumers.stop(config.DOCFLOW_SHUTDOWN_TIMEOUT_MS);
    await closeAll(
      [
        ["office", () => office.dispose()],
        ["sources", () => sources.dispose()],
        ["rabbitmq", () => amqp.close()],
        ["nats", () => nats.drain()],
      ],
      log,
    );
    probes.close();
    log.info("stopped");
    await shutdownTelemetry();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "processor failed to start");
  process.exit(1);
});
