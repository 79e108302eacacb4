/**
 * Pass 1 of policy validation (see `validate.ts`): one document on its own,
 * its envelope and spec shape (the zod schemas of `model.ts`), then the
 * per-kind rules of `spec_rules.ts` once the shape is right.
 */
import { z } from "zod";
import type { FieldProblem } from "../errors.ts";
import { zodProblems } from "../validate.ts";
import { problem } from "./field_problem.ts";
import {
  MESH_CONFIG_NAME,
  POLICY_KINDS,
  type PolicyDraft,
  policyInputSchema,
  type PolicyKind,
  SPEC_SCHEMAS,
} from "./model.ts";
import { type KindSpec, specProblems } from "./spec_rules.ts";

/** What {@link parsePolicy} returns: a draft, or every problem found. */
export type ParseResult =
  | { draft: PolicyDraft; problems: [] }
  | { draft: null; problems: FieldProblem[] };

/**
 * Parses a policy document as written (REST body or one YAML document of
 * `ironmesh apply -f`) into a draft: the namespace defaults to
 * `defaultNamespace`, labels to `{}`, and the spec is kept as written
 * (durations stay text). MeshConfig is named `mesh` and has no namespace
 * (stored as `""`).
 */
export function parsePolicy(input: unknown, defaultNamespace = "default"): ParseResult {
  const envelope = policyInputSchema.safeParse(withoutEmptyMeshNamespace(input));
  // The envelope's `spec` is `unknown`; a missing one is reported by the spec's own schema below.
  const problems = envelope.success
    ? []
    : zodProblems(envelope.error).filter((p) => p.pointer !== "/spec");
  // A bad envelope (say, a misspelt name) should not hide the spec's problems.
  const kind = envelope.success ? envelope.data.kind : kindOf(input);
  if (kind === undefined) return { draft: null, problems };
  if (envelope.success && kind === "MeshConfig") {
    const { name, namespace } = envelope.data.metadata;
    if (name !== MESH_CONFIG_NAME) {
      problems.push(
        problem(["metadata", "name"], `A MeshConfig must be named "mesh", not "${name}"`),
      );
    }
    if (namespace !== undefined) {
      problems.push(
        problem(
          ["metadata", "namespace"],
          `A MeshConfig has no namespace: remove "${namespace}"`,
        ),
      );
    }
  }
  const spec = SPEC_SCHEMAS[kind].safeParse(isRecord(input) ? input.spec : undefined);
  if (!spec.success) {
    problems.push(...zodProblems(new z.ZodError(unionIssues(spec.error.issues)), ["spec"]));
    return { draft: null, problems };
  }
  // The schema was chosen by `kind`, so the pair is consistent.
  const typed = { kind, spec: spec.data } as KindSpec;
  problems.push(...specProblems(typed));
  if (!envelope.success || problems.length > 0) return { draft: null, problems };
  const { name, namespace, labels } = envelope.data.metadata;
  const draft = {
    ...typed,
    metadata: {
      name,
      namespace: kind === "MeshConfig" ? "" : namespace ?? defaultNamespace,
      labels: labels ?? {},
    },
  } as PolicyDraft;
  return { draft, problems: [] };
}

type Issue = z.core.$ZodIssue;

/** An issue of a branch that refused the value's type (an object where a list may go). */
function isTypeMismatch(issue: Issue): boolean {
  return issue.code === "invalid_type" && issue.path.length === 0;
}

/**
 * zod reports a union (a rule's `match`: one match or a list) whose value
 * fails past the type check as a bare "Invalid input" at the union, with
 * each branch's issues inside. The value's type picks the branch it was
 * meant for, so its issues are reported instead, each at its own field; a
 * value of no branch's type is named with the types it may have.
 */
function unionIssues(issues: readonly Issue[]): Issue[] {
  return issues.flatMap((issue): Issue[] => {
    if (issue.code !== "invalid_union" || issue.errors.length === 0) return [issue];
    const meant = issue.errors.filter((branch) =>
      !(branch.length === 1 && isTypeMismatch(branch[0]!))
    );
    if (meant.length === 1) {
      return unionIssues(meant[0]!).map((i) => ({ ...i, path: [...issue.path, ...i.path] }));
    }
    if (meant.length > 0) return [issue];
    const expected = issue.errors.map((branch) => (branch[0] as { expected?: string }).expected);
    const received = /received (\w+)$/.exec(issue.errors[0]![0]!.message)?.[1];
    return [{
      ...issue,
      message: `Invalid input: expected ${expected.join(" or ")}${
        received === undefined ? "" : `, received ${received}`
      }`,
    }];
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function kindOf(input: unknown): PolicyKind | undefined {
  return isRecord(input) ? POLICY_KINDS.find((k) => k === input.kind) : undefined;
}

/** MeshConfig has no namespace: reads return `namespace: ""`, which `apply` may send back. */
function withoutEmptyMeshNamespace(input: unknown): unknown {
  if (
    !isRecord(input) || input.kind !== "MeshConfig" || !isRecord(input.metadata) ||
    input.metadata.namespace !== ""
  ) return input;
  const { namespace: _, ...metadata } = input.metadata;
  return { ...input, metadata };
}
