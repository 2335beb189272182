import { describe, expect, it } from "vitest";
import { DocflowError } from "@docflow/contracts";
import { processesMentioning, rejection } from "../../test/support.ts";
import { StderrHead, commandLine, runTool, type StdoutControl, type StdoutReader } from "./run.ts";

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

describe("runTool", () => {
  it("resolves with the exit code, stdout and stderr, whatever the code", async () => {
    const result = await runTool("sh", ["-c", "printf out; printf err >&2; exit 3"], { timeoutMs: 20_000 });
    expect(result).toMatchObject({ code: 3, signal: null, stderr: "err" });
    expect(result.stdout.toString("utf8")).toBe("out");
    expect(result.pid).toBeGreaterThan(0);
  });

  it("keeps the head of stderr and says how much was dropped", async () => {
    const result = await runTool("sh", ["-c", "head -c 5000 /dev/zero | tr '\\0' 'e' >&2"], { timeoutMs: 20_000, maxStderrBytes: 1000 });
    expect(result.stderr).toBe(`${"e".repeat(1000)}\n[4000 more bytes of stderr dropped]`);
  });

  it("kills a child whose stdout exceeds the cap, with a plain error", async () => {
    const error = await rejection(runTool("yes", [], { timeoutMs: 20_000, maxStdoutBytes: 64 * 1024 }));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DocflowError);
    expect((error as Error).message).toBe("yes wrote more than 65536 bytes to stdout; killed");
  });

  it("caps the child's address space, running it as the command itself", async () => {
    const result = await runTool("sh", ["-c", 'ulimit -v; echo "$0"'], { timeoutMs: 20_000, maxMemoryBytes: 256 * 1024 * 1024 + 1 });
    expect(result.stdout.toString("utf8")).toBe(`${256 * 1024 + 1}\nsh\n`);
  });

  it("times out with processing_timeout, and fails with a plain error when aborted or not startable", async () => {
    await expect(runTool("sleep", ["30"], { timeoutMs: 100 })).rejects.toMatchObject({ code: "processing_timeout" });
    const controller = new AbortController();
    const pending = runTool("sleep", ["30"], { timeoutMs: 20_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("shutting down")), 50);
    const aborted = await rejection(pending);
    expect(aborted).not.toBeInstanceOf(DocflowError);
    expect((aborted as Error).message).toBe("sleep aborted");
    await expect(runTool("sleep", ["30"], { timeoutMs: 20_000, signal: controller.signal })).rejects.toThrow("sleep was not started: aborted");
    await expect(runTool("/nonexistent/tool", [], { timeoutMs: 20_000 })).rejects.toThrow("could not run /nonexistent/tool: spawn /nonexistent/tool ENOENT");
  });

  it("kills the whole process group: no helper outlives its leader", async () => {
    const marker = `docflow-run-test-${process.pid}-${Date.now()}`;
    // The leader forks a helper (a subshell, its command line the leader's) that would sleep on, then exits at once.
    const result = await runTool("sh", ["-c", `(sleep 30; echo ${marker}) & exit 0`], { timeoutMs: 20_000, processGroup: true });
    expect(result.code).toBe(0);
    expect(await processesMentioning(marker)).toEqual([]);
  });
});

describe("commandLine", () => {
  it("runs the command itself without a memory cap", () => {
    expect(commandLine("pdftoppm", ["-r", "150", "a b.pdf"], undefined)).toEqual({ file: "pdftoppm", argv: ["-r", "150", "a b.pdf"] });
  });

  it("with a cap, has sh set ulimit -v in KiB (rounded up) and exec the command with its arguments untouched", () => {
    expect(commandLine("pdftoppm", ["-r", "150", "a b.pdf"], 1024 * 1024 + 1)).toEqual({
      file: "/bin/sh",
      argv: ["-c", 'ulimit -v "$0" && exec "$@"', "1025", "pdftoppm", "-r", "150", "a b.pdf"],
    });
  });
});

describe("StderrHead", () => {
  it("keeps everything up to its size", () => {
    const head = new StderrHead(10);
    head.push(Buffer.from("Syntax "));
    head.push(Buffer.from("Err"));
    expect(head.text()).toBe("Syntax Err");
  });

  it("cuts the chunk that crosses its size and counts every byte after it", () => {
    const head = new StderrHead(10);
    head.push(Buffer.from("Syntax Error: x"));
    head.push(Buffer.from("more"));
    expect(head.text()).toBe("Syntax Err\n[9 more bytes of stderr dropped]");
  });

  it("keeps nothing with size 0", () => {
    const head = new StderrHead(0);
    head.push(Buffer.from("abc"));
    expect(head.text()).toBe("\n[3 more bytes of stderr dropped]");
  });
});
