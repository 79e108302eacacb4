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
 * Loading `validate_rules.ts` checks that every rule in the file is one this
 * module implements and fits its field's type, so a new Envoy version cannot
 * add a rule that is silently skipped.
 *
 * Pure: no I/O.
 * @module
 */
import protobuf from "protobufjs";
import { decodeStrict, encodeStrict, lookupType, type ProtoJson } from "./codec.ts";
import {
  boundNanos,
  checkRange,
  type Comparable,
  durationNanos,
  HEADER_REGEX,
  INTEGER_KINDS,
  isObject,
  type Kind,
  kindOf,
  NUMBER_KINDS,
  OPAQUE,
  RULES,
  type Rules,
  showDuration,
  WRAPPER_KINDS,
} from "./validate_rules.ts";

/** One rule a message breaks. */
export interface Violation {
  /** Where, from the top of the checked message: `filter_chains[0].filters[0].name`. */
  path: string;
  /** The rule, as PGV names it: `string.min_len`, `oneof.required`, `repeated.items.enum.defined_only`. */
  rule: string;
  /** What is wrong, in words. */
  message: string;
}

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
