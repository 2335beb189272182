import { createAccount } from "@nats-io/nkeys";
import { Ajv, type ValidateFunction } from "ajv";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { ClientConfig, ERRORS, JOB_FAILURES, Job, JobList, JobResult, PageInfo, Problem, RealtimeCredentials, documentKey, objectKeys, type JobRecord } from "@docflow/contracts";
import { openApiDocument } from "./openapi.ts";
import { type Answer, pdfBytes, startApp } from "../test/support.ts";

/*
 * The OpenAPI document is generated from the contracts' zod schemas. Pinned here: it is a valid
 * OpenAPI 3.0 document (its Schema Objects use OpenAPI 3.0's keywords only, every $ref resolves),
 * and the gateway's real answers match both the contract's schema and the response the document
 * gives for their path, method, status and media type.
 */

const MAX_UPLOAD = 256 * 1024;

type Schema = Record<string, unknown>;
interface Media {
  schema?: Schema;
}
interface Response {
  description: string;
  content?: Record<string, Media>;
  headers?: Record<string, { schema: Schema }>;
}
interface Operation {
  parameters?: { schema: Schema }[];
  requestBody?: { content: Record<string, Media> };
  responses: Record<string, Response>;
}
/** A path item: its operations by method, and `parameters` common to them. */
type PathItem = Record<string, Operation> & { parameters?: { schema: Schema }[] };

/** The document as a client reads it (JSON). */
const doc = JSON.parse(JSON.stringify(openApiDocument(MAX_UPLOAD))) as { openapi: string; components: { schemas: Record<string, Schema> }; paths: Record<string, PathItem> };
const SCHEMAS = doc.components.schemas;

/** Every operation of the document: its path, method, and the operation. */
function* operations(): Generator<[string, string, Operation]> {
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) if (method !== "parameters") yield [path, method, operation as Operation];
  }
}

/** The keywords of an OpenAPI 3.0.3 Schema Object (besides `x-` extensions). */
const SCHEMA_KEYWORDS = new Set([
  "title",
  "multipleOf",
  "maximum",
  "exclusiveMaximum",
  "minimum",
  "exclusiveMinimum",
  "maxLength",
  "minLength",
  "pattern",
  "maxItems",
  "minItems",
  "uniqueItems",
  "maxProperties",
  "minProperties",
  "required",
  "enum",
  "type",
  "allOf",
  "oneOf",
  "anyOf",
  "not",
  "items",
  "properties",
  "additionalProperties",
  "description",
  "format",
  "default",
  "nullable",
  "discriminator",
  "readOnly",
  "writeOnly",
  "xml",
  "externalDocs",
  "example",
  "deprecated",
  "$ref",
]);
const TYPES = new Set(["string", "number", "integer", "boolean", "array", "object"]);
/** The formats the document may use: OpenAPI's own and JSON Schema's that tools know. */
const FORMATS = new Set(["int32", "int64", "float", "double", "byte", "binary", "date", "date-time", "password", "uuid", "uri", "email"]);

/** Every Schema Object the document holds, by its JSON pointer, subschemas included. */
function* schemaObjects(): Generator<[string, Schema]> {
  function* walk(at: string, schema: Schema): Generator<[string, Schema]> {
    yield [at, schema];
    for (const [name, sub] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) yield* walk(`${at}/properties/${name}`, sub);
    for (const key of ["items", "not", "additionalProperties"]) {
      if (typeof schema[key] === "object") yield* walk(`${at}/${key}`, schema[key] as Schema);
    }
    for (const key of ["allOf", "anyOf", "oneOf"]) {
      for (const [i, sub] of ((schema[key] ?? []) as Schema[]).entries()) yield* walk(`${at}/${key}/${i}`, sub);
    }
  }
  for (const [name, schema] of Object.entries(SCHEMAS)) yield* walk(`#/components/schemas/${name}`, schema);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [i, p] of (item.parameters ?? []).entries()) yield* walk(`#/paths/${path}/parameters/${i}`, p.schema);
  }
  for (const [path, method, operation] of operations()) {
    const at = `#/paths/${path}/${method}`;
    for (const [i, p] of (operation.parameters ?? []).entries()) yield* walk(`${at}/parameters/${i}`, p.schema);
    for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) if (media.schema) yield* walk(`${at}/requestBody/${type}`, media.schema);
    for (const [status, response] of Object.entries(operation.responses)) {
      for (const [type, media] of Object.entries(response.content ?? {})) if (media.schema) yield* walk(`${at}/responses/${status}/${type}`, media.schema);
      for (const [name, header] of Object.entries(response.headers ?? {})) yield* walk(`${at}/responses/${status}/headers/${name}`, header.schema);
    }
  }
}

