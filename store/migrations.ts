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

/**
 * The PostgreSQL migrations, in order. The tables hold what SQLite's hold,
 * column for column where they can (so a snapshot copies into a SQLite file
 * row by row), plus `counters` (the revisions SQLite keeps in `meta`, and
 * the audit and log sequences, each handed out under its row's lock so they
 * increase in commit order) and the revision log that other replicas follow.
 * Keys and the text columns compared with `<` use `COLLATE "C"`: byte order,
 * as SQLite's, whatever the database's locale, so key order and cursors
 * agree between backends.
 */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description:
      "registry objects, tokens, certificates, policies with history and audit, settings, revision log",
    sql: `
      CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
      CREATE TABLE counters (name text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
      INSERT INTO counters (name, value) VALUES
        ('registry', 0), ('policies', 0), ('audit', 0), ('log', 0);
      CREATE TABLE objects (
        kind text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        namespace text COLLATE "C",
        service text COLLATE "C",
        node text COLLATE "C",
        health text COLLATE "C",
        revision bigint NOT NULL,
        heartbeat text COLLATE "C",
        data text NOT NULL,
        PRIMARY KEY (kind, key)
      );
      CREATE INDEX objects_by_node ON objects (kind, node, key);
      CREATE INDEX objects_by_service ON objects (kind, namespace, service, key);
      CREATE TABLE tokens (
        id text COLLATE "C" PRIMARY KEY,
        secret_hash text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        data text NOT NULL
      );
      CREATE TABLE certificates (
        serial text COLLATE "C" PRIMARY KEY,
        node text COLLATE "C" NOT NULL,
        token_id text COLLATE "C",
        root text COLLATE "C" NOT NULL,
        not_after text COLLATE "C" NOT NULL,
        superseded_at text COLLATE "C",
        revoked_at text COLLATE "C",
        data text NOT NULL
      );
      CREATE INDEX certificates_by_node ON certificates (node, not_after);
      CREATE INDEX certificates_by_token ON certificates (token_id);
      CREATE INDEX certificates_by_root ON certificates (root, not_after);
      CREATE TABLE policies (
        kind text COLLATE "C" NOT NULL,
        namespace text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        revision bigint NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (kind, namespace, name)
      );
      CREATE TABLE policy_history (
        kind text COLLATE "C" NOT NULL,
        namespace text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        revision bigint NOT NULL,
        op text NOT NULL CHECK (op IN ('create', 'update', 'delete', 'rollback')),
        at text NOT NULL,
        actor text NOT NULL,
        data text,
        PRIMARY KEY (kind, namespace, name, revision)
      );
      CREATE TABLE audit (
        id bigint PRIMARY KEY,
        at text NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        kind text COLLATE "C" NOT NULL,
        namespace text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('ok', 'refused')),
        status integer NOT NULL,
        revision bigint,
        detail text NOT NULL
      );
      CREATE INDEX audit_by_object ON audit (kind, namespace, name, id);
      CREATE TABLE revision_log (
        revision bigint PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        origin text NOT NULL,
        registry bigint,
        policies bigint,
        changes text NOT NULL
      );
      CREATE INDEX revision_log_by_time ON revision_log (at);
    `,
  },
  {
    version: 2,
    description: "leases: which replica holds the singleton duties (postgres_leases.ts)",
    sql: `
      CREATE TABLE leases (
        name text COLLATE "C" PRIMARY KEY,
        holder text NOT NULL,
        epoch bigint NOT NULL,
        expires_at timestamptz NOT NULL
      );
    `,
  },
  {
    version: 3,
    description: "the CA shared by the replicas, keys encrypted (postgres_ca.ts)",
    sql: `
      CREATE TABLE ca_material (
        name text COLLATE "C" PRIMARY KEY,
        content text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];
