import { jwtAuthenticator, wsconnect } from "@nats-io/nats-core";
import type { RealtimeCredentials } from "@docflow/contracts";

/** One open NATS WebSocket connection with its subscription. */
export interface LiveConnection {
  /** Resolves when the connection is gone (with the error, if it failed). */
  readonly closed: Promise<Error | null>;
  /** Closes on purpose. */
  close(): Promise<void>;
}

/**
 * The NATS WebSocket URL to dial: the gateway answers a `ws(s)://` URL, or a path on the app's own
 * host (the evaluation install's `/nats`), which is resolved against the page: https gives wss.
 */
export function webSocketUrl(url: string, page: string): string {
  if (/^wss?:\/\//.test(url)) return url;
  const resolved = new URL(url, page);
  resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
  return resolved.toString();
}

/**
 * Connects to NATS over WebSocket with the short-lived bearer JWT the gateway
 * minted and subscribes to the tenant's event subject. The client's own
 * reconnect is off: a reconnect needs fresh credentials, which the live store
 * fetches before calling this again.
 */
export async function openLiveConnection(credentials: RealtimeCredentials, onMessage: (data: string) => void): Promise<LiveConnection> {
  const connection = await wsconnect({
    servers: webSocketUrl(credentials.url, window.location.href),
    authenticator: jwtAuthenticator(credentials.jwt),
    name: "docflow-web",
    reconnect: false,
    timeout: 10_000,
  });
  connection.subscribe(credentials.subject, {
    callback: (error, message) => {
      if (!error) onMessage(message.string());
    },
  });
  return {
    closed: connection.closed().then((error) => error ?? null),
    close: () => connection.close(),
  };
}
