/**
 * A CPU budget for a process and everything it spawns, enforced the way the kubelet enforces a
 * container's `resources.limits.cpu`: a cgroup with a CFS quota (`cpu.max` on cgroup v2,
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us` on v1). Threads and children created after the process
 * joins stay in the group. Needs write access to the cgroup file system (root here).
 *
 * Unlike `taskset`, the quota does not tie the process to particular cores: it may run on any of
 * them, as long as it uses no more than `cores` CPU-seconds per second, which is what a pod with
 * that limit gets on a node with more cores.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

const ROOT = "/sys/fs/cgroup";
const PERIOD_US = 100_000;

export interface CpuLimit {
  /** The cgroup's directory. */
  readonly path: string;
  readonly cores: number;
  /** Moves a process (all its threads) into the group. */
  add(pid: number): Promise<void>;
  /** Periods in which the group ran out of quota, and how long it waited, so far. */
  throttled(): Promise<{ periods: number; throttledPeriods: number; throttledSeconds: number }>;
  /** Removes the group; its processes must have exited (retried for a few seconds). */
  remove(): Promise<void>;
}

/** Where a CPU cgroup can be made here, or why not. */
export function cpuLimitSupport(): { ok: true; version: 1 | 2 } | { ok: false; why: string } {
  if (existsSync(join(ROOT, "cgroup.controllers"))) return { ok: true, version: 2 };
  if (existsSync(join(ROOT, "cpu", "cpu.cfs_quota_us"))) return { ok: true, version: 1 };
  return { ok: false, why: `no cgroup CPU controller under ${ROOT}` };
}

export async function createCpuLimit(name: string, cores: number): Promise<CpuLimit> {
  if (!(cores > 0)) throw new RangeError(`invalid CPU limit ${cores}`);
  const support = cpuLimitSupport();
  if (!support.ok) throw new Error(support.why);
  const quota = Math.round(cores * PERIOD_US);
  let path: string;
  if (support.version === 2) {
    // The controller must be enabled for the root's children first.
    const enabled = await readFile(join(ROOT, "cgroup.subtree_control"), "utf8");
    if (!enabled.split(/\s+/).includes("cpu")) await writeFile(join(ROOT, "cgroup.subtree_control"), "+cpu");
    path = join(ROOT, name);
    await mkdir(path, { recursive: true });
    await writeFile(join(path, "cpu.max"), `${quota} ${PERIOD_US}`);
  } else {
    path = join(ROOT, "cpu", name);
    await mkdir(path, { recursive: true });
    await writeFile(join(path, "cpu.cfs_period_us"), String(PERIOD_US));
    await writeFile(join(path, "cpu.cfs_quota_us"), String(quota));
  }
  return {
    path,
    cores,
    add: (pid) => writeFile(join(path, "cgroup.procs"), String(pid)),
    async throttled() {
      const text = await readFile(join(path, "cpu.stat"), "utf8");
      const field = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
      const seconds = support.version === 2 ? field("throttled_usec") / 1e6 : field("throttled_time") / 1e9;
      return { periods: field("nr_periods"), throttledPeriods: field("nr_throttled"), throttledSeconds: seconds };
    },
    async remove() {
      for (let i = 0; ; i++) {
        try {
          await rmdir(path);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
          if (i >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

/** The directory of the CPU cgroup `pid` is in now (to move a process back where it came from). */
export async function currentCpuCgroup(pid: number | "self"): Promise<string> {
  const support = cpuLimitSupport();
  if (!support.ok) throw new Error(support.why);
  const lines = (await readFile(`/proc/${pid}/cgroup`, "utf8")).split("\n");
  if (support.version === 2) {
    const path = lines.find((l) => l.startsWith("0::"))?.slice(3);
    if (path === undefined) throw new Error(`no cgroup v2 entry in /proc/${pid}/cgroup`);
    return join(ROOT, path);
  }
  // v1: "<id>:<controllers>:<path>", the CPU controller alone or with cpuacct.
  const line = lines.find((l) => l.split(":")[1]?.split(",").includes("cpu"));
  if (line === undefined) throw new Error(`no cpu controller in /proc/${pid}/cgroup`);
  return join(ROOT, "cpu", line.split(":").slice(2).join(":"));
}

/** Moves a process (all its threads) into the cgroup at `dir` (e.g. back to `currentCpuCgroup`'s answer). */
export async function moveToCgroup(dir: string, pid: number): Promise<void> {
  await writeFile(join(dir, "cgroup.procs"), String(pid));
}