/** What is wrong with one Schema Object for OpenAPI 3.0 (an empty list: nothing). */
function problemsOf(schema: Schema): string[] {
  const found: string[] = [];
  for (const key of Object.keys(schema)) if (!SCHEMA_KEYWORDS.has(key) && !key.startsWith("x-")) found.push(`unknown keyword ${key}`);
  if (schema.type !== undefined && !TYPES.has(schema.type as string)) found.push(`type ${JSON.stringify(schema.type)} is not one OpenAPI 3.0 type`);
  if (schema.nullable !== undefined && (typeof schema.nullable !== "boolean" || schema.type === undefined)) found.push("nullable needs a boolean and a type");
  for (const [bound, limit] of [
    ["exclusiveMinimum", "minimum"],
    ["exclusiveMaximum", "maximum"],
  ] as const) {
    if (schema[bound] !== undefined && (typeof schema[bound] !== "boolean" || typeof schema[limit] !== "number")) found.push(`${bound} must be a boolean beside ${limit}`);
  }
  if (schema.format !== undefined && !FORMATS.has(schema.format as string)) found.push(`unknown format ${String(schema.format)}`);
  if (schema.pattern !== undefined) {
    try {
      new RegExp(schema.pattern as string, "u");
    } catch {
      found.push(`pattern ${String(schema.pattern)} is no ECMA-262 regular expression`);
    }
  }
  if (schema.enum !== undefined && (!Array.isArray(schema.enum) || schema.enum.length === 0)) found.push("enum must be a non-empty array");
  if (schema.required !== undefined) {
    const props = Object.keys((schema.properties ?? {}) as object);
    if (!Array.isArray(schema.required) || schema.required.length === 0) found.push("required must be a non-empty array");
    else for (const name of schema.required as string[]) if (!props.includes(name)) found.push(`required ${name} is no property`);
  }
  if (schema.additionalProperties !== undefined && typeof schema.additionalProperties !== "boolean" && typeof schema.additionalProperties !== "object") {
    found.push("additionalProperties must be a boolean or a schema");
  }
  if (typeof schema.$ref === "string") {
    const name = /^#\/components\/schemas\/(\w+)$/.exec(schema.$ref)?.[1];
    if (!name || !Object.hasOwn(SCHEMAS, name)) found.push(`$ref ${schema.$ref} does not resolve`);
  }
  return found;
}

/**
 * The document's schemas as JSON Schema (draft-07, which Ajv checks): OpenAPI 3.0's boolean
 * `exclusiveMinimum`/`exclusiveMaximum` become numbers, and references point into `components`.
 */
function asJsonSchema(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asJsonSchema);
  if (value === null || typeof value !== "object") return value;
  const out: Schema = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === "enum" ? v : asJsonSchema(v)]));
  for (const [bound, limit] of [
    ["exclusiveMinimum", "minimum"],
    ["exclusiveMaximum", "maximum"],
  ] as const) {
    if (out[bound] === true) [out[bound], out[limit]] = [out[limit], undefined];
    if (out[bound] === false) delete out[bound];
    if (out[limit] === undefined) delete out[limit];
  }
  if (typeof out.$ref === "string") out.$ref = out.$ref.replace("#/components/schemas/", "components#/definitions/");
  return out;
}

