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

/** JSON with object keys sorted at every level; arrays keep their order. */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort(compareStrings);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`).join(",")}}`;
}

/** The first 16 hex digits of the SHA-256 of `text`. */
export function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The content version of a resource body. */
export function contentVersion(body: JsonValue): string {
  return shortHash(canonicalJson(body));
}
