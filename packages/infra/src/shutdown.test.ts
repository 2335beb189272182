import { describe, expect, it } from "vitest";
import type { Logger } from "@docflow/telemetry";
import { closeAll } from "./shutdown.ts";

/** A logger that keeps what it is given (the two levels closeAll uses). */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const keep = (fields: Record<string, unknown>, msg: string) => void lines.push({ ...fields, msg });
  return { log: { debug: keep, warn: keep } as unknown as Logger, lines };
}

describe("closeAll", () => {
  it("runs every step in order, goes on past one that hangs or fails, and says which", async () => {
    const { log, lines } = capture();
    const ran: string[] = [];
    const started = performance.now();
    await closeAll(
      [
        ["hangs", () => (ran.push("hangs"), new Promise(() => {}))],
        ["fails", () => (ran.push("fails"), Promise.reject(new Error("connection disconnected")))],
        ["closes", () => (ran.push("closes"), Promise.resolve())],
      ],
      log,
      50,
    );
    expect(ran).toEqual(["hangs", "fails", "closes"]);
    expect(performance.now() - started).toBeLessThan(1_000);
    const warned = lines.filter((l) => l.msg === "shutdown step did not complete; going on without it");
    expect(warned.map((l) => [l.step, l.outcome])).toEqual([
      ["hangs", "not closed within 50 ms"],
      ["fails", "failed: connection disconnected"],
    ]);
    expect(lines.find((l) => l.step === "closes")?.msg).toBe("shutdown step done");
  });
});
