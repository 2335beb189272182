/**
 * The images (services/<name>/Dockerfile). The seed incident: a worker-only dependency installed
 * into the API image. So the gateway's production dependency tree (what `npm ci --omit=dev
 * --workspace services/gateway` installs into its image) must hold none of the processor's engines
 * or heavy libraries, and the same check must find them in the processor's tree (it can fail).
 * The Dockerfiles themselves: base image from a build ARG, non-root numeric USER, exec-form CMD,
 * the workspace install, and no engine packages outside the processor; web's: nginx, no Node.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { serviceNodeArgs } from "@docflow/tools/node-args";
import { ROOT } from "./support.ts";

interface LockEntry {
  version?: string;
  resolved?: string;
  link?: boolean;
  dev?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };

/** Where Node finds `name` from the package at lockfile path `from` (node_modules lookup upwards). */
function resolveIn(from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!dir) return undefined;
    const nested = dir.lastIndexOf("/node_modules/");
    if (nested >= 0) dir = dir.slice(0, nested);
    else if (dir.startsWith("node_modules/")) dir = "";
    else dir = dir.includes("/") ? dir.slice(0, dir.lastIndexOf("/")) : "";
  }
}

/**
 * Package names of a workspace's production tree from package-lock.json: dependencies, optional
 * dependencies (a superset: every platform's) and required peers, transitively, through workspace
 * links. Dev dependencies are never followed.
 */
function productionTree(workspace: string): Set<string> {
  const names = new Set<string>();
  const seen = new Set<string>();
  const visit = (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    let entry = lock.packages[path];
    if (!entry) throw new Error(`package-lock.json has no ${path}`);
    if (entry.link && entry.resolved) {
      path = entry.resolved;
      entry = lock.packages[path];
      if (!entry) throw new Error(`package-lock.json has no ${path}`);
    }
    const requiredPeers = Object.keys(entry.peerDependencies ?? {}).filter((name) => !entry?.peerDependenciesMeta?.[name]?.optional);
    for (const name of [...Object.keys(entry.dependencies ?? {}), ...Object.keys(entry.optionalDependencies ?? {}), ...requiredPeers]) {
      const target = resolveIn(path, name);
      if (!target) {
        if (entry.optionalDependencies?.[name] !== undefined) continue; // optional and not in the lock
        throw new Error(`${name} (needed by ${path}) is not in package-lock.json`);
      }
      names.add(name);
      visit(target);
    }
  };
  visit(workspace);
  return names;
}

