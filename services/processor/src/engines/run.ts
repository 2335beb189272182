/**
 * Runs an engine's CLI as a child process with hard bounds: a timeout that
 * SIGKILLs the child (or its whole process group), a cap on stdout, and a cap
 * on the stderr that is kept for error messages. The CPU work happens in the
 * child; the event loop only moves bytes.
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { connect, createServer, type OnReadOpts, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
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
  if (options.signal?.aborted) throw new Error(`${command} was not started: aborted`, { cause: options.signal.reason });
  const reader = options.stdoutReader;
  // Filled in below, before the child exists (and so before any read).
  const onRead = { data: (_n: number): boolean => false };
  const sockets = reader === undefined ? undefined : await stdoutSockets({ buffer: () => reader.next(), callback: (n) => onRead.data(n) });
  const maxStdout = options.maxStdoutBytes ?? DEFAULT_MAX_STDOUT_BYTES;
  const maxStderr = options.maxStderrBytes ?? DEFAULT_MAX_STDERR_BYTES;
  const group = options.processGroup === true;

  return new Promise<RunResult>((resolve, reject) => {
    if (options.signal?.aborted) {
      sockets?.childEnd.destroy();
      sockets?.parentEnd.destroy();
      reject(new Error(`${command} was not started: aborted`, { cause: options.signal.reason }));
      return;
    }

    const limited = options.maxMemoryBytes !== undefined;
    const file = limited ? "/bin/sh" : command;
    // sh -c 'ulimit -v KiB && exec "$@"' KiB command args...: $0 is the limit, "$@" the command line.
    const argv = limited ? ["-c", 'ulimit -v "$0" && exec "$@"', String(Math.ceil(options.maxMemoryBytes! / 1024)), command, ...args] : args;
    const child = spawn(file, argv, {
      stdio: ["ignore", sockets?.childEnd ?? "pipe", "pipe"],
      detached: group,
      env: options.env ?? process.env,
      cwd: options.cwd,
      windowsHide: true,
    });
    // The child has its own copy of its end now.
    sockets?.childEnd.destroy();

    const stdoutChunks: Buffer[] = [];
    let stdoutBytes = 0;
    const stderrChunks: Buffer[] = [];
    let stderrKept = 0;
    let stderrDropped = 0;
    /** Why we killed the child, if we did. */
    let failure: Error | undefined;
    let leaderExited = false;

    const killChild = (): void => {
      if (group && child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
          return;
        } catch {
          // ESRCH: the group is gone already; fall through to the child itself.
        }
      }
      if (!leaderExited) child.kill("SIGKILL");
    };

    const fail = (error: Error): void => {
      if (failure !== undefined) return;
      failure = error;
      killChild();
      // Stop reading too (the reader may still be working on what it has).
      if (reader !== undefined && sockets !== undefined) {
        sockets.parentEnd.destroy();
        reader.abort();
      }
    };

    const timer = setTimeout(() => {
      fail(new DocflowError("processing_timeout", `Processing took longer than ${options.timeoutMs} ms and was stopped.`, {
        cause: new Error(`${command} killed after ${options.timeoutMs} ms`),
      }));
    }, Math.max(0, options.timeoutMs));

    const onAbort = (): void => {
      fail(new Error(`${command} aborted`, { cause: options.signal?.reason }));
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });

    /** Resolves when the reader has taken everything (at once when there is none), or the call failed. */
    const readerDone = new Promise<void>((resolveReader) => {
      if (reader === undefined || sockets === undefined) {
        resolveReader();
        return;
      }
      const socket = sockets.parentEnd;
      let ended = false;
      socket.once("end", () => {
        ended = true;
        socket.destroy(); // half-open: our side is not closed by the end of theirs
        reader.end().then(resolveReader, (error: unknown) => {
          fail(error instanceof Error ? error : new Error(String(error)));
          resolveReader();
        });
      });
      socket.on("error", (error: Error) => {
        if (!ended) fail(error);
      });
      // Destroyed (by fail) or broken before the end: nothing more comes.
      socket.once("close", () => {
        if (!ended) resolveReader();
      });
      onRead.data = (n) => {
        if (failure !== undefined) return false;
        try {
          return reader.data(n);
        } catch (error) {
          fail(error instanceof Error ? error : new Error(String(error)));
          return false;
        }
      };
      reader.start({ resume: () => void (failure === undefined && socket.resume()), fail });
    });
    if (reader === undefined) {
      child.stdout!.on("data", (chunk: Buffer) => {
        if (failure !== undefined) return;
        stdoutBytes += chunk.length;
        if (stdoutBytes > maxStdout) {
          fail(new Error(`${command} wrote more than ${maxStdout} bytes to stdout; killed`));
          return;
        }
        stdoutChunks.push(chunk);
      });
    }
    child.stderr!.on("data", (chunk: Buffer) => {
      const room = maxStderr - stderrKept;
      if (room > 0) {
        const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
        stderrChunks.push(kept);
        stderrKept += kept.length;
      }
      stderrDropped += Math.max(0, chunk.length - Math.max(0, room));
    });

    child.on("exit", () => {
      leaderExited = true;
      // Helpers the leader forked (soffice.bin under oosplash) must not outlive
      // it: they would keep our pipes open and keep burning CPU.
      if (group && child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // ESRCH: nothing left in the group.
        }
      }
    });

    child.once("error", (error: Error) => {
      // Spawn failure (ENOENT, EACCES, EAGAIN): environmental, retryable.
      clearTimeout(timer);
      sockets?.parentEnd.destroy();
      options.signal?.removeEventListener("abort", onAbort);
      if (failure !== undefined) {
        reject(failure);
        return;
      }
      reject(new Error(`could not run ${command}: ${error.message}`, { cause: error }));
    });

    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      void readerDone.then(() => settle(code, signal));
    });

    const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      if (failure !== undefined) {
        reject(failure);
        return;
      }
      let stderr = Buffer.concat(stderrChunks).toString("utf8");
      if (stderrDropped > 0) stderr += `\n[${stderrDropped} more bytes of stderr dropped]`;
      resolve({ code, signal, stdout: Buffer.concat(stdoutChunks), stderr, pid: child.pid });
    };
  });
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
      const childEnd = await Promise.race([
        accepted,
        new Promise<never>((_, reject) => parentEnd.once("error", reject)),
      ]);
      return { childEnd, parentEnd };
    } catch (error) {
      parentEnd.destroy();
      throw new Error(`could not connect a socket for a child's stdout: ${(error as Error).message}`, { cause: error });
    }
  } finally {
    server.close(); // removes the socket file; the accepted connection stays
  }
}
