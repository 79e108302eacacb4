/**
 * What every store backend does the same way with policy writes: the key a
 * write names, how messages name an object, the rule that one change writes
 * each object once, the words of a failed expectation, what a stored object
 * carries and the audit entry of a write. The SQL around them is each
 * backend's own.
 */
import { InvalidError, PreconditionFailedError } from "../core/errors.ts";
import { type AnyPolicy, policyKey, type PolicyKind } from "../core/policy/model.ts";
import type {
  AuditInput,
  PolicyChange,
  PolicyExpectation,
  PolicyRevision,
  PolicyWrite,
} from "./store.ts";

/** The key of a policy. */
export interface PolicyKey {
  kind: PolicyKind;
  namespace: string;
  name: string;
}

/** The key of the object a write puts or deletes. */
export function writeKey(write: PolicyWrite): PolicyKey {
  return write.op === "put"
    ? {
      kind: write.policy.kind,
      namespace: write.policy.metadata.namespace,
      name: write.policy.metadata.name,
    }
    : { kind: write.kind, namespace: write.namespace, name: write.name };
}

/** `TrafficRoute "default/web"`, or `MeshConfig "mesh"` for the one object without a namespace. */
export function describePolicy(key: PolicyKey): string {
  return `${key.kind} "${key.namespace === "" ? key.name : `${key.namespace}/${key.name}`}"`;
}

/**
 * Refuses a change that writes one object twice: its history would need two
 * entries at one revision, and which write should win is the caller's call.
 */
export function refuseRepeatedKeys(writes: readonly PolicyWrite[]): void {
  const seen = new Set<string>();
  for (const [i, write] of writes.entries()) {
    const key = writeKey(write);
    const text = policyKey(key.kind, key.namespace, key.name);
    if (seen.has(text)) {
      const message = `${describePolicy(key)} is written twice: write each object once per change`;
      throw new InvalidError(`Cannot apply the change: ${message}`, [
        { pointer: `/writes/${i}`, message },
      ]);
    }
    seen.add(text);
  }
}

/** The error for an expectation that `actual` (the stored revision, or `null`) does not meet. */
export function expectationFailed(
  expected: PolicyExpectation,
  actual: number | null,
): PreconditionFailedError {
  const what = describePolicy(expected);
  return new PreconditionFailedError(
    expected.revision === null
      ? `The ${what} already exists: it is at revision ${actual}`
      : actual === null
      ? `The ${what} no longer exists`
      : `The ${what} changed: it is at revision ${actual}, not ${expected.revision}`,
    actual,
  );
}

/**
 * The object a put stores at `revision`: `createdAt` kept from the `current`
 * object, `updatedAt`/`updatedBy` from the change.
 */
export function stampPolicy(
  write: Extract<PolicyWrite, { op: "put" }>,
  current: AnyPolicy | null,
  revision: number,
  change: PolicyChange,
): AnyPolicy {
  return {
    ...write.policy,
    metadata: {
      ...write.policy.metadata,
      revision,
      createdAt: current?.metadata.createdAt ?? change.at,
      updatedAt: change.at,
      updatedBy: change.actor,
    },
  } as AnyPolicy;
}

/** The `ok` audit entry of a successful write. */
export function auditOf(entry: PolicyRevision, status: number): AuditInput {
  return {
    at: entry.at,
    actor: entry.actor,
    action: entry.op === "create" || entry.op === "update" ? "apply" : entry.op,
    kind: entry.kind,
    namespace: entry.namespace,
    name: entry.name,
    outcome: "ok",
    status,
    revision: entry.revision,
    detail: entry.op,
  };
}

/** A row of the `policy_history` table, as both backends read it (a type, so a driver's row casts to it). */
export type HistoryRow = {
  revision: number;
  op: PolicyRevision["op"];
  at: string;
  actor: string;
  /** The policy as JSON; `null` for a delete. */
  data: string | null;
};

/** A history row of the policy `key` as a revision. */
export function revisionOf(key: PolicyKey, row: HistoryRow): PolicyRevision {
  return {
    ...key,
    revision: row.revision,
    op: row.op,
    at: row.at,
    actor: row.actor,
    object: row.data === null ? null : JSON.parse(row.data) as AnyPolicy,
  };
}
