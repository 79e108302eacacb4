/**
 * Envoy's own validation rules, applied before anything is sent. Envoy's
 * `.proto` files carry protoc-gen-validate (PGV) annotations (`min_len`,
 * `gt`, required messages and oneofs, `defined_only` enums, repeated and
 * map limits, well-known header regexes), and Envoy NACKs a resource that
 * breaks one; the schema alone (`codec.ts`) cannot see them. The rules come
 * from `envoy_rules.json` (generated from the same `.proto` files by
 * `scripts/gen_xds_rules.ts`); this module interprets them the way PGV's
 * generated validators do:
 *
 * - scalar and enum fields are checked even when they hold their default
 *   (an omitted `name` with `min_len: 1` is a violation), except members of
 *   a oneof, which are checked only when set, and `ignore_empty` rules;
 * - message fields are checked only when present, apart from `required`,
 *   and embedded messages are checked in turn (unless `message.skip`);
 *   unlike PGV, the content of an `Any` is checked too, as Envoy does when
 *   it unpacks a typed config;
 * - wrapper fields (`UInt32Value`, …) apply their scalar rules to the value
 *   when one is set.
 *
 * Loading the module checks that every rule in the file is one this module
 * implements and fits its field's type, so a new Envoy version cannot add a
 * rule that is silently skipped.
 *
 * Pure: no I/O.
 * @module
 */
import protobuf from "protobufjs";
import { decodeStrict, encodeStrict, lookupType, type ProtoJson } from "./codec.ts";
import rulesJson from "./envoy_rules.json" with { type: "json" };

/** One rule a message breaks. */
export interface Violation {
  /** Where, from the top of the checked message: `filter_chains[0].filters[0].name`. */
  path: string;
  /** The rule, as PGV names it: `string.min_len`, `oneof.required`, `repeated.items.enum.defined_only`. */
  rule: string;
  /** What is wrong, in words. */
  message: string;
}

type Rules = Record<string, unknown>;
interface TypeRules {
  fields?: Record<string, Rules>;
  required_oneofs?: string[];
}

const RULES = rulesJson as Record<string, TypeRules>;