const ajv = new Ajv({ strict: true, allErrors: true });
ajv.addFormat("date-time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/);
ajv.addSchema({ $id: "components", definitions: asJsonSchema(SCHEMAS) as Schema });
const validators = new Map<string, ValidateFunction>();

/**
 * Asserts that `res` is documented (the operation at `path` answers its status with its media type)
 * and that its body matches the documented schema and the contract's zod schema, which keeps every
 * field it has (no field is stripped as unknown).
 */
function expectDocumented(res: Answer, method: string, path: string | null, contract: z.ZodType): void {
  const type = (res.headers.get("content-type") ?? "").split(";")[0]!;
  expect(contract.parse(res.body), `${method} ${path}: ${res.text}`).toEqual(res.body);
  if (path === null) return;
  const schema = doc.paths[path]?.[method.toLowerCase()]?.responses[String(res.status)]?.content?.[type]?.schema;
  expect(schema, `${method} ${path} answers ${res.status} ${type}, undocumented`).toBeDefined();
  const key = JSON.stringify(schema);
  const validate = validators.get(key) ?? ajv.compile(asJsonSchema(schema) as Schema);
  validators.set(key, validate);
  expect(validate(res.body) ? [] : validate.errors, `${method} ${path} ${res.status}: ${res.text}`).toEqual([]);
}

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.0.3 whose Schema Objects use OpenAPI 3.0's keywords only, and whose references all resolve", () => {
    expect(doc.openapi).toBe("3.0.3");
    const found = [...schemaObjects()].flatMap(([at, schema]) => problemsOf(schema).map((p) => `${at}: ${p}`));
    expect(found).toEqual([]);
  });

  it("takes every JSON answer's schema from the contracts, and uses every component", () => {
    const used = new Set<string>();
    for (const [, schema] of schemaObjects()) if (typeof schema.$ref === "string") used.add(schema.$ref.split("/").pop()!);
    expect([...used].sort()).toEqual(Object.keys(SCHEMAS).sort());
    expect(Object.keys(SCHEMAS).sort()).toEqual(["ClientConfig", "Document", "Job", "JobList", "JobResult", "Page", "Problem", "RealtimeCredentials"]);
    for (const [path, method, operation] of operations()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        for (const [type, media] of Object.entries(response.content ?? {})) {
          if (/json/.test(type)) expect(media.schema, `${method} ${path} ${status} ${type}`).toEqual({ $ref: expect.stringMatching(/^#\/components\/schemas\//) });
        }
      }
    }
  });

  it("documents each problem under its code's status, with the problem codes only", () => {
    const codes = (SCHEMAS.Problem!.properties as Record<string, Schema>).code!.enum as string[];
    expect(codes).toEqual(Object.keys(ERRORS));
    expect(codes.filter((code) => Object.hasOwn(JOB_FAILURES, code))).toEqual([]);
    let documented = 0;
    for (const [, , operation] of operations()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (!response.content?.["application/problem+json"]) continue;
        const named = [...response.description.matchAll(/\(code: (\w+)\)/g)].map((m) => m[1] as keyof typeof ERRORS);
        expect(named.length, response.description).toBeGreaterThan(0);
        for (const code of named) expect(ERRORS[code].status, code).toBe(Number(status));
        documented += named.length;
      }
    }
    expect(documented).toBeGreaterThan(30);
  });
});

