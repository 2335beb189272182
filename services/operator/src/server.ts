import { createServer } from "node:http";
import { once } from "node:events";
import { JobStore } from "@docflow/infra/job-store";
import { connectNats } from "@docflow/infra/nats";
import { closeAll } from "@docflow/infra/shutdown";
import { createLogger, shutdownTelemetry } from "@docflow/telemetry";
import { BacklogReader } from "./backlog.ts";
import { loadConfig } from "./config.ts";
import { PoolController } from "./controller.ts";
import { loadKubeConfig } from "./kube.ts";
import { LeaderElector } from "./leader.ts";
import { createMetrics } from "./metrics.ts";

const log = createLogger("operator");

async function main(): Promise<void> {
  const config = loadConfig();
  const metrics = createMetrics();
  const kc = loadKubeConfig(config.KUBECONFIG);

  // The job store is opened on first use and again after a failure: NATS being down at start-up
  // makes the backlog unknown (the pools hold their replicas), not the operator crash.
  let jobs: Promise<JobStore> | undefined;
  let nats: Awaited<ReturnType<typeof connectNats>> | undefined;
  const openJobs = () => {
    jobs ??= (async () => {
      nats ??= await connectNats({ url: config.DOCFLOW_NATS_URL, name: `operator-${config.DOCFLOW_OPERATOR_POD_NAME}`, credsFile: config.DOCFLOW_NATS_CREDS }, log);
      return JobStore.open(nats, config.DOCFLOW_JOBS_BUCKET);
    })();
    jobs.catch(() => (jobs = undefined));
    return jobs;
  };
  const backlog = new BacklogReader({ amqpUrl: config.DOCFLOW_AMQP_URL, namespace: config.DOCFLOW_AMQP_NAMESPACE, jobs: openJobs }, log);
  const controller = new PoolController(kc, config, backlog, metrics, log);
  const elector = new LeaderElector(
    kc,
    {
      namespace: config.DOCFLOW_OPERATOR_NAMESPACE,
      name: config.DOCFLOW_OPERATOR_LEASE_NAME,
      identity: config.DOCFLOW_OPERATOR_POD_NAME,
      leaseSeconds: config.DOCFLOW_OPERATOR_LEASE_SECONDS,
      onStartedLeading: () => controller.startLeading(),
      onStoppedLeading: () => controller.stopLeading(),
    },
    log,
  );

  let stopping = false;
  // Ready once the caches are filled: a leader acts on what it has seen. A standby replica is
  // ready too (it is warm and takes over at once); `leader` in the answer says which one acts.
  const server = createServer(async (req, res) => {
    res.setHeader("Cache-Control", "no-store");
    const json = (code: number, body: unknown) => void res.writeHead(code, { "Content-Type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/healthz") return json(200, { status: "ok" });
    if (req.url === "/readyz") {
      const ready = !stopping && controller.synced;
      return json(ready ? 200 : 503, { status: ready ? "ready" : stopping ? "stopping" : "syncing", leader: elector.isLeader });
    }
    if (req.url === "/metrics") return void res.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(await metrics.registry.metrics());
    res.writeHead(404).end();
  });
  server.listen(config.DOCFLOW_OPERATOR_PORT, config.DOCFLOW_OPERATOR_HOST);
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : null;

  await controller.start();
  await Promise.all([controller.pools.synced, controller.deployments.synced, controller.pods.synced, controller.templates.synced]);
  elector.start();
  log.info({ port, namespace: config.DOCFLOW_OPERATOR_NAMESPACE, identity: config.DOCFLOW_OPERATOR_POD_NAME }, "operator running; electing a leader");

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: releasing the lease");
    await controller.stop();
    await elector.release();
    await closeAll(
      [
        ["rabbitmq", () => backlog.close()],
        ["nats", () => nats?.drain() ?? Promise.resolve()],
      ],
      log,
    );
    server.close();
    await shutdownTelemetry();
    log.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "operator failed to start");
  process.exit(1);
});
