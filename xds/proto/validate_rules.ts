/**
 * The protoc-gen-validate rules as `validate.ts` reads them: the generated
 * rules file, what kind of value each field holds and which rule kind fits
 * it, the rules this checker implements (checked against the whole file
 * when the module loads, so a new Envoy version cannot add a rule that is
 * silently skipped), and the arithmetic of bounds and Durations.
 *
 * Pure: no I/O.
 * @module
 */
import protobuf from "protobufjs";
import { lookupType } from "./codec.ts";
import rulesJson from "./envoy_rules.json" with { type: "json" };

export type Rules = Record<string, unknown>;
export interface TypeRules {
  fields?: Record<string, Rules>;
  required_oneofs?: string[];
}

export const RULES = rulesJson as Record<string, TypeRules>;

export const INTEGER_KINDS = new Set([
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
]);
export const NUMBER_KINDS = new Set([...INTEGER_KINDS, "double", "float"]);

/** The rule keys this module implements, per PGV rule kind. */
const KNOWN: Readonly<Record<string, readonly string[]>> = {
  number: ["const", "lt", "lte", "gt", "gte", "in", "not_in", "ignore_empty"],
  string: [
    "const",
    "len",
    "min_len",
    "max_len",
    "min_bytes",
    "max_bytes",
    "pattern",
    "prefix",
    "suffix",
    "contains",
    "not_contains",
    "in",
    "not_in",
    "well_known_regex",
    "strict",
    "ignore_empty",
  ],
  bytes: ["min_len", "max_len", "len"],
  bool: ["const"],
  enum: ["const", "defined_only", "in", "not_in"],
  message: ["required", "skip"],
  duration: ["required", "const", "lt", "lte", "gt", "gte", "in", "not_in"],
  any: ["required", "in", "not_in"],
  repeated: ["min_items", "max_items", "unique", "items", "ignore_empty"],
  map: ["min_pairs", "max_pairs", "keys", "values", "ignore_empty"],
};

export const WRAPPER_KINDS: Readonly<Record<string, string>> = {
  ".google.protobuf.DoubleValue": "double",
  ".google.protobuf.FloatValue": "float",
  ".google.protobuf.Int64Value": "int64",
  ".google.protobuf.UInt64Value": "uint64",
  ".google.protobuf.Int32Value": "int32",
  ".google.protobuf.UInt32Value": "uint32",
  ".google.protobuf.BoolValue": "bool",
  ".google.protobuf.StringValue": "string",
  ".google.protobuf.BytesValue": "bytes",
};

/** Messages with a JSON form of their own: nothing inside them to walk. */
export const OPAQUE = new Set([
  ".google.protobuf.Struct",
  ".google.protobuf.Value",
  ".google.protobuf.ListValue",
  ".google.protobuf.Timestamp",
  ".google.protobuf.Empty",
]);

/**
 * PGV's `well_known_regex`. `strict: false` (what Envoy writes almost
 * everywhere) relaxes both to "no NUL, CR or LF".
 */
export const HEADER_REGEX = {
  HTTP_HEADER_NAME: /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/,
  // deno-lint-ignore no-control-regex -- control characters are what the rule is about
  HTTP_HEADER_VALUE: /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/,
  // deno-lint-ignore no-control-regex -- control characters are what the rule is about
  LOOSE: /^[^\u0000\u000A\u000D]*$/,
} as const;

/** What a field holds, for choosing the rule kind that fits it. */
export type Kind =
  | { of: "scalar"; type: string }
  | { of: "enum"; type: protobuf.Enum }
  | { of: "wrapper"; type: string }
  | { of: "duration" }
  | { of: "any" }
  | { of: "opaque" }
  | { of: "message"; type: protobuf.Type };

export function kindOf(field: protobuf.Field): Kind {
  const resolved = field.resolvedType;
  if (resolved === null) return { of: "scalar", type: field.type };
  if (resolved instanceof protobuf.Enum) return { of: "enum", type: resolved };
  const name = resolved.fullName;
  const wrapped = WRAPPER_KINDS[name];
  if (wrapped !== undefined) return { of: "wrapper", type: wrapped };
  if (name === ".google.protobuf.Duration") return { of: "duration" };
  if (name === ".google.protobuf.Any") return { of: "any" };
  if (OPAQUE.has(name)) return { of: "opaque" };
  return { of: "message", type: resolved as protobuf.Type };
}