const INTEGER_KINDS = new Set([
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
const NUMBER_KINDS = new Set([...INTEGER_KINDS, "double", "float"]);

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

const WRAPPER_KINDS: Readonly<Record<string, string>> = {
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
const OPAQUE = new Set([
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
const HEADER_REGEX = {
  HTTP_HEADER_NAME: /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/,
  // deno-lint-ignore no-control-regex -- control characters are what the rule is about
  HTTP_HEADER_VALUE: /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/,
  // deno-lint-ignore no-control-regex -- control characters are what the rule is about
  LOOSE: /^[^\u0000\u000A\u000D]*$/,
} as const;

/** What a field holds, for choosing the rule kind that fits it. */
type Kind =
  | { of: "scalar"; type: string }
  | { of: "enum"; type: protobuf.Enum }
  | { of: "wrapper"; type: string }
  | { of: "duration" }
  | { of: "any" }
  | { of: "opaque" }
  | { of: "message"; type: protobuf.Type };

function kindOf(field: protobuf.Field): Kind {
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

function isObject(value: unknown): value is Record<string, unknown> {
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
function durationNanos(text: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (match === null) throw new Error(`Not a canonical Duration: ${JSON.stringify(text)}`);
  const [, sign, seconds = "0", fraction = ""] = match;
  const nanos = BigInt(seconds) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0"));
  return sign === "-" ? -nanos : nanos;
}

/** Nanoseconds of a PGV Duration bound (`{seconds, nanos}`; `{}` is zero). */
function boundNanos(bound: unknown): bigint {
  const { seconds = 0, nanos = 0 } = (bound ?? {}) as { seconds?: number | string; nanos?: number };
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

function showDuration(nanos: bigint): string {
  const negative = nanos < 0n;
  const abs = negative ? -nanos : nanos;
  const seconds = abs / 1_000_000_000n;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${seconds}${fraction === "" ? "" : `.${fraction}`}s`;
}

type Comparable = number | bigint;

/** PGV's `lt`/`lte`/`gt`/`gte`, including its "outside the range" reading when the bounds cross. */
function checkRange(
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

// ---------------------------------------------------------------------------
// The walk

class Walk {
  readonly found: Violation[] = [];

  report(path: string, rule: string, message: string): void {
    this.found.push({ path: path === "" ? "(top)" : path, rule, message });
  }

  message(type: protobuf.Type, value: ProtoJson, path: string): void {
    const typeRules = RULES[type.fullName.slice(1)];
    for (const oneof of typeRules?.required_oneofs ?? []) {
      const members = type.oneofs[oneof]?.oneof ?? [];
      if (!members.some((m) => value[m] !== undefined)) {
        this.report(
          join(path, oneof),
          "oneof.required",
          `one of ${members.join(", ")} must be set`,
        );
      }
    }
    for (const field of type.fieldsArray) {
      field.resolve();
      const rules = typeRules?.fields?.[field.name];
      const v = value[field.name];
      const at = join(path, field.name);
      const kind = kindOf(field);
      if (field.map) {
        this.map(kind, rules, (v ?? {}) as Record<string, unknown>, at);
      } else if (field.repeated) {
        this.list(kind, rules, (v ?? []) as unknown[], at);
      } else if (field.partOf !== null && v === undefined) {
        // An unset oneof member: PGV checks members only when set.
      } else {
        this.single(kind, rules, v, at, "");
      }
    }
  }

  list(kind: Kind, rules: Rules | undefined, items: unknown[], path: string): void {
    const r = (rules?.repeated ?? {}) as Rules;
    if (!(r.ignore_empty === true && items.length === 0)) {
      if (typeof r.min_items === "number" && items.length < r.min_items) {
        this.report(
          path,
          "repeated.min_items",
          `must have at least ${r.min_items} item(s), has ${items.length}`,
        );
      }
      if (typeof r.max_items === "number" && items.length > r.max_items) {
        this.report(
          path,
          "repeated.max_items",
          `must have at most ${r.max_items} item(s), has ${items.length}`,
        );
      }
      if (r.unique === true) {
        const seen = new Set(items.map((i) => JSON.stringify(i)));
        if (seen.size !== items.length) {
          this.report(path, "repeated.unique", "items must be unique");
        }
      }
    }
    const itemRules = isObject(r.items) ? r.items : undefined;
    items.forEach((item, i) =>
      this.single(kind, itemRules, item, `${path}[${i}]`, "repeated.items.")
    );
  }

  map(kind: Kind, rules: Rules | undefined, pairs: Record<string, unknown>, path: string): void {
    const r = (rules?.map ?? {}) as Rules;
    const count = Object.keys(pairs).length;
    if (!(r.ignore_empty === true && count === 0)) {
      if (typeof r.min_pairs === "number" && count < r.min_pairs) {
        this.report(
          path,
          "map.min_pairs",
          `must have at least ${r.min_pairs} entr(ies), has ${count}`,
        );
      }
      if (typeof r.max_pairs === "number" && count > r.max_pairs) {
        this.report(
          path,
          "map.max_pairs",
          `must have at most ${r.max_pairs} entr(ies), has ${count}`,
        );
      }
    }
    for (const [key, item] of Object.entries(pairs)) {
      const at = `${path}[${JSON.stringify(key)}]`;
      if (isObject(r.keys)) {
        this.single({ of: "scalar", type: "string" }, r.keys, key, at, "map.keys.");
      }
      this.single(kind, isObject(r.values) ? r.values : undefined, item, at, "map.values.");
    }
  }

  /** One value (a singular field, a list item or a map value); `prefix` names where its rules sit. */
  single(kind: Kind, rules: Rules | undefined, value: unknown, path: string, prefix: string): void {
    const required = (rules?.message as Rules | undefined)?.required === true ||
      (kind.of === "message" && (rules?.any as Rules | undefined)?.required === true);
    switch (kind.of) {
      case "scalar":
        return this.scalar(
          kind.type,
          rules?.[kind.type] as Rules | undefined,
          value ?? defaultOf(kind.type),
          path,
          prefix,
        );
      case "enum":
        return this.enumValue(kind.type, rules?.enum as Rules | undefined, value, path, prefix);
      case "wrapper":
        if (value === undefined) {
          if (required) this.report(path, `${prefix}message.required`, "is required");
          return;
        }
        return this.scalar(kind.type, rules?.[kind.type] as Rules | undefined, value, path, prefix);
      case "duration":
        return this.duration(rules?.duration as Rules | undefined, required, value, path, prefix);
      case "any":
        return this.any(rules?.any as Rules | undefined, required, value, path, prefix);
      case "opaque":
        if (value === undefined && required) {
          this.report(path, `${prefix}message.required`, "is required");
        }
        return;
      case "message":
        if (value === undefined) {
          if (required) this.report(path, `${prefix}message.required`, "is required");
          return;
        }
        if ((rules?.message as Rules | undefined)?.skip === true) return;
        return this.message(kind.type, value as ProtoJson, path);
    }
  }

  scalar(
    type: string,
    rules: Rules | undefined,
    value: unknown,
    path: string,
    prefix: string,
  ): void {
    if (rules === undefined) return;
    const rule = (key: string) => `${prefix}${type}.${key}`;
    if (NUMBER_KINDS.has(type)) {
      const integer = INTEGER_KINDS.has(type);
      const toValue = (v: unknown): Comparable =>
        integer ? BigInt(v as number | string) : Number(v);
      const v = toValue(value);
      if (rules.ignore_empty === true && (v === 0 || v === 0n)) return;
      const show = (x: Comparable) => String(x);
      if (rules.const !== undefined && v !== toValue(rules.const)) {
        this.report(path, rule("const"), `must be ${rules.const}, got ${show(v)}`);
      }
      const broken = checkRange(v, rules, toValue, show);
      if (broken !== null) this.report(path, rule(broken.rule), broken.message);
      this.membership(rules, v, (x) => toValue(x), path, rule, show(v));
      return;
    }
    if (type === "bool") {
      if (rules.const !== undefined && value !== rules.const) {
        this.report(path, rule("const"), `must be ${rules.const}`);
      }
      return;
    }
    if (type === "bytes") {
      const length = atob(String(value)).length;
      if (typeof rules.len === "number" && length !== rules.len) {
        this.report(path, rule("len"), `must be exactly ${rules.len} byte(s), is ${length}`);
      }
      if (typeof rules.min_len === "number" && length < rules.min_len) {
        this.report(
          path,
          rule("min_len"),
          `must be at least ${rules.min_len} byte(s), is ${length}`,
        );
      }
      if (typeof rules.max_len === "number" && length > rules.max_len) {
        this.report(
          path,
          rule("max_len"),
          `must be at most ${rules.max_len} byte(s), is ${length}`,
        );
      }
      return;
    }
    this.string(rules, String(value), path, rule);
  }

  string(r: Rules, s: string, path: string, rule: (key: string) => string): void {
    if (r.ignore_empty === true && s === "") return;
    const chars = [...s].length;
    const bytes = new TextEncoder().encode(s).length;
    const quoted = JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
    if (r.const !== undefined && s !== r.const) {
      this.report(path, rule("const"), `must be ${JSON.stringify(r.const)}`);
    }
    if (typeof r.len === "number" && chars !== r.len) {
      this.report(path, rule("len"), `must be exactly ${r.len} character(s), is ${chars}`);
    }
    if (typeof r.min_len === "number" && chars < r.min_len) {
      this.report(path, rule("min_len"), `must be at least ${r.min_len} character(s), is ${chars}`);
    }
    if (typeof r.max_len === "number" && chars > r.max_len) {
      this.report(path, rule("max_len"), `must be at most ${r.max_len} character(s), is ${chars}`);
    }
    if (typeof r.min_bytes === "number" && bytes < r.min_bytes) {
      this.report(path, rule("min_bytes"), `must be at least ${r.min_bytes} byte(s), is ${bytes}`);
    }
    if (typeof r.max_bytes === "number" && bytes > r.max_bytes) {
      this.report(path, rule("max_bytes"), `must be at most ${r.max_bytes} byte(s), is ${bytes}`);
    }
    // PGV's patterns are RE2; the ones Envoy's API uses mean the same as a JS regex with `u`.
    if (typeof r.pattern === "string" && !new RegExp(r.pattern, "u").test(s)) {
      this.report(path, rule("pattern"), `must match ${r.pattern}, got ${quoted}`);
    }
    if (typeof r.prefix === "string" && !s.startsWith(r.prefix)) {
      this.report(path, rule("prefix"), `must start with ${JSON.stringify(r.prefix)}`);
    }
    if (typeof r.suffix === "string" && !s.endsWith(r.suffix)) {
      this.report(path, rule("suffix"), `must end with ${JSON.stringify(r.suffix)}`);
    }
    if (typeof r.contains === "string" && !s.includes(r.contains)) {
      this.report(path, rule("contains"), `must contain ${JSON.stringify(r.contains)}`);
    }
    if (typeof r.not_contains === "string" && s.includes(r.not_contains)) {
      this.report(path, rule("not_contains"), `must not contain ${JSON.stringify(r.not_contains)}`);
    }
    this.membership(r, s, (x) => String(x), path, rule, quoted);
    if (typeof r.well_known_regex === "string") {
      const name = r.well_known_regex as keyof typeof HEADER_REGEX;
      const regex = r.strict === false ? HEADER_REGEX.LOOSE : HEADER_REGEX[name];
      if (regex === undefined) throw new Error(`Unknown well_known_regex ${name}`);
      if (!regex.test(s)) {
        this.report(
          path,
          rule("well_known_regex"),
          `must be a valid ${name}${
            r.strict === false ? " (no NUL, CR or LF)" : ""
          }, got ${quoted}`,
        );
      }
    }
  }

  /** PGV's `in` / `not_in`; the `.proto` text may give a single value instead of a list. */
  membership<T>(
    r: Rules,
    v: T,
    to: (x: unknown) => T,
    path: string,
    rule: (key: string) => string,
    shown: string,
  ): void {
    const list = (key: string) => r[key] === undefined ? undefined : [r[key]].flat();
    const allowed = list("in");
    if (allowed !== undefined && !allowed.map(to).includes(v)) {
      this.report(path, rule("in"), `must be one of ${allowed.join(", ")}, got ${shown}`);
    }
    const refused = list("not_in");
    if (refused !== undefined && refused.map(to).includes(v)) {
      this.report(path, rule("not_in"), `must not be one of ${refused.join(", ")}, got ${shown}`);
    }
  }

  enumValue(
    type: protobuf.Enum,
    r: Rules | undefined,
    value: unknown,
    path: string,
    prefix: string,
  ): void {
    if (r === undefined) return;
    const rule = (key: string) => `${prefix}enum.${key}`;
    // Canonical enums are names; a number is a value the descriptor does not name.
    const number = value === undefined
      ? 0
      : typeof value === "number"
      ? value
      : type.values[String(value)];
    if (
      r.defined_only === true &&
      (number === undefined || !Object.values(type.values).includes(number))
    ) {
      this.report(
        path,
        rule("defined_only"),
        `${JSON.stringify(value)} is not a value of ${type.name}`,
      );
    }
    if (number === undefined) return;
    const shown = `${type.valuesById[number] ?? number} (${number})`;
    if (r.const !== undefined && number !== r.const) {
      this.report(path, rule("const"), `must be ${r.const}, got ${shown}`);
    }
    this.membership(r, number, (x) => Number(x), path, rule, shown);
  }

  duration(
    r: Rules | undefined,
    required: boolean,
    value: unknown,
    path: string,
    prefix: string,
  ): void {
    if (value === undefined) {
      if (required || r?.required === true) {
        this.report(
          path,
          `${prefix}${r?.required === true ? "duration" : "message"}.required`,
          "is required",
        );
      }
      return;
    }
    if (r === undefined) return;
    const v = durationNanos(String(value));
    const show = (x: Comparable) => showDuration(BigInt(x));
    if (r.const !== undefined && v !== boundNanos(r.const)) {
      this.report(
        path,
        `${prefix}duration.const`,
        `must be ${show(boundNanos(r.const))}, got ${show(v)}`,
      );
    }
    const broken = checkRange(v, r, boundNanos, show);
    if (broken !== null) this.report(path, `${prefix}duration.${broken.rule}`, broken.message);
    this.membership(r, v, boundNanos, path, (key) => `${prefix}duration.${key}`, show(v));
  }

  any(r: Rules | undefined, required: boolean, value: unknown, path: string, prefix: string): void {
    if (value === undefined) {
      if (required || r?.required === true) {
        this.report(
          path,
          `${prefix}${r?.required === true ? "any" : "message"}.required`,
          "is required",
        );
      }
      return;
    }
    const any = value as ProtoJson;
    const url = String(any["@type"] ?? any.type_url ?? "");
    if (r !== undefined) {
      this.membership(
        r,
        url,
        (x) => String(x),
        path,
        (key) => `${prefix}any.${key}`,
        JSON.stringify(url),
      );
    }
    // Envoy validates a typed config when it unpacks it: so do we, for the types we know.
    if (!("@type" in any)) return;
    const name = url.slice(url.lastIndexOf("/") + 1);
    let type: protobuf.Type;
    try {
      type = lookupType(name);
    } catch {
      return;
    }
    if (
      type.fullName in WRAPPER_KINDS || type.fullName === ".google.protobuf.Duration" ||
      OPAQUE.has(type.fullName)
    ) return;
    const { "@type": _, ...fields } = any;
    this.message(type, fields, path);
  }
}

function defaultOf(type: string): unknown {
  if (type === "string" || type === "bytes") return "";
  if (type === "bool") return false;
  return 0;
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

/**
 * The PGV rules `message` breaks.
 * @param typeName Full name of the message type, without a leading dot.
 * @param message The message in the canonical form of `decodeStrict`.
 */
export function violations(typeName: string, message: ProtoJson): Violation[] {
  const walk = new Walk();
  walk.message(lookupType(typeName), message, "");
  return walk.found;
}

/**
 * The PGV rules a resource breaks, for a resource in any form `encodeStrict`
 * takes (pre-encoded `Any`s included): it is encoded and decoded first, as
 * the proxy will see it.
 * @throws {import("./codec.ts").ProtoSchemaError} If it does not even fit the schema.
 */
export function resourceViolations(typeName: string, resource: unknown): Violation[] {
  return violations(typeName, decodeStrict(typeName, encodeStrict(typeName, resource)));
}

/** Violations as one line each: `path: message [rule]`. */
export function describeViolations(found: readonly Violation[]): string[] {
  return found.map((v) => `${v.path}: ${v.message} [${v.rule}]`);
}