/** Package names that `npm ls --omit=dev --all --json -w <workspace>` reports (the installed tree). */
function npmLsTree(workspace: string): Set<string> {
  const result = spawnSync("npm", ["ls", "--omit=dev", "--all", "--json", "-w", workspace], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const tree = JSON.parse(result.stdout) as { dependencies?: Record<string, unknown> };
  const names = new Set<string>();
  const walk = (node: { dependencies?: Record<string, unknown> }) => {
    for (const [name, child] of Object.entries(node.dependencies ?? {})) {
      names.add(name);
      walk(child as { dependencies?: Record<string, unknown> });
    }
  };
  walk(tree);
  return names;
}

/** The processor's engines and heavy libraries, none of which belong in the gateway's image. */
const FORBIDDEN = [/^sharp$/, /^@img\//, /^pdfjs-dist$/, /pdfium/, /^piscina$/, /^canvas$/, /^@napi-rs\/canvas/];
const forbiddenIn = (names: Set<string>) => [...names].filter((name) => FORBIDDEN.some((re) => re.test(name))).sort();

describe("the gateway's production dependency tree", () => {
  it("has none of the processor's engines (package-lock.json)", () => {
    const gateway = productionTree("services/gateway");
    expect(gateway.has("express")).toBe(true); // the walk reaches real dependencies
    expect(gateway.has("@aws-sdk/client-s3")).toBe(true); // ... through the workspace packages
    expect(forbiddenIn(gateway)).toEqual([]);
  });

  it("the same check finds sharp in the processor's tree", () => {
    const processor = productionTree("services/processor");
    expect(forbiddenIn(processor)).toContain("sharp");
    expect(forbiddenIn(processor).some((name) => name.startsWith("@img/"))).toBe(true);
  });

  it("agrees with npm ls --omit=dev (the installed tree)", () => {
    const gateway = npmLsTree("services/gateway");
    expect(gateway.has("express")).toBe(true);
    expect(forbiddenIn(gateway)).toEqual([]);
    expect(forbiddenIn(npmLsTree("services/processor"))).toContain("sharp");
  });
});

describe("the operator's production dependency tree", () => {
  it("has the Kubernetes client, and neither the processor's engines nor Express (package-lock.json)", () => {
    const operator = productionTree("services/operator");
    expect(operator.has("@kubernetes/client-node")).toBe(true);
    expect(forbiddenIn(operator)).toEqual([]);
    expect(operator.has("express")).toBe(false);
  });
});

interface Instruction {
  cmd: string;
  args: string;
}

/** Dockerfile instructions (comments dropped, continuation lines joined), by stage. */
function parseDockerfile(text: string): { preamble: Instruction[]; stages: { from: string; name?: string; body: Instruction[] }[] } {
  const lines = text.split("\n").filter((line) => !/^\s*#/.test(line));
  const joined = lines.join("\n").replace(/\\\n/g, " ");
  const instructions = joined
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const match = /^(\w+)\s+(.*)$/.exec(line);
      return { cmd: (match?.[1] ?? line).toUpperCase(), args: match?.[2] ?? "" };
    });
  const preamble: Instruction[] = [];
  const stages: { from: string; name?: string; body: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.cmd === "FROM") {
      const [from, as, name] = ins.args.split(/\s+/);
      stages.push({ from: from ?? "", ...(as?.toUpperCase() === "AS" && name ? { name } : {}), body: [] });
    } else if (stages.length === 0) preamble.push(ins);
    else stages[stages.length - 1]?.body.push(ins);
  }
  return { preamble, stages };
}

const ENGINE_PACKAGES = /\b(poppler[-\w]*|libreoffice[-\w]*|fonts-crosextra-\w+|libvips[-\w]*|ghostscript|imagemagick)\b/;

