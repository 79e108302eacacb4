import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import {
  ConflictError,
  InvalidError,
  NotFoundError,
  PreconditionFailedError,
  UnavailableError,
} from "../core/errors.ts";
import type { CertificateRecord, Instance, MeshNode, Service, Token } from "../core/model.ts";
import { type AnyPolicy, policyKey, type PolicyKind } from "../core/policy/model.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import {
  type AuditEntry,
  type AuditInput,
  type AuditQuery,
  type Batch,
  type CertificateQuery,
  keyOf,
  type Kind,
  KINDS,
  type ListQuery,
  type NodeTouch,
  type Objects,
  type PolicyChange,
  type PolicyExpectation,
  type PolicyQuery,
  type PolicyRevision,
  type PolicyWrite,
  type Store,
  type StoredToken,
} from "./store.ts";

/** Options of {@link openSqliteStore}. */
export interface SqliteOptions {
  /** Run forward migrations on open. Default: true. */
  migrate?: boolean;
}

/**
 * Opens (creating if needed) the embedded SQLite store at `path` and brings
 * its schema up to date.
 *
 * WAL with `synchronous=NORMAL` means a commit does not fsync; the WAL is
 * synced at checkpoints. A crash of the machine can lose the last moments of
 * writes but never corrupts the database, which is the trade Consul and etcd
 * users accept for registry data that agents re-send anyway.
 */
export function openSqliteStore(path: string, options: SqliteOptions = {}): SqliteStore {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA foreign_keys = ON");
    const store = new SqliteStore(db);
    if (options.migrate ?? true) store.migrate();
    return store;
  } catch (error) {
    db.close();
    throw error;
  }
}

type Row = Record<string, SQLInputValue>;

