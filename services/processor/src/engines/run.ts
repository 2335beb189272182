/**
 * Runs an engine's CLI as a child process with hard bounds: a timeout that
 * SIGKILLs the child (or its whole process group), a cap on stdout, and a cap
 * on the stderr that is kept for error messages. The CPU work happens in the
 * child; the event loop only moves bytes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { connect, createServer, type OnReadOpts, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { DocflowError } from "@docflow/contracts";
import { withSpan } from "@docflow/telemetry";

export interface RunOptions {
  /** Kill the child (SIGKILL) after this many milliseconds; the call fails with `processing_timeout`. */
  timeoutMs: number;
  /** Aborting kills the child; the call fails with a plain (retryable) Error, e.g. on shutdown. */
  signal?: AbortSignal | undefined;
  /** Upper bound on stdout; beyond it the child is killed and the call fails (plain Error). */
  maxStdoutBytes?: number | undefined;
  /** How much of stderr is kept (the head; the rest is drained and counted). */
  maxStderrBytes?: number | undefined;
  /**
   * Start the child as the leader of its own process group and kill the whole
   * group on timeout/abort, and once the leader has exited (for tools such as
   * soffice that fork helpers which would otherwise outlive it).
   */
  processGroup?: boolean | undefined;
  /**
   * Read stdout straight into the reader's memory instead of buffering it
   * (with backpressure: a reader that stops reading pauses the child);
   * `maxStdoutBytes` does not apply and `RunResult.stdout` is empty. The call
   * settles once the reader's `end()` has; a reader error kills the child and
   * fails the call with that error.
   */
  stdoutReader?: StdoutReader | undefined;
  /**
   * Cap on the child's address space (`ulimit -v`, set by `/bin/sh` before it
   * execs the command, so the pid, process group and signals are the
   * command's own). An allocation beyond it fails inside the child, which then
   * exits with an error instead of taking the pod's memory.
   */
  maxMemoryBytes?: number | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  cwd?: string | undefined;
}

/**
 * Takes a child's stdout without a buffer per read: the child writes to a Unix
 * socket whose reads land in memory the reader hands out (`next`), e.g. the
 * raw page being received. A pipe's stream allocates a new 64 KiB buffer per
 * read instead: for pdftoppm's 6 MB per page, gigabytes of short-lived
 * buffers outside V8's heap, which made V8 run a full garbage collection
 * every few pages.
 */
export interface StdoutReader {
  /** Called once, before any read, with the controls of this call. */
  start(control: StdoutControl): void;
  /** The memory the next read fills (never empty); asked before every read. */
  next(): Uint8Array;
  /**
   * `n` bytes were read into the start of the memory the last `next()` gave.
   * Returns false to stop reading (the child then waits on a full socket)
   * until the reader calls `control.resume()`. Throwing fails the call.
   */
  data(n: number): boolean;
  /** stdout ended; resolves once what was read has been dealt with; a rejection fails the call. */
  end(): Promise<void>;
  /** The call failed (the child is being killed): let go of what is pending. */
  abort(): void;
}

export interface StdoutControl {
  /** Reads again after `data()` returned false. */
  resume(): void;
  /** Fails the call with `error` and kills the child. */
  fail(error: Error): void;
}

export interface RunResult {
  /** Exit code, or null when the child was ended by a signal it did not get from us. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  /** The head of stderr (at most `maxStderrBytes`), decoded as UTF-8. */
  stderr: string;
  /** The child's pid (for logs). */
  pid: number | undefined;
}

export const DEFAULT_MAX_STDOUT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_STDERR_BYTES = 16 * 1024;

/**
 * Runs `command args` and resolves when the child has exited and its pipes are
 * closed, whatever the exit code (callers map codes and stderr to errors).
 * Rejects with `DocflowError("processing_timeout")` on timeout, and with a plain
 * Error when the command cannot be started, stdout exceeds its cap, or the call
 * is aborted. On every rejection the child has already been SIGKILLed and
 * reaped: nothing is left running.
 */
export function runTool(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  // One span per child process: a trace shows which tool took the time.
  return withSpan(`exec ${basename(command)}`, { attributes: { "process.executable.name": basename(command), "process.command_args": [command, ...args] } }, async (span) => {
    const result = await runChild(command, args, options);
    span.setAttributes({ "process.exit.code": result.code ?? -1, "process.pid": result.pid ?? -1 });
    return result;
  });
}

async function runChild(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  if (options.signal?.aborted) throw notStarted(command, options.signal);
  const reader = options.stdoutReader;
  // Set by `readStdoutInto`, before any read.
  const onRead = { data: (_n: number): boolean => false };
  const sockets = reader === undefined ? undefined : await stdoutSockets({ buffer: () => reader.next(), callback: (n) => onRead.data(n) });
  if (options.signal?.aborted) {
    sockets?.childEnd.destroy();
    sockets?.parentEnd.destroy();
    throw notStarted(command, options.signal);
  }
  const { file, argv } = commandLine(command, args, options.maxMemoryBytes);
  const child = spawn(file, argv, {
    stdio: ["ignore", sockets?.childEnd ?? "pipe", "pipe"],
    detached: options.processGroup === true,
    env: options.env ?? process.env,
    cwd: options.cwd,
    windowsHide: true,
  });
  // The child has its own copy of its end now.
  sockets?.childEnd.destroy();
  return superviseChild(child, command, options, reader === undefined || sockets === undefined ? undefined : { reader, socket: sockets.parentEnd, onRead });
}

