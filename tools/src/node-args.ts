/**
 * The Node.js flags a service runs with, from `docflow.nodeArgs` in its package.json: one place
 * for `npm start`, the tests and the benchmarks, which spawn the services themselves. The images'
 * CMD and the packages' `start` scripts spell them out, and tests/deploy/images.test.ts checks that
 * they agree.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");

export function serviceNodeArgs(service: string): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, "services", service, "package.json"), "utf8")) as { docflow?: { nodeArgs?: string[] } };
  return pkg.docflow?.nodeArgs ?? [];
}
