import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { S3Store } from "@tus/s3-store";
import { Server } from "@tus/server";
import { describe, expect, it } from "vitest";

/**
 * Canary for the @tus internals docflow's upload path relies on. StreamingS3Store
 * (./s3-store.ts) overrides protected methods of @tus/s3-store's S3Store and counts on how the
 * stock `write` calls them (which lookups it makes, when it stages a part); ./tus.ts throws
 * `{status_code, body}` from hooks and relies on Server's error path writing exactly that, and its
 * reviseAnswer relies on `Server.handle` sending the answer with srvx's sendNodeResponse (one
 * `writeHead` with the raw headers as an array, then the body). The
 * compiler checks the signatures, not the behaviour: this test fails when an upgrade changes the
 * code of any of those functions, so that whoever upgrades re-reads them against ours before
 * updating the fingerprints below (and the versions they were read at).
 */

const require = createRequire(import.meta.url);
/** The installed version (its package.json sits above dist/, which its exports do not expose). */
const version = (pkg: string) => (JSON.parse(readFileSync(join(dirname(require.resolve(pkg)), "..", "package.json"), "utf8")) as { version: string }).version;
/** The function's source with whitespace collapsed, hashed: a change of code, not of formatting. */
const fingerprint = (fn: unknown) => createHash("sha256").update(String(fn).replace(/\s+/g, " ")).digest("hex").slice(0, 16);

const S3_STORE = {
  version: "2.0.7",
  methods: {
    write: "5aaf7ac586c48df9",
    getMetadata: "63924504bb90e75a",
    finishMultipartUpload: "4d342c534f9190a6",
    retrieveParts: "f8c474415e4db203",
    getIncompletePartSize: "277ee09786619551",
    uploadPart: "29b4db827b89a5bb",
    uploadIncompletePart: "06759083894ecf49",
    deleteIncompletePart: "c82c8b8259b1791f",
    completeMetadata: "97df8e5d9d241617",
    clearCache: "7f3d7b8e9cdb8677",
  },
};
const SERVER = { version: "2.4.5", methods: { handler: "f8d8d36f8c65a62c", handle: "47967711c039271e" } };

function changed(proto: object, methods: Record<string, string>): string[] {
  return Object.entries(methods)
    .filter(([name, want]) => fingerprint((proto as Record<string, unknown>)[name]) !== want)
    .map(([name]) => name);
}

describe("the @tus internals the upload path relies on", () => {
  it("@tus/s3-store: the S3Store methods StreamingS3Store overrides or calls are the ones it was written against", () => {
    const methods = changed(S3Store.prototype, S3_STORE.methods);
    expect(
      methods,
      `@tus/s3-store ${version("@tus/s3-store")} (read at ${S3_STORE.version}) changed S3Store.${methods.join(", S3Store.")}: re-verify services/gateway/src/uploads/s3-store.ts against them, then update the fingerprints`,
    ).toEqual([]);
  });

  it("@tus/server: the error path that writes a hook's thrown {status_code, body}, and the way answers are sent, are the ones tus.ts was written against", () => {
    const methods = changed(Server.prototype, SERVER.methods);
    expect(
      methods,
      `@tus/server ${version("@tus/server")} (read at ${SERVER.version}) changed Server.${methods.join(", Server.")}: re-verify the thrown status_code answers and reviseAnswer of services/gateway/src/uploads/tus.ts, then update the fingerprints`,
    ).toEqual([]);
  });

  it("fingerprints code, not formatting", () => {
    expect(fingerprint("async f(a) {\n  return a;\n}")).toBe(fingerprint("async f(a) { return a; }"));
    expect(fingerprint("async f(a) { return a; }")).not.toBe(fingerprint("async f(a) { return a + 1; }"));
  });
});
