/**
 * Policies in the SQLite store with what records their changes: the current
 * objects, every object's history (revisions never reused across a delete),
 * the audit log, and the policy revision that tells watchers something changed.
 */
import type { SQLInputValue } from "node:sqlite";
import { NotFoundError } from "../core/errors.ts";
import type { AnyPolicy } from "../core/policy/model.ts";
import * as rules from "./policy_rules.ts";
import type { Row, SqliteDb } from "./sqlite_db.ts";
import type * as store from "./store.ts";

/** One policy, or `null`. */
export function getPolicy(db: SqliteDb, key: rules.PolicyKey): AnyPolicy | null {
  const row = db.stmt(
    "SELECT data FROM policies WHERE kind = ? AND namespace = ? AND name = ?",
  ).get(key.kind, key.namespace, key.name) as { data: string } | undefined;
  return row ? JSON.parse(row.data) as AnyPolicy : null;
}

/** Policies matching every given filter, by kind, namespace and name. */
export function listPolicies(db: SqliteDb, query: store.PolicyQuery): AnyPolicy[] {
  const clauses: string[] = ["1 = 1"];
  const params: SQLInputValue[] = [];
  if (query.kind !== undefined) {
    clauses.push("kind = ?");
    params.push(query.kind);
  }
  if (query.namespace !== undefined) {
    clauses.push("namespace = ?");
    params.push(query.namespace);
  }
  const rows = db.stmt(
    `SELECT data FROM policies WHERE ${clauses.join(" AND ")} ORDER BY kind, namespace, name`,
  ).all(...params) as { data: string }[];
  return rows.map((r) => JSON.parse(r.data) as AnyPolicy);
}

/** Applies a policy change all or nothing; returns what each write stored. */
export function writePolicies(db: SqliteDb, change: store.PolicyChange): (AnyPolicy | null)[] {
  rules.refuseRepeatedKeys(change.writes);
  return db.transaction(() => {
    for (const expected of change.expect ?? []) checkExpectation(db, expected);
    const stored = change.writes.map((write) => writePolicy(db, write, change));
    if (stored.length > 0) {
      db.stmt(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'policy_revision'",
      ).run();
    }
    return stored;
  });
}

/** Every revision of one policy, oldest first. */
export function policyHistory(db: SqliteDb, key: rules.PolicyKey): store.PolicyRevision[] {
  const rows = db.stmt(
    "SELECT revision, op, at, actor, data FROM policy_history WHERE kind = ? AND namespace = ? AND name = ? ORDER BY revision",
  ).all(key.kind, key.namespace, key.name) as rules.HistoryRow[];
  return rows.map((r) => rules.revisionOf(key, r));
}

/** The policy revision: bumped by every policy change. */
export function policyRevision(db: SqliteDb): number {
  const row = db.stmt("SELECT value FROM meta WHERE key = 'policy_revision'").get() as
    | { value: string }
    | undefined;
  return Number(row?.value ?? 0);
}

/** Appends one audit entry. */
export function appendAudit(db: SqliteDb, e: store.AuditInput): void {
  db.stmt(
    "INSERT INTO audit (at, actor, action, kind, namespace, name, outcome, status, revision, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  ).run(
    e.at,
    e.actor,
    e.action,
    e.kind,
    e.namespace,
    e.name,
    e.outcome,
    e.status,
    e.revision,
    e.detail,
  );
}

/** Audit entries after the cursor, oldest first. */
export function listAudit(db: SqliteDb, query: store.AuditQuery): store.AuditEntry[] {
  if (query.limit <= 0) return [];
  const clauses = ["id > ?"];
  const params: SQLInputValue[] = [query.after ?? 0];
  for (const column of ["kind", "namespace", "name", "outcome"] as const) {
    const value = query[column];
    if (value !== undefined) {
      clauses.push(`${column} = ?`);
      params.push(value);
    }
  }
  const rows = db.stmt(
    `SELECT id, at, actor, action, kind, namespace, name, outcome, status, revision, detail FROM audit WHERE ${
      clauses.join(" AND ")
    } ORDER BY id LIMIT ?`,
  ).all(...params, query.limit) as Row[];
  // Spread into plain objects: rows come with a null prototype.
  return rows.map((r) => ({ ...r }) as unknown as store.AuditEntry);
}

function checkExpectation(db: SqliteDb, expected: store.PolicyExpectation): void {
  const row = db.stmt(
    "SELECT revision FROM policies WHERE kind = ? AND namespace = ? AND name = ?",
  ).get(expected.kind, expected.namespace, expected.name) as { revision: number } | undefined;
  const actual = row?.revision ?? null;
  if (actual !== expected.revision) throw rules.expectationFailed(expected, actual);
}

/** Applies one write inside {@link writePolicies}' transaction; returns what it stored. */
function writePolicy(
  db: SqliteDb,
  write: store.PolicyWrite,
  change: store.PolicyChange,
): AnyPolicy | null {
  const key = rules.writeKey(write);
  const current = getPolicy(db, key);
  // From the history, not the current row: a deleted object's revisions stay taken.
  const { revision } = db.stmt(
    "SELECT COALESCE(MAX(revision), 0) + 1 AS revision FROM policy_history WHERE kind = ? AND namespace = ? AND name = ?",
  ).get(key.kind, key.namespace, key.name) as { revision: number };
  const entry = { ...key, revision, at: change.at, actor: change.actor };
  if (write.op === "delete") {
    if (!current) throw new NotFoundError(`The ${rules.describePolicy(key)} does not exist`);
    db.stmt("DELETE FROM policies WHERE kind = ? AND namespace = ? AND name = ?").run(
      key.kind,
      key.namespace,
      key.name,
    );
    recordWrite(db, { ...entry, op: "delete", object: null }, 200);
    return null;
  }
  const policy = rules.stampPolicy(write, current, revision, change);
  db.stmt(
    "INSERT OR REPLACE INTO policies (kind, namespace, name, revision, data) VALUES (?, ?, ?, ?, ?)",
  ).run(key.kind, key.namespace, key.name, revision, JSON.stringify(policy));
  const op = write.rollback ? "rollback" : current ? "update" : "create";
  recordWrite(db, { ...entry, op, object: policy }, current ? 200 : 201);
  return policy;
}

/** Appends a write's history entry and its `ok` audit entry. */
function recordWrite(db: SqliteDb, entry: store.PolicyRevision, status: number): void {
  db.stmt(
    "INSERT INTO policy_history (kind, namespace, name, revision, op, at, actor, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  ).run(
    entry.kind,
    entry.namespace,
    entry.name,
    entry.revision,
    entry.op,
    entry.at,
    entry.actor,
    entry.object && JSON.stringify(entry.object),
  );
  appendAudit(db, rules.auditOf(entry, status));
}
