/**
 * Validators of the Prometheus Operator kinds the chart renders (monitoring.coreos.com/v1
 * ServiceMonitor and PrometheusRule). kubernetes-models has no models for them, so these JSON
 * schemas hold the part of the CRDs' OpenAPI schemas the chart uses: required fields, types,
 * duration formats, and closed objects where a typo would silently do nothing.
 */
import { Ajv, type ValidateFunction } from "ajv";

/** Prometheus' duration format (`30s`, `1h30m`), as the CRDs' `Duration` pattern. */
const duration = { type: "string", pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$" };
const stringMap = { type: "object", additionalProperties: { type: "string" } };
const metadata = { type: "object", required: ["name"], properties: { name: { type: "string", minLength: 1 }, labels: stringMap, annotations: stringMap } };
const labelSelector = {
  type: "object",
  additionalProperties: false,
  properties: {
    matchLabels: stringMap,
    matchExpressions: { type: "array", items: { type: "object", required: ["key", "operator"] } },
  },
};

const serviceMonitor = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    metadata,
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["selector", "endpoints"],
      properties: {
        selector: labelSelector,
        namespaceSelector: { type: "object", additionalProperties: false, properties: { any: { type: "boolean" }, matchNames: { type: "array", items: { type: "string" } } } },
        jobLabel: { type: "string" },
        endpoints: {
          type: "array",
          minItems: 1,
          items: {
            type: "object",
            additionalProperties: false,
            properties: {
              port: { type: "string", minLength: 1 },
              targetPort: { type: ["string", "integer"] },
              path: { type: "string", pattern: "^/" },
              scheme: { enum: ["http", "https"] },
              interval: duration,
              scrapeTimeout: duration,
              honorLabels: { type: "boolean" },
              relabelings: { type: "array" },
              metricRelabelings: { type: "array" },
            },
          },
        },
      },
    },
  },
};

const rule = {
  type: "object",
  additionalProperties: false,
  required: ["expr"],
  oneOf: [{ required: ["alert"] }, { required: ["record"] }],
  properties: {
    alert: { type: "string", minLength: 1 },
    record: { type: "string", minLength: 1 },
    expr: { type: ["string", "integer"], minLength: 1 },
    for: duration,
    keep_firing_for: duration,
    labels: stringMap,
    annotations: stringMap,
  },
};

const prometheusRule = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    metadata,
    spec: {
      type: "object",
      additionalProperties: false,
      properties: {
        groups: {
          type: "array",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["name"],
            properties: { name: { type: "string", minLength: 1 }, interval: duration, rules: { type: "array", items: rule } },
          },
        },
      },
    },
  },
};

const ajv = new Ajv({ allErrors: true, strict: false });

function validator(schema: object): (obj: unknown) => void {
  const validate: ValidateFunction = ajv.compile(schema);
  return (obj) => {
    if (!validate(obj)) throw new Error(ajv.errorsText(validate.errors));
  };
}

export const validateServiceMonitor = validator(serviceMonitor);
export const validatePrometheusRule = validator(prometheusRule);
