/**
 * Policies, their history and the audit log in PostgreSQL.
 *
 * A policy change locks the `policies` counter row first, so changes run
 * one at a time and each sees the latest committed objects and history.
 * Audit ids come from the `audit` counter row, taken under its lock by every
 * insert: they increase in commit order, so paging by id never skips an
 * entry that committed late. The lock order is policies, then audit, then
 * the log, and nothing takes them the other way round.
 */
import type postgres from "postgres";
import { NotFoundError } from "../core/errors.ts";
import { type AnyPolicy, policyKey } from "../core/policy/model.ts";
import type { Logged } from "./postgres_log.ts";
import {
  auditOf,
  describePolicy,
  expectationFailed,
  type HistoryRow,
  type PolicyKey,
  refuseRepeatedKeys,
  revisionOf,
  stampPolicy,
  writeKey,
} from "./policy_rules.ts";
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  LogChange,
  PolicyChange,
  PolicyExpectation,
  PolicyQuery,
  PolicyRevision,
  PolicyWrite,
} from "./store.ts";

type Sql = postgres.Sql | postgres.TransactionSql;
type Tx = postgres.TransactionSql;

/** One policy, or `null`. */
export async function getPolicy(sql: Sql, key: PolicyKey): Promise<AnyPolicy | null> {
  const [row] = await sql<{ data: string }[]>`
    SELECT data FROM policies
    WHERE kind = ${key.kind} AND namespace = ${key.namespace} AND name = ${key.name}`;
  return row ? JSON.parse(row.data) as AnyPolicy : null;
}

/** Policies matching every given filter, by kind, namespace and name. */
export async function listPolicies(sql: Sql, query: PolicyQuery): Promise<AnyPolicy[]> {
  const rows = await sql<{ data: string }[]>`
    SELECT data FROM policies WHERE true
      ${query.kind === undefined ? sql`` : sql`AND kind = ${query.kind}`}
      ${query.namespace === undefined ? sql`` : sql`AND namespace = ${query.namespace}`}
    ORDER BY kind, namespace, name`;
  return rows.map((r) => JSON.parse(r.data) as AnyPolicy);
}

/** The current policy revision. */
export async function policyRevision(sql: Sql): Promise<number> {
  const [row] = await sql<{ value: number }[]>`SELECT value FROM counters WHERE name = 'policies'`;
  return row?.value ?? 0;
}

/** See `Store.writePolicies`. */
export async function writePolicies(
  tx: Tx,
  change: PolicyChange,
): Promise<Logged<(AnyPolicy | null)[]>> {
  refuseRepeatedKeys(change.writes);
  await tx`SELECT value FROM counters WHERE name = 'policies' FOR UPDATE`;
  for (const expected of change.expect ?? []) await checkExpectation(tx, expected);
  const stored: (AnyPolicy | null)[] = [];
  for (const write of change.writes) stored.push(await writePolicy(tx, write, change));
  if (stored.length === 0) return { result: stored, changes: [] };
  const [row] = await tx<{ value: number }[]>`
    UPDATE counters SET value = value + 1 WHERE name = 'policies' RETURNING value`;
  const changes = change.writes.map((write): LogChange => {
    const key = writeKey(write);
    return { kind: "policy", key: policyKey(key.kind, key.namespace, key.name) };
  });
  return { result: stored, changes, policies: row!.value };
}

async function checkExpectation(tx: Tx, expected: PolicyExpectation): Promise<void> {
  const [row] = await tx<{ revision: number }[]>`
    SELECT revision FROM policies
    WHERE kind = ${expected.kind} AND namespace = ${expected.namespace} AND name = ${expected.name}`;
  const actual = row?.revision ?? null;
  if (actual !== expected.revision) throw expectationFailed(expected, actual);
}

