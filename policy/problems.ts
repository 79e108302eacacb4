/**
 * How a policy write's refusals are located and worded: the document of a
 * batch a problem belongs to, a failed `If-Match` / `If-None-Match`, the
 * `Invalid` error of a refused batch, and what the audit log can name of a
 * document that may not even parse.
 */
import { type FieldProblem, InvalidError } from "../core/errors.ts";
import type { PolicyKind } from "../core/policy/model.ts";

/** The document a batch problem belongs to (`/items/<i>/…`); problems without one sort first. */
export function itemIndex(problem: FieldProblem): number {
  const m = /^\/items\/(\d+)/.exec(problem.pointer);
  return m ? Number(m[1]) : -1;
}

/** `problem` moved under `/items/<index>`. */
export function itemPointer(index: number, problem: FieldProblem): FieldProblem {
  return { ...problem, pointer: `/items/${index}${problem.pointer}` };
}

/** Kind, namespace and name of a document as far as they can be read, for the audit log. */
export function identify(
  doc: unknown,
): { kind: string; metadata: { namespace?: string; name?: string } } {
  const d = (typeof doc === "object" && doc !== null ? doc : {}) as Record<string, unknown>;
  const m =
    (typeof d["metadata"] === "object" && d["metadata"] !== null ? d["metadata"] : {}) as Record<
      string,
      unknown
    >;
  const text = (v: unknown) => typeof v === "string" ? v.slice(0, 253) : undefined;
  const namespace = text(m["namespace"]);
  const name = text(m["name"]);
  return {
    kind: text(d["kind"]) ?? "",
    metadata: {
      ...(namespace !== undefined ? { namespace } : {}),
      ...(name !== undefined ? { name } : {}),
    },
  };
}

/** `namespace/name`, or `name` for MeshConfig. */
export function describe(namespace: string, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** The problem of a write whose precondition (`If-Match`, `If-None-Match`) failed. */
export function preconditionProblem(
  kind: PolicyKind,
  namespace: string,
  name: string,
  expected: number | null,
  actual: number | null,
): FieldProblem {
  const what = `${kind} "${describe(namespace, name)}"`;
  const message = expected === null
    ? `${what} already exists (revision ${actual}): it was expected not to`
    : actual === null
    ? `${what} does not exist: it was expected at revision ${expected}`
    : `${what} changed: it is at revision ${actual}, not ${expected}`;
  return { in: "header", pointer: expected === null ? "/If-None-Match" : "/If-Match", message };
}

/** The error of a refused batch: its first problem in the message, all of them attached. */
export function invalid(problems: FieldProblem[]): InvalidError {
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
  return new InvalidError(
    `Invalid policy: ${first.pointer || "/"}: ${first.message}${more}`,
    problems,
  );
}
