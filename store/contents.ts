/**
 * What a store holds, counted by kind (`services`, `tokens`, `policy
 * revisions`, …) from its tables, on either backend: how `ironmesh migrate`
 * says what it copied, and what it found in a target that is not empty.
 * Counted from the tables themselves, so a table a later migration adds is
 * counted (under its own name) without a change here.
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import type postgres from "postgres";

/** Rows per kind; kinds with no rows are absent, so `{}` is an empty store. */
export type Contents = Record<string, number>;

/** Tables that are bookkeeping, not content: the schema's, the replicas' (and SQLite's `sqlite_*`). */
const BOOKKEEPING = new Set([
  "schema_migrations",
  "counters",
  "leases",
  "revision_log",
]);
/** SQLite `meta` keys that every new store has (PostgreSQL keeps them in `counters`). */
const COUNTER_KEYS = new Set(["revision", "policy_revision"]);

/** How each table's rows are named in messages; `objects` rows by their kind. */
const KIND_OF_TABLE: Readonly<Record<string, string>> = {
  tokens: "tokens",
  certificates: "certificates",
  policies: "policies",
  policy_history: "policy revisions",
  audit: "audit entries",
  meta: "settings",
  ca_material: "CA files",
};
/** The order kinds are listed in; others follow by name. */
const ORDER = [
  "services",
  "nodes",
  "instances",
  "policies",
  "policy revisions",
  "audit entries",
  "tokens",
  "certificates",
  "settings",
  "CA files",
];

/** The kind a row of `table` counts as. */
export function kindOfTable(table: string, row: Record<string, SQLInputValue>): string {
  if (table === "objects") return `${row.kind}s`;
  return KIND_OF_TABLE[table] ?? `rows of table ${table}`;
}

/** `contents` with its kinds in the order messages list them. */
export function ordered(contents: Contents): Contents {
  const rank = (kind: string) => {
    const i = ORDER.indexOf(kind);
    return i < 0 ? ORDER.length : i;
  };
  const kinds = Object.keys(contents).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return Object.fromEntries(kinds.map((k) => [k, contents[k]!]));
}

/** What a SQLite store file holds. */
export function sqliteContents(db: DatabaseSync): Contents {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
    name: string;
  }[]).map((r) => r.name).filter((t) => !BOOKKEEPING.has(t) && !t.startsWith("sqlite_"));
  const contents: Contents = {};
  for (const table of tables) {
    const quoted = `"${table.replaceAll('"', '""')}"`;
    const column = table === "objects" ? "kind" : table === "meta" ? "key" : "NULL";
    const rows = db.prepare(`SELECT ${column} AS kind FROM ${quoted}`).all() as {
      kind: SQLInputValue;
    }[];
    for (const row of rows) {
      if (table === "meta" && COUNTER_KEYS.has(String(row.kind))) continue;
      const kind = kindOfTable(table, row);
      contents[kind] = (contents[kind] ?? 0) + 1;
    }
  }
  return ordered(contents);
}

/** What the PostgreSQL database `sql` reaches holds; a registry or policy revision counts too. */
export async function postgresContents(
  sql: postgres.Sql | postgres.TransactionSql,
): Promise<Contents> {
  const tables = (await sql<{ table_name: string }[]>`
    SELECT table_name FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
    .map((r) => r.table_name).filter((t) => !BOOKKEEPING.has(t));
  const contents: Contents = {};
  for (const table of tables) {
    const rows = table === "objects"
      ? await sql<{ kind: string; n: number }[]>`
        SELECT kind, COUNT(*)::int AS n FROM objects GROUP BY kind`
      : await sql<{ kind: string; n: number }[]>`
        SELECT ${table} AS kind, COUNT(*)::int AS n FROM ${sql(table)}`;
    for (const { kind, n } of rows) {
      if (n === 0) continue;
      const name = table === "objects" ? `${kind}s` : kindOfTable(table, {});
      contents[name] = (contents[name] ?? 0) + n;
    }
  }
  if (Object.keys(contents).length === 0) {
    // Everything deleted again: revisions were still handed out, which a copy would reset.
    const counters = await sql<{ name: string; value: number }[]>`
      SELECT name, value::int AS value FROM counters WHERE name IN ('registry', 'policies')`;
    for (const { name, value } of counters) {
      if (value > 0) {
        contents[`${name === "registry" ? "registry" : "policy"} revisions made`] = value;
      }
    }
  }
  return ordered(contents);
}