describe("the gateway's answers match the contracts and the document", () => {
  const start = (env: Record<string, string> = {}) => startApp({ DOCFLOW_MAX_UPLOAD_BYTES: String(MAX_UPLOAD), ...env });

  it("for the configuration, jobs, results, pages and realtime credentials", async () => {
    const account = createAccount();
    const { ctx, send } = await start({
      DOCFLOW_REALTIME_SIGNING_SEED: new TextDecoder().decode(account.getSeed()),
      DOCFLOW_REALTIME_ACCOUNT: account.getPublicKey(),
      DOCFLOW_REALTIME_WS_URL: "wss://docflow.example/nats",
      DOCFLOW_BROWSER_TRACES_URL: "http://127.0.0.1:4318/v1/traces",
    });
    expectDocumented(await send("GET", "/v1/config"), "GET", "/v1/config", ClientConfig);

    const uploaded: Answer[] = [];
    for (const name of ["a.pdf", "b.pdf"]) uploaded.push(await send("POST", `/v1/documents?filename=${name}`, { as: "acme", body: new Uint8Array(pdfBytes(3000)) }));
    for (const res of uploaded) expectDocumented(res, "POST", "/v1/documents", Job);
    const [first, second] = uploaded.map((res) => String(res.body.id));

    const page = await send("GET", "/v1/jobs?limit=1", { as: "acme" });
    expect(page.body.nextCursor).toBe(second);
    expectDocumented(page, "GET", "/v1/jobs", JobList);
    const last = await send("GET", `/v1/jobs?cursor=${second}`, { as: "acme" });
    expect(last.body.nextCursor).toBeNull();
    expectDocumented(last, "GET", "/v1/jobs", JobList);

    // Completed, with what inspection found (the first one with its full details).
    for (const id of [first!, second!]) {
      await ctx.jobs.update("acme", id, (r): JobRecord => ({
        ...r,
        status: "completed",
        pageCount: 2,
        pagesDone: 2,
        completedAt: new Date().toISOString(),
        document: { title: "Q3", encrypted: false, javascript: false, fontCount: 3, slideCount: 2 },
      }));
      for (const n of [1, 2]) await ctx.store.put(objectKeys.pageJson("acme", id, n), Buffer.from(JSON.stringify({ n, width: 960, height: 540.5, text: `slide ${n}` })));
    }
    const details = {
      encrypted: false,
      javascript: false,
      slideCount: 2,
      slides: [
        { n: 1, title: "Intro", notes: "Welcome" },
        { n: 2, title: "", notes: "" },
      ],
    };
    await ctx.store.put(documentKey("acme", first!), Buffer.from(JSON.stringify(details)));

    expectDocumented(await send("GET", `/v1/jobs/${first}`, { as: "acme" }), "GET", "/v1/jobs/{id}", Job);
    const withDetails = await send("GET", `/v1/jobs/${first}/result`, { as: "acme" });
    expect(withDetails.body.document).toEqual(details);
    expectDocumented(withDetails, "GET", "/v1/jobs/{id}/result", JobResult);
    const withoutDetails = await send("GET", `/v1/jobs/${second}/result`, { as: "acme" });
    expect(withoutDetails.body).not.toHaveProperty("document");
    expectDocumented(withoutDetails, "GET", "/v1/jobs/{id}/result", JobResult);
    expectDocumented(await send("GET", `/v1/jobs/${first}/pages/2`, { as: "acme" }), "GET", "/v1/jobs/{id}/pages/{n}", PageInfo);

    expectDocumented(await send("POST", "/v1/realtime/credentials", { as: "acme" }), "POST", "/v1/realtime/credentials", RealtimeCredentials);
  });

  it("for the problem documents, with their extension members", async () => {
    const { ctx, send } = await start();
    const answers: [Answer, string, string | null][] = [
      [await send("GET", "/v1/jobs"), "GET", "/v1/jobs"],
      [await send("GET", "/v1/jobs?limit=0", { as: "acme" }), "GET", "/v1/jobs"],
      [await send("GET", "/v1/jobs/not-a-job-id", { as: "acme" }), "GET", "/v1/jobs/{id}"],
      [await send("POST", "/v1/documents?filename=big.pdf", { as: "acme", body: new Uint8Array(pdfBytes(MAX_UPLOAD + 1)) }), "POST", "/v1/documents"],
      [await send("POST", "/v1/documents", { as: "acme", body: "plain text, no document\n".repeat(10) }), "POST", "/v1/documents"],
      [await send("POST", "/v1/realtime/credentials", { as: "acme" }), "POST", "/v1/realtime/credentials"],
      [await send("POST", "/v1/telemetry/traces", { as: "acme", headers: { "content-type": "application/json" }, body: "{}" }), "POST", "/v1/telemetry/traces"],
      [await send("GET", "/v1/nowhere", { as: "acme" }), "GET", null],
      // tus writes its own problems (no `instance`); /v1/uploads is tus's protocol, not in the document.
      [await send("POST", "/v1/uploads", { as: "acme", tus: true, headers: { "upload-length": "0" } }), "POST", null],
    ];
    const job = await send("POST", "/v1/documents?filename=a.pdf", { as: "acme", body: new Uint8Array(pdfBytes(3000)) });
    answers.push([await send("GET", `/v1/jobs/${job.body.id}/result`, { as: "acme" }), "GET", "/v1/jobs/{id}/result"]);
    answers.push([await send("GET", `/v1/jobs/${job.body.id}/pages/1`, { as: "acme" }), "GET", "/v1/jobs/{id}/pages/{n}"]);
    ctx.readiness = { nats: () => Promise.reject(new Error("not connected")) };
    answers.push([await send("GET", "/readyz"), "GET", "/readyz"]);

    expect(answers.map(([res]) => `${res.status} ${String(res.body.code)}`)).toEqual([
      "401 unauthorized",
      "400 validation_failed",
      "404 not_found",
      "413 file_too_large",
      "415 unsupported_media_type",
      "501 realtime_unavailable",
      "404 telemetry_unavailable",
      "404 route_not_found",
      "400 empty_body",
      "409 job_not_ready",
      "404 page_not_ready",
      "503 not_ready",
    ]);
    for (const [res, method, path] of answers) expectDocumented(res, method, path, Problem);
    // Extension members pass the contract.
    const body = (code: string) => answers.find(([res]) => res.body.code === code)![0].body;
    expect(Problem.parse(body("file_too_large"))).toMatchObject({ limit: MAX_UPLOAD });
    expect(Problem.parse(body("job_not_ready"))).toMatchObject({ jobStatus: "queued" });
    expect(Problem.parse(body("not_ready"))).toMatchObject({ checks: { nats: "not connected" } });
  });
});
