/** How policy validation locates a problem: a path from the document's root, as a JSON pointer. */
import type { FieldProblem } from "../errors.ts";
import { toPointer } from "../validate.ts";

export type Path = readonly (string | number)[];

export function problem(path: Path, message: string): FieldProblem {
  return { pointer: toPointer(path), message };
}

export function quoted(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}