/** The embedded SQLite implementation of {@link Store}. */
export class SqliteStore implements Store {
  readonly backend = "sqlite";
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  #stmt(sql: string): StatementSync {
    if (this.#closed) throw new UnavailableError("The store is closed");
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /** Applies every migration newer than the database, each in its own transaction. */
  migrate(): void {
    this.#db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    );
    const current = this.#schemaVersion();
    const latest = SQLITE_MIGRATIONS.at(-1)?.version ?? 0;
    if (current > latest) {
      throw new UnavailableError(
        `Database schema version ${current} is newer than this ironmesh knows (${latest}): run a newer ironmesh or restore a backup taken by this version`,
      );
    }
    for (const migration of SQLITE_MIGRATIONS) {
      if (migration.version <= current) continue;
      this.#transaction(() => {
        this.#db.exec(migration.sql);
        this.#db.prepare(
          "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        ).run(migration.version, migration.description, new Date().toISOString());
      });
    }
  }

  #schemaVersion(): number {
    const row = this.#db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as
      | { v: number | null }
      | undefined;
    return row?.v ?? 0;
  }

  #transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  #revision(): number {
    const row = this.#stmt("SELECT value FROM meta WHERE key = 'revision'").get() as
      | { value: string }
      | undefined;
    return Number(row?.value ?? 0);
  }

  revision(): Promise<number> {
    return Promise.resolve(this.#revision());
  }

  get<K extends Kind>(kind: K, key: string): Promise<Objects[K] | null> {
    const row = this.#stmt(
      "SELECT data, revision, heartbeat FROM objects WHERE kind = ? AND key = ?",
    ).get(kind, key) as Row | undefined;
    return Promise.resolve(row ? decode<K>(row) : null);
  }

  list<K extends Kind>(kind: K, query: ListQuery<Objects[K]>): Promise<Objects[K][]> {
    const clauses = ["kind = ?"];
    const params: SQLInputValue[] = [kind];
    for (const column of ["namespace", "service", "node", "health"] as const) {
      const value = query[column];
      if (value !== undefined) {
        clauses.push(`${column} = ?`);
        params.push(value);
      }
    }
    if (query.after !== undefined) {
      clauses.push("key > ?");
      params.push(query.after);
    }
    const sql = `SELECT data, revision, heartbeat FROM objects WHERE ${
      clauses.join(" AND ")
    } ORDER BY key`;
    const items: Objects[K][] = [];
    if (query.limit <= 0) return Promise.resolve(items);
    for (const row of this.#stmt(sql).iterate(...params)) {
      const value = decode<K>(row as Row);
      if (query.where && !query.where(value)) continue;
      items.push(value);
      if (items.length >= query.limit) break;
    }
    return Promise.resolve(items);
  }

  counts(): Promise<Record<Kind, number>> {
    const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
    const rows = this.#stmt("SELECT kind, COUNT(*) AS n FROM objects GROUP BY kind").all() as {
      kind: Kind;
      n: number;
    }[];
    for (const row of rows) counts[row.kind] = row.n;
    return Promise.resolve(counts);
  }

  commit(batch: Batch): Promise<number> {
    if (batch.writes.length === 0 && !batch.expect?.length) return this.revision();
    return Promise.try(() =>
      this.#transaction(() => {
        for (const expected of batch.expect ?? []) {
          const row = this.#stmt("SELECT revision FROM objects WHERE kind = ? AND key = ?")
            .get(expected.kind, expected.key) as { revision: number } | undefined;
          const actual = row?.revision ?? null;
          if (actual !== expected.revision) {
            throw new PreconditionFailedError(
              expected.revision === null
                ? `The ${expected.kind} "${expected.key}" already exists`
                : actual === null
                ? `The ${expected.kind} "${expected.key}" no longer exists`
                : `The ${expected.kind} "${expected.key}" changed: it is at revision ${actual}, not ${expected.revision}`,
              actual,
            );
          }
        }
        if (batch.writes.length === 0) return this.#revision();
        const revision = this.#revision() + 1;
        const put = this.#stmt(
          "INSERT OR REPLACE INTO objects (kind, key, namespace, service, node, health, revision, heartbeat, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        const del = this.#stmt("DELETE FROM objects WHERE kind = ? AND key = ?");
        for (const write of batch.writes) {
          if (write.op === "delete") {
            del.run(write.kind, write.key);
            continue;
          }
          const { revision: _ignored, ...data } = write.value;
          const cols = indexColumns(write.kind, write.value);
          put.run(
            write.kind,
            keyOf(write.kind, write.value),
            cols.namespace,
            cols.service,
            cols.node,
            cols.health,
            revision,
            cols.heartbeat,
            JSON.stringify(data),
          );
        }
        this.#stmt("UPDATE meta SET value = ? WHERE key = 'revision'").run(String(revision));
        return revision;
      })
    );
  }

  touchNodes(entries: readonly NodeTouch[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    const stmt = this.#stmt(
      "UPDATE objects SET heartbeat = ? WHERE kind = 'node' AND key = ? AND (heartbeat IS NULL OR heartbeat < ?)",
    );
    this.#transaction(() => {
      for (const e of entries) stmt.run(e.lastHeartbeat, e.name, e.lastHeartbeat);
    });
    return Promise.resolve();
  }

  createToken(token: Token, secretHash: string): Promise<void> {
    return Promise.try(() => {
      this.#stmt("INSERT INTO tokens (id, secret_hash, created_at, data) VALUES (?, ?, ?, ?)").run(
        token.id,
        secretHash,
        token.createdAt,
        JSON.stringify(token),
      );
    });
  }

  getToken(id: string): Promise<StoredToken | null> {
    const row = this.#stmt("SELECT secret_hash, data FROM tokens WHERE id = ?").get(id) as
      | { secret_hash: string; data: string }
      | undefined;
    return Promise.resolve(
      row ? { token: JSON.parse(row.data) as Token, secretHash: row.secret_hash } : null,
    );
  }

  listTokens(): Promise<Token[]> {
    const rows = this.#stmt("SELECT data FROM tokens ORDER BY created_at DESC, id").all() as {
      data: string;
    }[];
    return Promise.resolve(rows.map((r) => JSON.parse(r.data) as Token));
  }

  revokeToken(id: string, at: string): Promise<Token | null> {
    return Promise.try(() =>
      this.#transaction(() => {
        const row = this.#stmt("SELECT data FROM tokens WHERE id = ?").get(id) as
          | { data: string }
          | undefined;
        if (!row) return null;
        const token = JSON.parse(row.data) as Token;
        if (token.revokedAt) return token;
        const revoked = { ...token, revokedAt: at };
        this.#stmt("UPDATE tokens SET data = ? WHERE id = ?").run(JSON.stringify(revoked), id);
        return revoked;
      })
    );
  }

  recordIssuance(
    certificate: CertificateRecord,
    consume?: { tokenId: string; at: string },
  ): Promise<void> {
    return Promise.try(() =>
      this.#transaction(() => {
        if (consume) this.#consumeToken(consume.tokenId, consume.at);
        const superseded = this.#stmt(
          "SELECT serial, data FROM certificates WHERE node = ? AND superseded_at IS NULL AND serial != ?",
        ).all(certificate.node, certificate.serial) as { serial: string; data: string }[];
        for (const row of superseded) {
          const old = { ...JSON.parse(row.data), supersededAt: certificate.issuedAt };
          this.#putCertificate(old);
        }
        this.#putCertificate(certificate);
      })
    );
  }

  /** Uses a join token once, inside the caller's transaction. */
  #consumeToken(id: string, at: string): void {
    const row = this.#stmt("SELECT data FROM tokens WHERE id = ?").get(id) as
      | { data: string }
      | undefined;
    const token = row ? JSON.parse(row.data) as Token : undefined;
    if (!token || token.kind !== "join") {
      throw new ConflictError(`Join token "${id}" does not exist`);
    }
    if (token.revokedAt) throw new ConflictError(`Join token "${id}" has been revoked`);
    if (token.expiresAt <= at) throw new ConflictError(`Join token "${id}" has expired`);
    if (token.used >= token.uses) {
      throw new ConflictError(
        `Join token "${id}" has been used up (${token.uses} of ${token.uses} uses)`,
      );
    }
    this.#stmt("UPDATE tokens SET data = ? WHERE id = ?").run(
      JSON.stringify({ ...token, used: token.used + 1 }),
      id,
    );
  }

  #putCertificate(c: CertificateRecord): void {
    this.#stmt(
      "INSERT OR REPLACE INTO certificates (serial, node, token_id, root, not_after, superseded_at, revoked_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      c.serial,
      c.node,
      c.tokenId,
      c.root,
      c.notAfter,
      c.supersededAt,
      c.revokedAt,
      JSON.stringify(c),
    );
  }

  getCertificate(serial: string): Promise<CertificateRecord | null> {
    const row = this.#stmt("SELECT data FROM certificates WHERE serial = ?").get(serial) as
      | { data: string }
      | undefined;
    return Promise.resolve(row ? JSON.parse(row.data) as CertificateRecord : null);
  }

  listCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    const clauses: string[] = ["1 = 1"];
    const params: SQLInputValue[] = [];
    if (query.node !== undefined) {
      clauses.push("node = ?");
      params.push(query.node);
    }
    if (query.tokenId !== undefined) {
      clauses.push("token_id = ?");
      params.push(query.tokenId);
    }
    if (query.root !== undefined) {
      clauses.push("root = ?");
      params.push(query.root);
    }
    if (query.liveAt !== undefined) {
      clauses.push("not_after > ?");
      params.push(query.liveAt);
    }
    if (query.current) clauses.push("superseded_at IS NULL AND revoked_at IS NULL");
    if (query.revoked) clauses.push("revoked_at IS NOT NULL");
    const rows = this.#stmt(
      `SELECT data FROM certificates WHERE ${clauses.join(" AND ")} ORDER BY not_after, serial`,
    ).all(...params) as { data: string }[];
    return Promise.resolve(rows.map((r) => JSON.parse(r.data) as CertificateRecord));
  }

  revokeCertificates(
    target: { node: string } | { tokenId: string },
    at: string,
    reason: string,
  ): Promise<CertificateRecord[]> {
    return Promise.try(() =>
      this.#transaction(() => {
        const [column, value] = "node" in target
          ? ["node", target.node]
          : ["token_id", target.tokenId];
        const rows = this.#stmt(
          `SELECT data FROM certificates WHERE ${column} = ? AND revoked_at IS NULL AND not_after > ?`,
        ).all(value, at) as { data: string }[];
        const revoked = rows.map((r) => ({
          ...JSON.parse(r.data) as CertificateRecord,
          revokedAt: at,
          revokeReason: reason,
        }));
        for (const c of revoked) this.#putCertificate(c);
        return revoked;
      })
    );
  }

  getPolicy(kind: PolicyKind, namespace: string, name: string): Promise<AnyPolicy | null> {
    return Promise.resolve(this.#currentPolicy({ kind, namespace, name }));
  }

  #currentPolicy(key: PolicyKey): AnyPolicy | null {
    const row = this.#stmt(
      "SELECT data FROM policies WHERE kind = ? AND namespace = ? AND name = ?",
    ).get(key.kind, key.namespace, key.name) as { data: string } | undefined;
    return row ? JSON.parse(row.data) as AnyPolicy : null;
  }

  listPolicies(query: PolicyQuery = {}): Promise<AnyPolicy[]> {
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
    const rows = this.#stmt(
      `SELECT data FROM policies WHERE ${clauses.join(" AND ")} ORDER BY kind, namespace, name`,
    ).all(...params) as { data: string }[];
    return Promise.resolve(rows.map((r) => JSON.parse(r.data) as AnyPolicy));
  }

  writePolicies(change: PolicyChange): Promise<(AnyPolicy | null)[]> {
    return Promise.try(() => {
      refuseRepeatedKeys(change.writes);
      return this.#transaction(() => {
        for (const expected of change.expect ?? []) this.#checkPolicyExpectation(expected);
        const stored = change.writes.map((write) => this.#writePolicy(write, change));
        if (stored.length > 0) {
          this.#stmt(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'policy_revision'",
          ).run();
        }
        return stored;
      });
    });
  }

  #checkPolicyExpectation(expected: PolicyExpectation): void {
    const row = this.#stmt(
      "SELECT revision FROM policies WHERE kind = ? AND namespace = ? AND name = ?",
    ).get(expected.kind, expected.namespace, expected.name) as { revision: number } | undefined;
    const actual = row?.revision ?? null;
    if (actual === expected.revision) return;
    const what = describePolicy(expected);
    throw new PreconditionFailedError(
      expected.revision === null
        ? `The ${what} already exists: it is at revision ${actual}`
        : actual === null
        ? `The ${what} no longer exists`
        : `The ${what} changed: it is at revision ${actual}, not ${expected.revision}`,
      actual,
    );
  }

  /** Applies one write inside {@link writePolicies}' transaction; returns what it stored. */
  #writePolicy(write: PolicyWrite, change: PolicyChange): AnyPolicy | null {
    const key = writeKey(write);
    const current = this.#currentPolicy(key);
    // From the history, not the current row: a deleted object's revisions stay taken.
    const { revision } = this.#stmt(
      "SELECT COALESCE(MAX(revision), 0) + 1 AS revision FROM policy_history WHERE kind = ? AND namespace = ? AND name = ?",
    ).get(key.kind, key.namespace, key.name) as { revision: number };
    const entry = { ...key, revision, at: change.at, actor: change.actor };
    if (write.op === "delete") {
      if (!current) throw new NotFoundError(`The ${describePolicy(key)} does not exist`);
      this.#stmt("DELETE FROM policies WHERE kind = ? AND namespace = ? AND name = ?").run(
        key.kind,
        key.namespace,
        key.name,
      );
      this.#recordPolicyWrite({ ...entry, op: "delete", object: null }, 200);
      return null;
    }
    const policy = {
      ...write.policy,
      metadata: {
        ...write.policy.metadata,
        revision,
        createdAt: current?.metadata.createdAt ?? change.at,
        updatedAt: change.at,
        updatedBy: change.actor,
      },
    } as AnyPolicy;
    this.#stmt(
      "INSERT OR REPLACE INTO policies (kind, namespace, name, revision, data) VALUES (?, ?, ?, ?, ?)",
    ).run(key.kind, key.namespace, key.name, revision, JSON.stringify(policy));
    const op = write.rollback ? "rollback" : current ? "update" : "create";
    this.#recordPolicyWrite({ ...entry, op, object: policy }, current ? 200 : 201);
    return policy;
  }

  /** Appends a write's history entry and its `ok` audit entry. */
  #recordPolicyWrite(entry: PolicyRevision, status: number): void {
    this.#stmt(
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
    this.#insertAudit({
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
    });
  }

  policyHistory(kind: PolicyKind, namespace: string, name: string): Promise<PolicyRevision[]> {
    const rows = this.#stmt(
      "SELECT revision, op, at, actor, data FROM policy_history WHERE kind = ? AND namespace = ? AND name = ? ORDER BY revision",
    ).all(kind, namespace, name) as {
      revision: number;
      op: PolicyRevision["op"];
      at: string;
      actor: string;
      data: string | null;
    }[];
    return Promise.resolve(rows.map((r) => ({
      kind,
      namespace,
      name,
      revision: r.revision,
      op: r.op,
      at: r.at,
      actor: r.actor,
      object: r.data === null ? null : JSON.parse(r.data) as AnyPolicy,
    })));
  }

  policyRevision(): Promise<number> {
    const row = this.#stmt("SELECT value FROM meta WHERE key = 'policy_revision'").get() as
      | { value: string }
      | undefined;
    return Promise.resolve(Number(row?.value ?? 0));
  }

  appendAudit(entry: AuditInput): Promise<void> {
    return Promise.try(() => this.#insertAudit(entry));
  }

  #insertAudit(e: AuditInput): void {
    this.#stmt(
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

  listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    if (query.limit <= 0) return Promise.resolve([]);
    const clauses = ["id > ?"];
    const params: SQLInputValue[] = [query.after ?? 0];
    for (const column of ["kind", "namespace", "name", "outcome"] as const) {
      const value = query[column];
      if (value !== undefined) {
        clauses.push(`${column} = ?`);
        params.push(value);
      }
    }
    const rows = this.#stmt(
      `SELECT id, at, actor, action, kind, namespace, name, outcome, status, revision, detail FROM audit WHERE ${
        clauses.join(" AND ")
      } ORDER BY id LIMIT ?`,
    ).all(...params, query.limit) as Row[];
    // Spread into plain objects: rows come with a null prototype.
    return Promise.resolve(rows.map((r) => ({ ...r }) as unknown as AuditEntry));
  }

  getMeta(key: string): Promise<string | null> {
    const row = this.#stmt("SELECT value FROM meta WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return Promise.resolve(row?.value ?? null);
  }

  setMeta(key: string, value: string): Promise<void> {
    this.#stmt("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(key, value);
    return Promise.resolve();
  }

  schemaVersion(): Promise<number> {
    return Promise.resolve(this.#schemaVersion());
  }

  snapshot(path: string): Promise<void> {
    // VACUUM INTO reads one transaction's view of the database; WAL writers carry on meanwhile.
    return Promise.try(() => {
      this.#db.prepare("VACUUM INTO ?").run(path);
    });
  }

  ping(): Promise<void> {
    this.#stmt("SELECT 1").get();
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#statements.clear();
    this.#db.exec("PRAGMA optimize");
    this.#db.close();
    return Promise.resolve();
  }
}

