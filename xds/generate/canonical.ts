/**
 * Content versions: a resource's version is the hash of its canonical JSON,
 * so equal content always carries an equal version, on every server replica
 * and after every restart, and an unchanged resource is never re-pushed.
 */
import { createHash } from "node:crypto";
import type { JsonValue } from "./model.ts";

/** Code-unit order, the same everywhere (`localeCompare` depends on the locale). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Canonical JSON of deeply frozen values met before. Such a value never
 * changes (`push_context.ts` `shared()` freezes what many resources share,
 * such as the filter chain of every server Listener of a service port), so
 * its text is kept from the second time it is met, and the parts many
 * bodies share are not walked again for each body. A value met once is only
 * marked (`null`); one frozen only on the surface is never kept.
 */
const FROZEN_TEXT = new WeakMap<object, string | null>();

/** Whether every object walked since the innermost open value began was frozen. */
let allFrozen = true;

/** JSON with object keys sorted at every level; arrays keep their order. */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const frozen = Object.isFrozen(value);
  const known = frozen ? FROZEN_TEXT.get(value) : undefined;
  if (known) return known;
  const outer = allFrozen;
  allFrozen = true;
  let text: string;
  if (Array.isArray(value)) text = `[${value.map(canonicalJson).join(",")}]`;
  else {
    const keys = Object.keys(value).sort(compareStrings);
    text = `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`).join(",")}}`;
  }
  const deep = frozen && allFrozen;
  allFrozen = outer && deep;
  if (deep) FROZEN_TEXT.set(value, known === null ? text : null);
  return text;
}

/** The first 16 hex digits of the SHA-256 of `text`. */
export function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The content version of a resource body. */
export function contentVersion(body: JsonValue): string {
  return shortHash(canonicalJson(body));
}
