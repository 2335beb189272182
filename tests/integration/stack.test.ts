/**
 * `npm start` stops everything it started, whichever signal ends it: Ctrl-C, a SIGTERM from a
 * supervisor or `kill -- -PGID`, a closing terminal's SIGHUP. Each is sent to the whole process
 * group, as a terminal or a supervisor sends it (npm then forwards it to the stack a second
 * time). Afterwards no process of the stack is left: RabbitMQ, NATS, the gateway and the
 * processor are found by their data directory (in their command line or environment), which is
 * this test's own.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort } from "../support/stack.ts";
import { eventually } from "../support/poll.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Processes whose command line or environment names `dir`: `pid command`. */
function processesOf(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
      if (cmdline.includes(dir) || environ.includes(dir)) found.push(`${pid} ${cmdline}`);
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found;
}

function until(what: string, probe: () => boolean, timeoutMs: number, output: () => string): Promise<true> {
  return eventually(what, () => probe() || undefined, { timeoutMs, context: () => `Output:\n${output().slice(-3000)}` });
}

describe("npm start", () => {
  it.each(SIGNALS)(
    "stops RabbitMQ, NATS, the gateway and the processor on %s to its whole process group",
    async (signal) => {
      const dataDir = await mkdtemp(join(tmpdir(), "docflow-stack-signal-"));
      try {
        const port = await freePort();
        // detached: a process group of its own, led by npm, as a terminal's foreground job is.
        const npm = spawn("npm", ["start"], {
          cwd: ROOT,
          detached: true,
          env: { ...process.env, DOCFLOW_PORT: String(port), DOCFLOW_DATA_DIR: dataDir, DOCFLOW_PROCESSORS: "1", DOCFLOW_BOOTSTRAP_SKIP_APT: "1" },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        npm.stdout.on("data", (d: Buffer) => (output += d.toString()));
        npm.stderr.on("data", (d: Buffer) => (output += d.toString()));
        await until(
          "the stack running",
          () => output.includes("docflow is running"),
          240_000,
          () => output,
        );

        const running = processesOf(dataDir);
        expect(
          running.some((p) => /beam\.smp/.test(p)),
          `RabbitMQ among ${running.join("\n")}`,
        ).toBe(true);
        expect(
          running.some((p) => /nats-server/.test(p)),
          `NATS among ${running.join("\n")}`,
        ).toBe(true);
        expect(running.filter((p) => /services\/(gateway|processor)\/src\/server\.ts/.test(p)).length, running.join("\n")).toBe(2);

        process.kill(-npm.pid!, signal);
        if (npm.exitCode === null && npm.signalCode === null) await once(npm, "exit");
        // npm may exit before the stack has stopped its services: the stack says when it has.
        await until(
          "the stack's last line",
          () => output.includes("docflow: stopped"),
          60_000,
          () => output,
        );
        await until(
          "no process of the stack left",
          () => processesOf(dataDir).length === 0,
          10_000,
          () => `${output}\nleft: ${processesOf(dataDir).join("\n")}`,
        );
      } finally {
        // A failed stop must not leave its processes to the next test.
        for (const p of processesOf(dataDir)) {
          try {
            process.kill(Number(p.split(" ")[0]), "SIGKILL");
          } catch {
            /* already gone */
          }
        }
        await rm(dataDir, { recursive: true, force: true });
      }
    },
    360_000,
  );
});