/** The PGV rule kind a value of `kind` takes (`uint32`, `enum`, `duration`, …). */
function ruleKindOf(kind: Kind): string {
  switch (kind.of) {
    case "scalar":
    case "wrapper":
      return kind.type;
    case "enum":
      return "enum";
    case "duration":
      return "duration";
    case "any":
      return "any";
    default:
      return "message";
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function knownKeys(ruleKind: string): readonly string[] | undefined {
  return NUMBER_KINDS.has(ruleKind) ? KNOWN.number : KNOWN[ruleKind];
}

/** Throws unless every rule of `rules` is implemented and fits a value of `kind`. */
function assertSupported(rules: Rules, kind: Kind, where: string, repeated: "list" | "map" | null) {
  for (const [ruleKind, body] of Object.entries(rules)) {
    const at = `${where}: (validate.rules).${ruleKind}`;
    if (ruleKind === "message" && kind.of !== "scalar" && kind.of !== "enum") {
      // `message.required` applies to any message-typed field, wrappers and Any included.
    } else if (
      ruleKind === "any" && kind.of === "message" &&
      Object.keys(body as Rules).join() === "required"
    ) {
      // Envoy writes `any.required` on a plain message field once (ExtensionConfigSource); PGV
      // reads it as "required", and so do we.
    } else if (repeated === "list" && ruleKind === "repeated") {
      const items = (body as Rules).items;
      if (isObject(items)) assertSupported(items, kind, `${where}[]`, null);
    } else if (repeated === "map" && ruleKind === "map") {
      const { keys, values } = body as Rules;
      if (isObject(keys)) {
        assertSupported(keys, { of: "scalar", type: "string" }, `${where}{}`, null);
      }
      if (isObject(values)) assertSupported(values, kind, `${where}{}`, null);
    } else if (repeated !== null || ruleKind !== ruleKindOf(kind)) {
      throw new Error(`${at} does not fit the field's type`);
    }
    const known = knownKeys(ruleKind);
    if (known === undefined) throw new Error(`${at} is a rule kind the checker does not implement`);
    for (const key of Object.keys(body as Rules)) {
      if (!known.includes(key)) {
        throw new Error(`${at}.${key} is a rule the checker does not implement`);
      }
    }
  }
}

/** Checks the whole rules file against the descriptor once, when the module loads. */
function assertAllSupported(): void {
  for (const [typeName, typeRules] of Object.entries(RULES)) {
    const type = lookupType(typeName);
    for (const [name, rules] of Object.entries(typeRules.fields ?? {})) {
      const field = type.fields[name];
      if (field === undefined) throw new Error(`${typeName}.${name}: no such field`);
      field.resolve();
      assertSupported(
        rules,
        kindOf(field),
        `${typeName}.${name}`,
        field.map ? "map" : field.repeated ? "list" : null,
      );
    }
    for (const oneof of typeRules.required_oneofs ?? []) {
      if (type.oneofs?.[oneof] === undefined) throw new Error(`${typeName}: no oneof "${oneof}"`);
    }
  }
}
assertAllSupported();

// ---------------------------------------------------------------------------
// Values

/** Nanoseconds of a canonical Duration (`"5s"`, `"-1.500s"`). */
export function durationNanos(text: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (match === null) throw new Error(`Not a canonical Duration: ${JSON.stringify(text)}`);
  const [, sign, seconds = "0", fraction = ""] = match;
  const nanos = BigInt(seconds) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0"));
  return sign === "-" ? -nanos : nanos;
}

/** Nanoseconds of a PGV Duration bound (`{seconds, nanos}`; `{}` is zero). */
export function boundNanos(bound: unknown): bigint {
  const { seconds = 0, nanos = 0 } = (bound ?? {}) as { seconds?: number | string; nanos?: number };
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

export function showDuration(nanos: bigint): string {
  const negative = nanos < 0n;
  const abs = negative ? -nanos : nanos;
  const seconds = abs / 1_000_000_000n;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${seconds}${fraction === "" ? "" : `.${fraction}`}s`;
}

export type Comparable = number | bigint;

/** PGV's `lt`/`lte`/`gt`/`gte`, including its "outside the range" reading when the bounds cross. */
export function checkRange(
  value: Comparable,
  rules: Rules,
  toValue: (bound: unknown) => Comparable,
  show: (v: Comparable) => string,
): { rule: string; message: string } | null {
  const lower = rules.gt !== undefined
    ? { key: "gt", v: toValue(rules.gt), open: true }
    : rules.gte !== undefined
    ? { key: "gte", v: toValue(rules.gte), open: false }
    : null;
  const upper = rules.lt !== undefined
    ? { key: "lt", v: toValue(rules.lt), open: true }
    : rules.lte !== undefined
    ? { key: "lte", v: toValue(rules.lte), open: false }
    : null;
  const above = (b: NonNullable<typeof lower>) => (b.open ? value > b.v : value >= b.v);
  const below = (b: NonNullable<typeof upper>) => (b.open ? value < b.v : value <= b.v);
  const says = (b: { key: string; v: Comparable }) =>
    `${{ gt: ">", gte: ">=", lt: "<", lte: "<=" }[b.key]} ${show(b.v)}`;
  if (lower !== null && upper !== null && upper.v < lower.v) {
    // Crossed bounds: PGV means "outside [upper, lower]".
    if (above(lower) || below(upper)) return null;
    return {
      rule: `${lower.key}`,
      message: `must be ${says(lower)} or ${says(upper)}, got ${show(value)}`,
    };
  }
  if (lower !== null && !above(lower)) {
    return { rule: lower.key, message: `must be ${says(lower)}, got ${show(value)}` };
  }
  if (upper !== null && !below(upper)) {
    return { rule: upper.key, message: `must be ${says(upper)}, got ${show(value)}` };
  }
  return null;
}
