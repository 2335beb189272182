import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { once } from "node:events";
import { AmqpConnection, JobStore, WorkPublisher, closeAll, connectNats, openObjectStore } from "@docflow/infra";
import { createLogger, shutdownTelemetry } from "@docflow/telemetry";
import { createApp } from "./app.ts";
import { TokenRegistry } from "./auth.ts";
import { loadConfig } from "./config.ts";
import type { AppContext } from "./context.ts";
import { createMetrics } from "./metrics.ts";
import { NatsKvLocker } from "./uploads/locker.ts";
import { createUploads } from "./uploads/tus.ts";

const log = createLogger("gateway");

async function main(): Promise<void> {
  const config = loadConfig();
  let tokens: TokenRegistry;
  if (config.DOCFLOW_DEV_TOKENS) {
    tokens = TokenRegistry.parse(config.DOCFLOW_DEV_TOKENS);
  } else {
    const generated = TokenRegistry.generate("dev");
    tokens = generated.registry;
    log.warn({ tenant: "dev" }, `DOCFLOW_DEV_TOKENS is unset; generated a token for tenant 'dev': ${generated.token}`);
  }

  // Listen before the dependencies are connected: liveness answers from the
  // start, readiness says "not ready" until the app is built, so a broker that
  // is slow to come up delays traffic instead of restarting the pod.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (req, res) => {
    const live = req.url === "/healthz";
    res.writeHead(live ? 200 : 503, { "Content-Type": live ? "application/json" : "application/problem+json", "Cache-Control": "no-store" });
    res.end(
      JSON.stringify(
        live
          ? { status: "starting" }
          : { type: "urn:docflow:problem:not_ready", title: "The service is not ready", status: 503, detail: "starting: connecting to its dependencies", code: "not_ready" },
      ),
    );
  };
  const server = createServer(
    {
      keepAliveTimeout: config.DOCFLOW_KEEP_ALIVE_TIMEOUT_MS,
      headersTimeout: config.DOCFLOW_HEADERS_TIMEOUT_MS,
      // Node insists on requestTimeout >= headersTimeout; the app's own deadline (app.ts) is the tighter one.
      requestTimeout: Math.max(config.DOCFLOW_REQUEST_TIMEOUT_MS, config.DOCFLOW_HEADERS_TIMEOUT_MS),
      // How often Node enforces the two timeouts above (its default, 30 s, would let a slowloris linger).
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(config.DOCFLOW_HEADERS_TIMEOUT_MS / 4))),
    },
    (req, res) => handle(req, res),
  );
  // Let the routes decide on `Expect: 100-continue` (Node would confirm at once).
  server.on("checkContinue", (req, res) => server.emit("request", req, res));
  server.listen(config.DOCFLOW_PORT, config.DOCFLOW_HOST);
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.DOCFLOW_PORT;
  log.info({ port }, `gateway listening on http://${config.DOCFLOW_HOST}:${port}`);

  const metrics = createMetrics();
  const store = await openObjectStore(config, log);
  const nats = await connectNats({ url: config.DOCFLOW_NATS_URL, name: "gateway", credsFile: config.DOCFLOW_NATS_CREDS }, log);
  const jobs = await JobStore.open(nats, config.DOCFLOW_JOBS_BUCKET);
  const publisher = new WorkPublisher(config.DOCFLOW_AMQP_NAMESPACE, {
    onPublish: (queue, outcome, seconds) => metrics.queuePublishDuration.observe({ messaging_destination_name: queue, outcome }, seconds),
  });
  const amqp = await AmqpConnection.open(
    { url: config.DOCFLOW_AMQP_URL, connectionName: `gateway-${process.pid}`, namespace: config.DOCFLOW_AMQP_NAMESPACE, deliveryLimit: config.DOCFLOW_DELIVERY_LIMIT, setup: publisher.setup },
    log,
  );

  const locker = await NatsKvLocker.open(nats, {
    bucket: config.DOCFLOW_UPLOAD_LOCKS_BUCKET,
    ttlMs: config.DOCFLOW_UPLOAD_LOCK_TTL_MS,
    acquireTimeoutMs: config.DOCFLOW_UPLOAD_LOCK_TTL_MS * 2,
  });
  const uploads = createUploads({ config, log, tokens, store, jobs, publisher, nats, locker, metrics });
  const cleanup = setInterval(() => {
    uploads.cleanUpExpired().then(
      (n) => n > 0 && log.info({ expired: n }, "removed expired uploads"),
      (err: unknown) => log.warn({ err }, "cleaning up expired uploads failed"),
    );
  }, config.DOCFLOW_UPLOAD_CLEANUP_INTERVAL_MS);
  cleanup.unref();

  let draining = false;
  let storeCheckedAt = 0;
  const ctx: AppContext = {
    config,
    log,
    tokens,
    store,
    jobs,
    publisher,
    nats,
    metrics,
    uploads,
    draining: () => draining,
    readiness: {
      rabbitmq: () => {
        if (!amqp.connected || !publisher.ready) throw new Error("not connected");
      },
      nats: () => {
        if (nats.isClosed() || nats.status === undefined) throw new Error("closed");
      },
      objectStore: async () => {
        // Checked at most every 5 s: readiness probes must stay cheap.
        if (Date.now() - storeCheckedAt < 5000) return;
        // Where the services create their bucket (evaluation, local), a bucket that went away (an
        // S3 server on an emptyDir was replaced) is made again, rather than the gateway staying
        // NotReady until someone restarts it.
        const ensure = config.DOCFLOW_S3_CREATE_BUCKET ? (store as { ensureBucket?: () => Promise<void> }).ensureBucket?.bind(store) : undefined;
        await (ensure ? ensure() : store.check());
        storeCheckedAt = Date.now();
      },
    },
  };

  handle = createApp(ctx);
  log.info({ storage: store.kind }, "gateway ready to serve");

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    log.info({ signal }, "draining: readiness is now false");
    const force = setTimeout(() => {
      log.error("shutdown timed out; exiting with requests still in flight");
      process.exit(1);
    }, config.DOCFLOW_SHUTDOWN_DELAY_MS + config.DOCFLOW_SHUTDOWN_TIMEOUT_MS);
    force.unref();
    await new Promise((r) => setTimeout(r, config.DOCFLOW_SHUTDOWN_DELAY_MS));
    server.close();
    server.closeIdleConnections();
    await once(server, "close").catch(() => {});
    await closeAll(
      [
        ["rabbitmq", () => amqp.close()],
        ["nats", () => nats.drain()],
      ],
      log,
    );
    log.info("stopped");
    await shutdownTelemetry();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "gateway failed to start");
  process.exit(1);
});
