import { describe, expect, it } from "vitest";
import { webSocketUrl } from "@/live/natsTransport";

describe("webSocketUrl", () => {
  it("keeps a ws:// or wss:// URL the gateway answered", () => {
    expect(webSocketUrl("wss://nats.example.com/ws", "https://app.example.com/jobs")).toBe("wss://nats.example.com/ws");
    expect(webSocketUrl("ws://127.0.0.1:8080", "http://localhost:5173/")).toBe("ws://127.0.0.1:8080");
  });

  it("resolves a path on the app's own host, wss behind https", () => {
    expect(webSocketUrl("/nats", "https://docflow.example.com/jobs/123")).toBe("wss://docflow.example.com/nats");
    expect(webSocketUrl("/nats", "http://127.0.0.1:8480/")).toBe("ws://127.0.0.1:8480/nats");
  });
});