function notStarted(command: string, signal: AbortSignal): Error {
  return new Error(`${command} was not started: aborted`, { cause: signal.reason });
}

/**
 * The file to spawn for `command args`: the command itself, or with a memory
 * cap `/bin/sh`, which sets `ulimit -v` and then execs the command (so the pid,
 * process group and signals are the command's own).
 */
export function commandLine(command: string, args: readonly string[], maxMemoryBytes: number | undefined): { file: string; argv: readonly string[] } {
  if (maxMemoryBytes === undefined) return { file: command, argv: args };
  // sh -c 'ulimit -v KiB && exec "$@"' KiB command args...: $0 is the limit, "$@" the command line.
  return { file: "/bin/sh", argv: ["-c", 'ulimit -v "$0" && exec "$@"', String(Math.ceil(maxMemoryBytes / 1024)), command, ...args] };
}

/** A child's stdout going straight into a reader's memory (see `StdoutReader`). */
interface ReaderStdout {
  reader: StdoutReader;
  /** Our end of the socket the child writes to. */
  socket: Socket;
  /** What the socket calls with each read's byte count; `readStdoutInto` sets it. */
  onRead: { data(n: number): boolean };
}

/** How the parts of one call stop it: the first failure wins, kills the child and stops the reader. */
interface CallFailure {
  fail(error: Error): void;
  failed(): boolean;
}

/**
 * Watches a spawned child to its end: the deadline, the abort signal, stdout
 * (buffered under its cap, or into the reader), the head of stderr. Resolves
 * once the child has exited, its pipes have closed and the reader (if any) is
 * done; rejects with the first failure, after the child was killed and reaped.
 */
function superviseChild(child: ChildProcess, command: string, options: RunOptions, stdout: ReaderStdout | undefined): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const kill = killerOf(child, options.processGroup === true);
    /** Why we killed the child, if we did. */
    let failure: Error | undefined;
    const call: CallFailure = {
      fail(error) {
        if (failure !== undefined) return;
        failure = error;
        kill();
        // Stop reading too (the reader may still be working on what it has).
        if (stdout !== undefined) {
          stdout.socket.destroy();
          stdout.reader.abort();
        }
      },
      failed: () => failure !== undefined,
    };
    const stopWatching = failOnDeadlineOrAbort(command, options, call);
    const readerDone = stdout === undefined ? Promise.resolve() : readStdoutInto(stdout, call);
    const stdoutBytes = stdout === undefined ? bufferStdout(child.stdout!, command, options.maxStdoutBytes ?? DEFAULT_MAX_STDOUT_BYTES, call) : () => Buffer.alloc(0);
    const stderr = new StderrHead(options.maxStderrBytes ?? DEFAULT_MAX_STDERR_BYTES);
    child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));

    child.once("error", (error: Error) => {
      // Spawn failure (ENOENT, EACCES, EAGAIN): environmental, retryable.
      stopWatching();
      stdout?.socket.destroy();
      reject(failure ?? new Error(`could not run ${command}: ${error.message}`, { cause: error }));
    });
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      void readerDone.then(() => {
        stopWatching();
        if (failure !== undefined) reject(failure);
        else resolve({ code, signal, stdout: stdoutBytes(), stderr: stderr.text(), pid: child.pid });
      });
    });
  });
}

/**
 * Returns what SIGKILLs the child, or with `group` its whole process group;
 * the child alone only while it has not exited (its pid may be reused after).
 * With `group`, whatever is left in the group is killed once the leader exits.
 */
function killerOf(child: ChildProcess, group: boolean): () => void {
  let leaderExited = false;
  const killGroup = (): boolean => {
    if (!group || child.pid === undefined) return false;
    try {
      process.kill(-child.pid, "SIGKILL");
      return true;
    } catch {
      return false; // ESRCH: nothing left in the group.
    }
  };
  child.on("exit", () => {
    leaderExited = true;
    // Helpers the leader forked (soffice.bin under oosplash) must not outlive
    // it: they would keep our pipes open and keep burning CPU.
    killGroup();
  });
  return () => {
    // The group may be gone already; then the child itself, if it still runs.
    if (!killGroup() && !leaderExited) child.kill("SIGKILL");
  };
}

