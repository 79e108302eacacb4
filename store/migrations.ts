/**
 * Versioned, forward-only schema migrations. A migration is never edited once
 * released: a change to the schema is a new entry at the end. The server
 * refuses a database whose version is newer than the last entry here, since
 * an older binary cannot know what a newer schema means.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** The SQLite migrations, in order. */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "registry objects, API tokens and server settings",
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO meta (key, value) VALUES ('revision', '0');
      CREATE TABLE objects (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        namespace TEXT,
        service TEXT,
        node TEXT,
        health TEXT,
        revision INTEGER NOT NULL,
        heartbeat TEXT,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, key)
      ) WITHOUT ROWID;
      CREATE INDEX objects_by_node ON objects (kind, node, key);
      CREATE INDEX objects_by_service ON objects (kind, namespace, service, key);
      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: "issued workload certificates (deny list, rotation progress)",
    sql: `
      CREATE TABLE certificates (
        serial TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        token_id TEXT,
        root TEXT NOT NULL,
        not_after TEXT NOT NULL,
        superseded_at TEXT,
        revoked_at TEXT,
        data TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX certificates_by_node ON certificates (node, not_after);
      CREATE INDEX certificates_by_token ON certificates (token_id);
      CREATE INDEX certificates_by_root ON certificates (root, not_after);
    `,
  },
  {
    version: 3,
    description: "policies, their history and the audit log",
    // The history keeps deleted objects' revisions, so a recreated object
    // continues the count and an old ETag can never match it. AUTOINCREMENT
    // keeps audit ids increasing for ever: they are the paging cursor.
    sql: `
      INSERT INTO meta (key, value) VALUES ('policy_revision', '0');
      CREATE TABLE policies (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, namespace, name)
      ) WITHOUT ROWID;
      CREATE TABLE policy_history (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete', 'rollback')),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        data TEXT,
        PRIMARY KEY (kind, namespace, name, revision)
      ) WITHOUT ROWID;
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
        status INTEGER NOT NULL,
        revision INTEGER,
        detail TEXT NOT NULL
      );
      CREATE INDEX audit_by_object ON audit (kind, namespace, name, id);
    `,
  },
];
