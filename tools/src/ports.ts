/** Free loopback ports, for the processes and services the tools start. */
import { createServer, type Server } from "node:net";

/**
 * `count` distinct ports free on 127.0.0.1 right now: all are held open together, then released,
 * so the same port is never handed out twice by one call. Another process may still take one
 * before the caller binds it; starters that care retry (see `withRetry` in services.ts).
 */
export async function findFreePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((res, rej) => {
        server.once("error", rej);
        server.listen(0, "127.0.0.1", () => res());
      });
      const addr = server.address();
      if (addr === null || typeof addr === "string") throw new Error("unexpected server address");
      ports.push(addr.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
}

/** One port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const [port] = await findFreePorts(1);
  return port!;
}
