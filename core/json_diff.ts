/**
 * A structural diff of two JSON values, as a list of changed leaves with
 * JSON pointers: what policy history shows as "what changed" and what a
 * dry run shows for each proxy resource that would change. Arrays are
 * compared position by position, which reads well for the ordered lists of
 * Envoy config and policy rules; a length change shows as added or removed
 * tail entries.
 */
import { toPointer } from "./validate.ts";

/** One difference: `before` absent means added, `after` absent means removed. */
export interface JsonChange {
  pointer: string;
  before?: unknown;
  after?: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The differences between `before` and `after`, in document order; `[]` when equal. */
export function jsonDiff(before: unknown, after: unknown): JsonChange[] {
  const out: JsonChange[] = [];
  walk(before, after, [], out);
  return out;
}

function walk(a: unknown, b: unknown, path: PropertyKey[], out: JsonChange[]): void {
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (i >= a.length) out.push({ pointer: toPointer([...path, i]), after: b[i] });
      else if (i >= b.length) out.push({ pointer: toPointer([...path, i]), before: a[i] });
      else walk(a[i], b[i], [...path, i], out);
    }
    return;
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const key of keys) {
      const inA = Object.hasOwn(a, key) && a[key] !== undefined;
      const inB = Object.hasOwn(b, key) && b[key] !== undefined;
      if (inA && !inB) out.push({ pointer: toPointer([...path, key]), before: a[key] });
      else if (!inA && inB) out.push({ pointer: toPointer([...path, key]), after: b[key] });
      else if (inA && inB) walk(a[key], b[key], [...path, key], out);
    }
    return;
  }
  if (a !== b) out.push({ pointer: toPointer(path), before: a, after: b });
}