/** Applies one write of a change; returns what it stored. */
async function writePolicy(
  tx: Tx,
  write: PolicyWrite,
  change: PolicyChange,
): Promise<AnyPolicy | null> {
  const key = writeKey(write);
  const current = await getPolicy(tx, key);
  // From the history, not the current row: a deleted object's revisions stay taken.
  const [next] = await tx<{ revision: number }[]>`
    SELECT COALESCE(MAX(revision), 0) + 1 AS revision FROM policy_history
    WHERE kind = ${key.kind} AND namespace = ${key.namespace} AND name = ${key.name}`;
  const revision = next!.revision;
  const entry = { ...key, revision, at: change.at, actor: change.actor };
  if (write.op === "delete") {
    if (!current) throw new NotFoundError(`The ${describePolicy(key)} does not exist`);
    await tx`
      DELETE FROM policies
      WHERE kind = ${key.kind} AND namespace = ${key.namespace} AND name = ${key.name}`;
    await recordPolicyWrite(tx, { ...entry, op: "delete", object: null }, 200);
    return null;
  }
  const policy = stampPolicy(write, current, revision, change);
  await tx`
    INSERT INTO policies (kind, namespace, name, revision, data)
    VALUES (${key.kind}, ${key.namespace}, ${key.name}, ${revision}, ${JSON.stringify(policy)})
    ON CONFLICT (kind, namespace, name) DO UPDATE SET
      revision = EXCLUDED.revision, data = EXCLUDED.data`;
  const op = write.rollback ? "rollback" : current ? "update" : "create";
  await recordPolicyWrite(tx, { ...entry, op, object: policy }, current ? 200 : 201);
  return policy;
}

/** Appends a write's history entry and its `ok` audit entry. */
async function recordPolicyWrite(tx: Tx, entry: PolicyRevision, status: number): Promise<void> {
  await tx`
    INSERT INTO policy_history (kind, namespace, name, revision, op, at, actor, data)
    VALUES (${entry.kind}, ${entry.namespace}, ${entry.name}, ${entry.revision}, ${entry.op},
      ${entry.at}, ${entry.actor}, ${entry.object && JSON.stringify(entry.object)})`;
  await insertAudit(tx, auditOf(entry, status));
}

/** Every revision of one policy, oldest first. */
export async function policyHistory(sql: Sql, key: PolicyKey): Promise<PolicyRevision[]> {
  const rows = await sql<HistoryRow[]>`
    SELECT revision, op, at, actor, data FROM policy_history
    WHERE kind = ${key.kind} AND namespace = ${key.namespace} AND name = ${key.name}
    ORDER BY revision`;
  return rows.map((r) => revisionOf(key, r));
}

/** Inserts one audit entry with the next id. */
export async function insertAudit(sql: Sql, e: AuditInput): Promise<void> {
  await sql`
    WITH next AS (UPDATE counters SET value = value + 1 WHERE name = 'audit' RETURNING value)
    INSERT INTO audit (id, at, actor, action, kind, namespace, name, outcome, status, revision, detail)
    SELECT value, ${e.at}, ${e.actor}, ${e.action}, ${e.kind}, ${e.namespace}, ${e.name},
      ${e.outcome}, ${e.status}, ${e.revision}, ${e.detail}
    FROM next`;
}

/** Audit entries after `query.after`, oldest first. */
export async function listAudit(sql: Sql, query: AuditQuery): Promise<AuditEntry[]> {
  if (query.limit <= 0) return [];
  const equals = (column: string, value: string | undefined) =>
    value === undefined ? sql`` : sql`AND ${sql(column)} = ${value}`;
  const rows = await sql<AuditEntry[]>`
    SELECT id, at, actor, action, kind, namespace, name, outcome, status, revision, detail
    FROM audit WHERE id > ${query.after ?? 0}
      ${equals("kind", query.kind)} ${equals("namespace", query.namespace)}
      ${equals("name", query.name)} ${equals("outcome", query.outcome)}
    ORDER BY id LIMIT ${query.limit}`;
  // A plain array: postgres.js returns its own array subclass.
  return [...rows];
}
