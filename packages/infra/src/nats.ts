import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, headers, type NatsConnection } from "@nats-io/transport-node";
import { SpanKind, injectContext, withSyncSpan } from "@docflow/telemetry";
import type { Logger } from "@docflow/telemetry";
import { JobEvent, eventSubject, type TenantId } from "@docflow/contracts";

export interface NatsOptions {
  url: string;
  name: string;
  /** Path of a credentials file (user JWT + seed); unset connects without auth. */
  credsFile?: string | undefined;
}

/** Connects and keeps reconnecting forever; state changes are logged. */
export async function connectNats(options: NatsOptions, log: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.url.split(","),
    name: options.name,
    ...(options.credsFile ? { authenticator: credsAuthenticator(readFileSync(options.credsFile)) } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    waitOnFirstConnect: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error") log.warn({ nats: s.type }, "nats connection state changed");
    }
  })();
  return nc;
}

/** Publishes a live update on the job's subject (core NATS: fire and forget). */
export function publishEvent(nc: NatsConnection, tenant: TenantId, event: JobEvent): void {
  const subject = eventSubject(tenant, event.jobId);
  // A producer span per event (messaging semantic conventions), its W3C context in the NATS
  // headers, so the trace shows every event and a subscriber can join it.
  withSyncSpan(
    `publish ${subject}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": subject,
        "docflow.job.id": event.jobId,
        "docflow.event.type": event.type,
        ...(event.type === "page.ready" ? { "docflow.page": event.page } : {}),
      },
    },
    () => {
      const h = headers();
      for (const [k, v] of Object.entries(injectContext())) h.set(k, v);
      nc.publish(subject, JSON.stringify(JobEvent.parse(event)), { headers: h });
    },
  );
}
