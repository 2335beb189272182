import { launchService, type ServiceProcess } from "@docflow/tools/launch";
import { freePort } from "@docflow/tools/ports";
import type { Stack } from "./stack.ts";

/** A minimal tus 1.0.0 client over fetch, for tests that need control over every request. */
export class TusClient {
  readonly token: string;

  constructor(token: string) {
    this.token = token;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, "tus-resumable": "1.0.0", ...extra };
  }

  /** POST: creates an upload and returns its absolute URL on `baseUrl`. */
  async create(baseUrl: string, size: number, metadata: Record<string, string> = {}, body?: Buffer): Promise<{ res: Response; location: string }> {
    const meta = Object.entries(metadata)
      .map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`)
      .join(",");
    const res = await fetch(`${baseUrl}/v1/uploads`, {
      method: "POST",
      headers: this.headers({ "upload-length": String(size), ...(meta ? { "upload-metadata": meta } : {}), ...(body ? { "content-type": "application/offset+octet-stream" } : {}) }),
      ...(body ? { body: new Uint8Array(body) } : {}),
    });
    return { res, location: res.headers.get("location") ?? "" };
  }

  patch(baseUrl: string, location: string, offset: number, body: Buffer | ReadableStream<Uint8Array>): Promise<Response> {
    return fetch(`${baseUrl}${location}`, {
      method: "PATCH",
      headers: this.headers({ "upload-offset": String(offset), "content-type": "application/offset+octet-stream" }),
      body: body instanceof ReadableStream ? body : new Uint8Array(body),
      ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
    } as RequestInit);
  }

  async offset(baseUrl: string, location: string): Promise<{ status: number; offset: number }> {
    const res = await fetch(`${baseUrl}${location}`, { method: "HEAD", headers: this.headers() });
    return { status: res.status, offset: Number(res.headers.get("upload-offset") ?? -1) };
  }
}

export interface Gateway {
  url: string;
  process: ServiceProcess;
  logs: () => string;
  /** `signal` (SIGTERM), then SIGKILL after 20 s. */
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

/** One more gateway process on the stack's services (a second replica, or one with other settings). */
export async function launchGateway(stack: Stack, env: Record<string, string> = {}): Promise<Gateway> {
  const port = await freePort();
  const gateway = launchService("gateway", { env: { ...stack.env, DOCFLOW_PORT: String(port), ...env } });
  const url = `http://127.0.0.1:${port}`;
  const stop = (signal: NodeJS.Signals = "SIGTERM") => gateway.stop({ signal });
  try {
    await gateway.waitReady(`${url}/readyz`, 30_000);
  } catch (err) {
    await stop("SIGKILL");
    throw err;
  }
  return { url, process: gateway, logs: () => gateway.logs(), stop };
}
