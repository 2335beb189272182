/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. the gateway's, written when it stops:
 * `--gateway-env "NODE_OPTIONS=--cpu-prof --cpu-prof-dir=/tmp/prof"` on the upload benchmarks).
 *
 *   node bench/cpuprofile-top.ts /tmp/prof/CPU.*.cpuprofile [--top 25] [--match regex]
 *
 * Prints the profile's span, idle / GC / program time, the functions with the most self time,
 * the most inclusive time (a function counted once per stack, however deep it recurses), and
 * self time per package (node_modules/<package>, node: internals, the repo's own files), and the
 * longest busy stretches (consecutive non-idle samples: a long task, or tasks back to back).
 * With --match, only inclusive times of functions whose "name url" matches.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function where(url: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith("node:")) return "node internals";
  if (url === "") return "(native / V8)";
  const repo = /\/(packages|services|scripts|bench)\/([^/]+)/.exec(url);
  return repo ? `${repo[1]}/${repo[2]}` : url;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "25" }, match: { type: "string" } } });
  const top = Number(values.top);
  for (const file of positionals) {
    const profile = JSON.parse(await readFile(file, "utf8")) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const label = (n: Node) => {
      const short = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|packages|services|scripts|bench)\//, "$1/");
      return `${n.callFrame.functionName || "(anonymous)"} ${short}${short ? `:${n.callFrame.lineNumber + 1}` : ""}`;
    };
    const self = new Map<string, number>();
    const inclusive = new Map<string, number>();
    const perPackage = new Map<string, number>();
    let total = 0;
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000; // ms until the next sample
      const leaf = byId.get(profile.samples[i]!)!;
      total += dt;
      self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
      perPackage.set(where(leaf.callFrame.url), (perPackage.get(where(leaf.callFrame.url)) ?? 0) + dt);
      const seen = new Set<string>();
      for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
        const l = label(byId.get(id)!);
        if (seen.has(l)) continue;
        seen.add(l);
        inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
      }
    }
    // Busy stretches: consecutive samples that are not (idle), i.e. how long the event loop went
    // without a break (one long task, or tasks back to back). Start-up is the first one.
    const stretches: Array<{ at: number; ms: number }> = [];
    let stretch: { at: number; ms: number } | undefined;
    let clock = 0;
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
      const idleSample = byId.get(profile.samples[i]!)!.callFrame.functionName === "(idle)";
      if (idleSample) {
        if (stretch) stretches.push(stretch);
        stretch = undefined;
      } else {
        stretch ??= { at: clock, ms: 0 };
        stretch.ms += dt;
      }
      clock += dt;
    }
    if (stretch) stretches.push(stretch);
    const get = (name: string) => [...self].filter(([k]) => k.startsWith(`(${name})`)).reduce((a, [, v]) => a + v, 0);
    const idle = get("idle");
    const gc = get("garbage collector");
    console.log(`\n# ${file}`);
    console.log(
      `span ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s; sampled ${(total / 1000).toFixed(1)} s: idle ${(idle / 1000).toFixed(1)} s, busy ${((total - idle) / 1000).toFixed(1)} s (GC ${(gc / 1000).toFixed(1)} s)`,
    );
    const print = (title: string, m: Map<string, number>, filter?: RegExp) => {
      console.log(`\n## ${title} (ms)`);
      for (const [k, v] of [...m]
        .filter(([k2]) => !filter || filter.test(k2))
        .sort((a, b) => b[1] - a[1])
        .slice(0, top))
        console.log(`${v.toFixed(0).padStart(8)}  ${k}`);
    };
    const longest = [...stretches].sort((a, b) => b.ms - a.ms).slice(0, 8);
    console.log(`longest busy stretches without an idle sample (ms at s): ${longest.map((x) => `${x.ms.toFixed(0)} at ${(x.at / 1000).toFixed(1)}`).join(", ")}`);
    if (values.match) {
      print(`inclusive, matching /${values.match}/`, inclusive, new RegExp(values.match));
      continue;
    }
    print("self time", self);
    print("inclusive time", inclusive);
    print("self time by package", perPackage);
  }
}

await main();
