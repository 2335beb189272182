/**
 * Generates the parameters table of charts/docflow/README.md from the `## @section` and
 * `## @param <key> <description>` comments of values.yaml (Bitnami's convention), with each
 * value's default read from values.yaml itself.
 *
 *   node charts/docflow/scripts/readme.ts           rewrite the table in README.md
 *   node charts/docflow/scripts/readme.ts --check   exit 1 when README.md is out of date
 *
 * The table sits between `<!-- parameters:start -->` and `<!-- parameters:end -->`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const CHART_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const START = "<!-- parameters:start -->";
const END = "<!-- parameters:end -->";

export interface Param {
  key: string;
  description: string;
  section: string;
}

/** The `@param` comments in order, each with the `@section` it belongs to. */
export function parseParams(valuesText: string): Param[] {
  const params: Param[] = [];
  let section = "Parameters";
  for (const line of valuesText.split("\n")) {
    const sectionMatch = /^\s*## @section (.+)$/.exec(line);
    if (sectionMatch?.[1] !== undefined) {
      section = sectionMatch[1].trim();
      continue;
    }
    const paramMatch = /^\s*## @param (\S+)\s+(.+)$/.exec(line);
    if (paramMatch?.[1] !== undefined && paramMatch[2] !== undefined) params.push({ key: paramMatch[1], description: paramMatch[2].trim(), section });
  }
  return params;
}

/** The value at a dotted path, or `undefined` when the path does not exist. */
export function valueAt(values: unknown, key: string): { found: boolean; value: unknown } {
  let node: unknown = values;
  for (const part of key.split(".")) {
    if (node === null || typeof node !== "object" || Array.isArray(node) || !(part in node)) return { found: false, value: undefined };
    node = (node as Record<string, unknown>)[part];
  }
  return { found: true, value: node };
}

/** Dotted paths of every leaf (scalars, empty or non-empty lists, empty maps) of the values. */
export function leafPaths(values: unknown, prefix = ""): string[] {
  if (values === null || typeof values !== "object" || Array.isArray(values) || Object.keys(values).length === 0) return prefix ? [prefix] : [];
  return Object.entries(values).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

function formatValue(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value ?? null);
  return `\`${text.replace(/\|/g, "\\|")}\``;
}

/** The markdown tables, one per section. */
export function renderParameters(valuesText: string): string {
  const values: unknown = parse(valuesText);
  const out: string[] = [];
  let current: string | undefined;
  for (const param of parseParams(valuesText)) {
    if (param.section !== current) {
      current = param.section;
      out.push("", `### ${current}`, "", "| Name | Description | Value |", "|---|---|---|");
    }
    const { value } = valueAt(values, param.key);
    out.push(`| \`${param.key}\` | ${param.description.replace(/\|/g, "\\|")} | ${formatValue(value)} |`);
  }
  return `${out.join("\n").trim()}\n`;
}

/** README text with the table replaced. */
export function updateReadme(readme: string, valuesText: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START} ... ${END} block`);
  return `${readme.slice(0, start + START.length)}\n${renderParameters(valuesText)}${readme.slice(end)}`;
}

function main(): void {
  const valuesText = readFileSync(join(CHART_DIR, "values.yaml"), "utf8");
  const readmePath = join(CHART_DIR, "README.md");
  const readme = readFileSync(readmePath, "utf8");
  const next = updateReadme(readme, valuesText);
  if (process.argv.includes("--check")) {
    if (next !== readme) {
      process.stderr.write("charts/docflow/README.md is out of date: run node charts/docflow/scripts/readme.ts\n");
      process.exit(1);
    }
    return;
  }
  if (next !== readme) writeFileSync(readmePath, next);
  process.stdout.write(`${parseParams(valuesText).length} parameters in ${readmePath}\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) main();