interface IndexColumns {
  namespace: string | null;
  service: string | null;
  node: string | null;
  health: string | null;
  heartbeat: string | null;
}

function indexColumns(kind: Kind, value: Service | MeshNode | Instance): IndexColumns {
  const none = { namespace: null, service: null, node: null, health: null, heartbeat: null };
  switch (kind) {
    case "service": {
      const s = value as Service;
      return { ...none, namespace: s.namespace, service: s.name };
    }
    case "node": {
      const n = value as MeshNode;
      return { ...none, node: n.name, heartbeat: n.lastHeartbeat };
    }
    case "instance": {
      const i = value as Instance;
      return {
        ...none,
        namespace: i.namespace,
        service: i.service,
        node: i.node,
        health: i.health,
      };
    }
  }
}

function decode<K extends Kind>(row: Row): Objects[K] {
  const value = JSON.parse(row.data as string) as Record<string, unknown>;
  value.revision = Number(row.revision);
  if (typeof row.heartbeat === "string") value.lastHeartbeat = row.heartbeat;
  return value as unknown as Objects[K];
}

/** The key of a policy. */
interface PolicyKey {
  kind: PolicyKind;
  namespace: string;
  name: string;
}

function writeKey(write: PolicyWrite): PolicyKey {
  return write.op === "put"
    ? {
      kind: write.policy.kind,
      namespace: write.policy.metadata.namespace,
      name: write.policy.metadata.name,
    }
    : { kind: write.kind, namespace: write.namespace, name: write.name };
}

/** `TrafficRoute "default/web"`, or `MeshConfig "mesh"` for the one object without a namespace. */
function describePolicy(key: PolicyKey): string {
  return `${key.kind} "${key.namespace === "" ? key.name : `${key.namespace}/${key.name}`}"`;
}

/**
 * Refuses a change that writes one object twice: its history would need two
 * entries at one revision, and which write should win is the caller's call.
 */
function refuseRepeatedKeys(writes: readonly PolicyWrite[]): void {
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
