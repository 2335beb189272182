import { describe, expect, it } from "vitest";
import { runTool, type StdoutControl, type StdoutReader } from "./run.ts";

/** A reader that counts bytes into one reused buffer, stopping for a moment every `pauseEvery` reads. */
function counter(opts: { pauseEvery?: number; failAfterBytes?: number } = {}): StdoutReader & { bytes: number; reads: number; pauses: number; ended: boolean; aborted: boolean; sum: number } {
  const memory = Buffer.alloc(4096);
  let control: StdoutControl | undefined;
  const r = {
    bytes: 0,
    reads: 0,
    pauses: 0,
    sum: 0,
    ended: false,
    aborted: false,
    start: (c: StdoutControl) => void (control = c),
    next: () => memory,
    data(n: number): boolean {
      r.bytes += n;
      r.reads++;
      for (let i = 0; i < n; i++) r.sum += memory[i]!;
      if (opts.failAfterBytes !== undefined && r.bytes > opts.failAfterBytes) throw new Error("reader gave up");
      if (opts.pauseEvery !== undefined && r.reads % opts.pauseEvery === 0) {
        r.pauses++;
        setTimeout(() => control!.resume(), 2);
        return false;
      }
      return true;
    },
    end: async () => void (r.ended = true),
    abort: () => void (r.aborted = true),
  };
  return r;
}

describe("runTool with a stdout reader", () => {
  it("reads everything the child writes into the reader's memory, across pauses, then ends", async () => {
    const reader = counter({ pauseEvery: 3 });
    // 3 MiB of the byte 0x01 (tr turns /dev/zero's zeros into ones).
    const result = await runTool("sh", ["-c", "head -c 3145728 /dev/zero | tr '\\0' '\\1'"], { timeoutMs: 20_000, stdoutReader: reader });
    expect(result.code).toBe(0);
    expect(reader.bytes).toBe(3 * 1024 * 1024);
    expect(reader.sum).toBe(3 * 1024 * 1024);
    expect(reader.pauses).toBeGreaterThan(10);
    expect(reader.ended).toBe(true);
    expect(result.stdout.length).toBe(0);
  });

  it("kills a child that writes forever when the reader throws, and fails with the reader's error", async () => {
    const reader = counter({ failAfterBytes: 1024 * 1024 });
    const started = performance.now();
    await expect(runTool("yes", [], { timeoutMs: 20_000, stdoutReader: reader })).rejects.toThrow("reader gave up");
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(reader.aborted).toBe(true);
    expect(reader.ended).toBe(false);
  });

  it("times out a child that never writes, with the reader aborted", async () => {
    const reader = counter();
    await expect(runTool("sleep", ["30"], { timeoutMs: 300, stdoutReader: reader })).rejects.toMatchObject({ code: "processing_timeout" });
    expect(reader.aborted).toBe(true);
  });

  it("fails when the reader's end() fails (output ended too early)", async () => {
    const reader = counter();
    reader.end = async () => {
      throw new Error("ended inside image 1");
    };
    await expect(runTool("printf", ["P6"], { timeoutMs: 20_000, stdoutReader: reader })).rejects.toThrow("ended inside image 1");
  });
});