// The Node services; web is nginx serving the built app (below).
describe.each(["gateway", "processor", "operator"])("services/%s/Dockerfile", (service) => {
  const path = join(ROOT, "services", service, "Dockerfile");
  const text = readFileSync(path, "utf8");
  const { preamble, stages } = parseDockerfile(text);
  const runtime = stages[stages.length - 1];
  const runtimeBody = runtime?.body ?? [];
  const all = [...preamble, ...stages.flatMap((s) => s.body)];

  it("is multi-stage, every stage from the BASE_IMAGE build argument (a Node 24 Debian image by default)", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const arg = preamble.find((i) => i.cmd === "ARG" && i.args.startsWith("BASE_IMAGE="));
    expect(arg?.args).toMatch(/^BASE_IMAGE=node:24-(bookworm|trixie)(-slim)?$/);
    for (const stage of stages) expect(stage.from).toBe("${BASE_IMAGE}");
  });

  it("runs as a numeric non-root user, in production mode, stopped by SIGTERM, with an exec-form CMD", () => {
    const user = runtimeBody.filter((i) => i.cmd === "USER").at(-1);
    expect(user?.args).toMatch(/^[1-9][0-9]*(:[0-9]+)?$/);
    expect(runtimeBody.some((i) => i.cmd === "ENV" && /\bNODE_ENV=production\b/.test(i.args))).toBe(true);
    expect(runtimeBody.find((i) => i.cmd === "STOPSIGNAL")?.args).toBe("SIGTERM");
    const cmd = runtimeBody.find((i) => i.cmd === "CMD");
    const argv = JSON.parse(cmd?.args ?? "null") as string[];
    expect(argv[0]).toBe("node");
    expect(argv.at(-1)).toMatch(/\.ts$/);
    // No package manager in the image the service runs from.
    expect(runtimeBody.some((i) => i.cmd === "RUN" && i.args.includes("/usr/local/bin/npm"))).toBe(true);
    expect(runtimeBody.some((i) => i.cmd === "RUN" && /\bnpm (ci|install)\b/.test(i.args))).toBe(false);
  });

  it("runs Node with the service's flags (package.json docflow.nodeArgs), as npm start, the tests and the benchmarks do", () => {
    const argv = JSON.parse(runtimeBody.find((i) => i.cmd === "CMD")?.args ?? "[]") as string[];
    const pkg = JSON.parse(readFileSync(join(ROOT, "services", service, "package.json"), "utf8")) as { scripts?: { start?: string } };
    const flags = serviceNodeArgs(service);
    expect(argv.slice(1, 1 + flags.length)).toEqual(flags);
    if (pkg.scripts?.start) expect(pkg.scripts.start.split(" ").slice(1, 1 + flags.length)).toEqual(flags);
  });

  it("loads modules that exist in the repository", () => {
    const argv = JSON.parse(runtimeBody.find((i) => i.cmd === "CMD")?.args ?? "[]") as string[];
    const imported = argv.indexOf("--import");
    if (imported >= 0) {
      const specifier = argv[imported + 1] ?? "";
      const [, pkg, sub] = /^@docflow\/([^/]+)\/?(.*)$/.exec(specifier) ?? [];
      const manifest = JSON.parse(readFileSync(join(ROOT, "packages", pkg ?? "?", "package.json"), "utf8")) as { exports: Record<string, string> };
      const target = manifest.exports[sub ? `./${sub}` : "."];
      expect(target, specifier).toBeDefined();
      expect(existsSync(join(ROOT, "packages", pkg ?? "?", target ?? "?")), specifier).toBe(true);
    }
    const workdir = runtimeBody.filter((i) => i.cmd === "WORKDIR").at(-1)?.args ?? "";
    const entry = argv.at(-1) ?? "";
    const local = workdir === "/app" ? join(ROOT, "services", service, entry) : join(ROOT, workdir.replace(/^\/app\//, ""), entry);
    expect(existsSync(local), local).toBe(true);
  });

  if (service === "processor") {
    it("carries the engines: poppler, LibreOffice Impress and the Office metric fonts", () => {
      const installs = runtimeBody
        .filter((i) => i.cmd === "RUN" && /apt-get install/.test(i.args))
        .map((i) => i.args)
        .join(" ");
      for (const pkg of ["poppler-utils", "libreoffice-impress", "fonts-crosextra-carlito", "fonts-crosextra-caladea", "fonts-dejavu-core"]) expect(installs).toContain(pkg);
      expect(installs).toContain("--no-install-recommends");
    });
  } else {
    it("installs none of the processor's engines", () => {
      for (const ins of all) expect(`${ins.cmd} ${ins.args}`).not.toMatch(ENGINE_PACKAGES);
      expect(all.some((i) => i.cmd === "RUN" && /apt-get install/.test(i.args))).toBe(false);
    });
  }

  it(`installs only the ${service}'s production workspace tree`, () => {
    const install = all.find((i) => i.cmd === "RUN" && /\bnpm ci\b/.test(i.args))?.args ?? "";
    expect(install).toMatch(new RegExp(`--omit=dev\\b.*--workspace services/${service}\\b`));
    const copied = all
      .filter((i) => i.cmd === "COPY")
      .map((i) => i.args)
      .join("\n");
    for (const other of ["gateway", "processor", "web", "operator"].filter((s) => s !== service)) expect(copied).not.toContain(`services/${other}`);
  });
});

describe("services/web/Dockerfile", () => {
  const { preamble, stages } = parseDockerfile(readFileSync(join(ROOT, "services", "web", "Dockerfile"), "utf8"));
  const runtime = stages[stages.length - 1];
  const runtimeBody = runtime?.body ?? [];
  const all = [...preamble, ...stages.flatMap((s) => s.body)];

  it("builds the app on the BASE_IMAGE build argument, and runs from a copy of a BASE_IMAGE stage's root file system with nginx and without Node", () => {
    expect(preamble.find((i) => i.cmd === "ARG" && i.args.startsWith("BASE_IMAGE="))?.args).toMatch(/^BASE_IMAGE=node:24-(bookworm|trixie)(-slim)?$/);
    expect(stages.length).toBeGreaterThanOrEqual(3);
    for (const stage of stages.slice(0, -1)) expect(stage.from).toBe("${BASE_IMAGE}");
    // FROM scratch + the whole root file system: the base image's Node is in no layer of the image.
    expect(runtime?.from).toBe("scratch");
    const rootCopy = /^--from=(\S+) \/ \/$/.exec(runtimeBody.find((i) => i.cmd === "COPY")?.args ?? "");
    const rootfs = stages.find((s) => s.name === rootCopy?.[1]);
    expect(rootfs?.from).toBe("${BASE_IMAGE}");
    const run =
      rootfs?.body
        .filter((i) => i.cmd === "RUN")
        .map((i) => i.args)
        .join(" ") ?? "";
    expect(run).toMatch(/apt-get install -y --no-install-recommends nginx gettext-base/);
    for (const path of ["/usr/local/bin/node", "/usr/local/bin/npm", "/usr/local/lib/node_modules"]) expect(run).toContain(path);
    expect(run).toContain("! command -v node");
    expect(runtimeBody.some((i) => i.cmd === "RUN")).toBe(false);
  });

  it("runs its nginx script (services/web/nginx/) as a numeric non-root user, stopped by SIGQUIT (nginx's graceful stop), with an exec-form CMD", () => {
    expect(runtimeBody.filter((i) => i.cmd === "USER").at(-1)?.args).toMatch(/^[1-9][0-9]*(:[0-9]+)?$/);
    expect(runtimeBody.find((i) => i.cmd === "STOPSIGNAL")?.args).toBe("SIGQUIT");
    const argv = JSON.parse(runtimeBody.find((i) => i.cmd === "CMD")?.args ?? "null") as string[];
    expect(argv).toEqual(["/app/nginx/docflow-web.sh"]);
    expect(runtimeBody.filter((i) => i.cmd === "WORKDIR").at(-1)?.args).toBe("/app");
    expect(runtimeBody.find((i) => i.cmd === "COPY" && i.args.includes("docflow-web.sh"))?.args).toBe("--chmod=755 services/web/nginx/docflow-web.sh ./nginx/");
    const script = join(ROOT, "services", "web", "nginx", "docflow-web.sh");
    expect(statSync(script).mode & 0o111).not.toBe(0);
    expect(existsSync(join(ROOT, "services", "web", "nginx", "nginx.conf.template"))).toBe(true);
  });

  it("installs none of the processor's engines, and copies only the built app from the Node build", () => {
    for (const ins of all) expect(`${ins.cmd} ${ins.args}`).not.toMatch(ENGINE_PACKAGES);
    const fromBuild = runtimeBody.filter((i) => i.cmd === "COPY" && i.args.startsWith("--from=build")).map((i) => i.args);
    expect(fromBuild).toEqual(["--from=build /app/services/web/dist ./dist"]);
  });
});

describe(".dockerignore", () => {
  it("keeps node_modules, build output, VCS and local state out of every build context", () => {
    const ignore = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim());
    for (const pattern of ["**/node_modules", "**/dist", ".git", ".docflow"]) expect(ignore).toContain(pattern);
  });
});