/** Fails the call after `timeoutMs` (`processing_timeout`) or on abort (plain Error); returns what stops both. */
function failOnDeadlineOrAbort(command: string, options: RunOptions, call: CallFailure): () => void {
  const timer = setTimeout(
    () => {
      call.fail(
        new DocflowError("processing_timeout", `Processing took longer than ${options.timeoutMs} ms and was stopped.`, {
          cause: new Error(`${command} killed after ${options.timeoutMs} ms`),
        }),
      );
    },
    Math.max(0, options.timeoutMs),
  );
  const onAbort = (): void => call.fail(new Error(`${command} aborted`, { cause: options.signal?.reason }));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  };
}

/** Collects stdout up to `max` bytes (beyond it the call fails); returns what gives the bytes collected. */
function bufferStdout(stream: Readable, command: string, max: number, call: CallFailure): () => Buffer {
  const chunks: Buffer[] = [];
  let bytes = 0;
  stream.on("data", (chunk: Buffer) => {
    if (call.failed()) return;
    bytes += chunk.length;
    if (bytes > max) {
      call.fail(new Error(`${command} wrote more than ${max} bytes to stdout; killed`));
      return;
    }
    chunks.push(chunk);
  });
  return () => Buffer.concat(chunks);
}

/** Hands stdout to the reader; resolves when the reader has taken everything, or the call failed. */
function readStdoutInto({ reader, socket, onRead }: ReaderStdout, call: CallFailure): Promise<void> {
  const fail = (error: unknown): void => call.fail(error instanceof Error ? error : new Error(String(error)));
  return new Promise<void>((resolve) => {
    let ended = false;
    socket.once("end", () => {
      ended = true;
      socket.destroy(); // half-open: our side is not closed by the end of theirs
      reader.end().then(resolve, (error: unknown) => {
        fail(error);
        resolve();
      });
    });
    socket.on("error", (error: Error) => {
      if (!ended) call.fail(error);
    });
    // Destroyed (by fail) or broken before the end: nothing more comes.
    socket.once("close", () => {
      if (!ended) resolve();
    });
    onRead.data = (n) => {
      if (call.failed()) return false;
      try {
        return reader.data(n);
      } catch (error) {
        fail(error);
        return false;
      }
    };
    reader.start({ resume: () => void (!call.failed() && socket.resume()), fail: call.fail });
  });
}

/** The head of a stream (at most `max` bytes) and a count of the bytes dropped after it. */
export class StderrHead {
  readonly #max: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #dropped = 0;

  constructor(max: number) {
    this.#max = max;
  }

  push(chunk: Buffer): void {
    const room = this.#max - this.#kept;
    if (room > 0) {
      const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.#chunks.push(kept);
      this.#kept += kept.length;
    }
    this.#dropped += Math.max(0, chunk.length - Math.max(0, room));
  }

  /** The head as UTF-8, with a last line saying how many bytes were dropped, if any were. */
  text(): string {
    const head = Buffer.concat(this.#chunks).toString("utf8");
    return this.#dropped > 0 ? `${head}\n[${this.#dropped} more bytes of stderr dropped]` : head;
  }
}

/** A plain Error for a tool that failed for a reason we cannot pin on the document. */
export function toolError(command: string, result: RunResult): Error {
  const how = result.code !== null ? `exit code ${result.code}` : `signal ${result.signal ?? "?"}`;
  const stderr = result.stderr.trim();
  return new Error(`${command} failed (${how})${stderr === "" ? "" : `: ${stderr.slice(0, 2000)}`}`);
}

let socketDir: Promise<string> | undefined;
let socketSeq = 0;

/** This process's private directory (mode 0700, from mkdtemp) for the sockets children write their stdout to. */
function stdoutSocketDir(): Promise<string> {
  socketDir ??= mkdtemp(join(tmpdir(), "docflow-stdout-")).then(
    (dir) => {
      // Empty but for the socket of a child being started; gone with the process.
      process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    (error: unknown) => {
      socketDir = undefined; // try again next time (e.g. once /tmp has room)
      throw error;
    },
  );
  return socketDir;
}

/**
 * A connected pair of Unix stream sockets: `childEnd` to give a child as its
 * stdout, `parentEnd` reading with `onread` (into the reader's memory). The
 * listening socket exists only until its one connection is accepted, in a
 * directory only this user can enter.
 */
async function stdoutSockets(onread: OnReadOpts): Promise<{ childEnd: Socket; parentEnd: Socket }> {
  const path = join(await stdoutSocketDir(), `${socketSeq++}.sock`);
  const server = createServer({ pauseOnConnect: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
    // Half-open: nothing is ever written to the child, and its end closing is all we wait for.
    const parentEnd = connect({ path, onread, allowHalfOpen: true });
    try {
      const childEnd = await Promise.race([accepted, new Promise<never>((_, reject) => parentEnd.once("error", reject))]);
      return { childEnd, parentEnd };
    } catch (error) {
      parentEnd.destroy();
      throw new Error(`could not connect a socket for a child's stdout: ${(error as Error).message}`, { cause: error });
    }
  } finally {
    server.close(); // removes the socket file; the accepted connection stays
  }
}
