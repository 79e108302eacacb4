/**
 * Generates `xds/proto/envoy_rules.json`: the protoc-gen-validate (PGV)
 * rules that Envoy's `.proto` files attach to the types the control plane
 * emits. Envoy refuses a resource that breaks one of them (`min_len`, `gt`,
 * required messages, `defined_only` enums, …) with a NACK; the checker in
 * `xds/proto/validate.ts` applies the same rules before anything is sent.
 *
 * The rules are read from the same `.proto` files and for the same types as
 * the descriptor (`scripts/gen_xds_protos.ts`), which drops options; they are
 * kept here in their PGV form (`{"string": {"min_len": 1}}`), sorted, so the
 * file only changes when the rules do.
 *
 * Run: `deno task gen:protos` (writes both files), or
 * `deno run -A scripts/gen_xds_rules.ts --out PATH` to write elsewhere (the
 * staleness test does this).
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import protobuf from "protobufjs";
import { loadRoot, PACKED_IN_ANY, protoDirs, reachable, ROOTS } from "./gen_xds_protos.ts";

/** Where the rules live in the repository. */
export const RULES_FILE = new URL("../xds/proto/envoy_rules.json", import.meta.url);

type Json = { [key: string]: unknown };

/** The rules of one message type: per field, and the oneofs that must have a member set. */
export interface TypeRules {
  fields?: Record<string, Json>;
  required_oneofs?: string[];
}

const FIELD_RULES = "(validate.rules)";
const ONEOF_REQUIRED = "(validate.required)";
/** Message-level options PGV defines; a type using one would need the checker to learn it. */
const MESSAGE_OPTIONS = ["(validate.disabled)", "(validate.ignored)"];

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Merges PGV option objects: a field may state its rules in several `[(validate.rules)…]` parts. */
function merge(into: Json, from: Json): Json {
  for (const [key, value] of Object.entries(from)) {
    const have = into[key];
    into[key] = isObject(have) && isObject(value) ? merge({ ...have }, value) : value;
  }
  return into;
}

/** Sorts keys at every depth, so the file does not depend on the order options were written in. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (!isObject(value)) return value;
  const keys = Object.keys(value).sort();
  return Object.fromEntries(keys.map((k) => [k, canonical(value[k])]));
}

function fieldRules(field: protobuf.Field): Json | undefined {
  let rules: Json | undefined;
  for (const option of field.parsedOptions ?? []) {
    const value = (option as Json)[FIELD_RULES];
    if (isObject(value)) rules = merge(rules ?? {}, value);
  }
  return rules;
}

function typeRules(type: protobuf.Type): TypeRules | undefined {
  for (const option of type.parsedOptions ?? []) {
    const used = MESSAGE_OPTIONS.filter((o) => o in (option as Json));
    if (used.length > 0) {
      throw new Error(`Type "${type.fullName}" sets ${used.join(", ")}, which the checker ignores`);
    }
  }
  const fields: [string, Json][] = [];
  for (const field of type.fieldsArray) {
    const rules = fieldRules(field);
    if (rules !== undefined) fields.push([field.name, canonical(rules) as Json]);
  }
  const oneofs = type.oneofsArray
    .filter((o) => (o.parsedOptions ?? []).some((p) => (p as Json)[ONEOF_REQUIRED] === true))
    .map((o) => o.name)
    .sort();
  if (fields.length === 0 && oneofs.length === 0) return undefined;
  const out: TypeRules = {};
  if (fields.length > 0) out.fields = Object.fromEntries(fields.sort(([a], [b]) => a < b ? -1 : 1));
  if (oneofs.length > 0) out.required_oneofs = oneofs;
  return out;
}

/** Builds the rules of every type the descriptor keeps, by full name without the leading dot. */
export function buildRules(dirs: readonly string[] = protoDirs()): Record<string, TypeRules> {
  const names = [...ROOTS, ...PACKED_IN_ANY];
  const root = loadRoot(dirs, names);
  const out: [string, TypeRules][] = [];
  for (const name of reachable(root, names)) {
    const type = root.lookup(name);
    if (!(type instanceof protobuf.Type)) continue;
    const rules = typeRules(type);
    if (rules !== undefined) out.push([name, rules]);
  }
  return Object.fromEntries(out.sort(([a], [b]) => a < b ? -1 : 1));
}

/** The rules as file text, laid out exactly as `deno fmt` would lay it out. */
export function renderRules(rules: Record<string, TypeRules>): string {
  return JSON.stringify(rules, null, 2) + "\n";
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string" } } });
  const out = values.out ?? fileURLToPath(RULES_FILE);
  const text = renderRules(buildRules());
  Deno.writeTextFileSync(out, text);
  console.log(`Wrote ${out} (${text.length} bytes)`);
}
