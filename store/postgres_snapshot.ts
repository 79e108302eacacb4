/**
 * A consistent copy of a PostgreSQL store as a SQLite file: the format
 * `Store.snapshot()` writes on either backend, so one backup archive format
 * serves both and a snapshot opens as an ordinary SQLite store.
 *
 * Everything is read in one REPEATABLE READ transaction, so the copy holds
 * exactly what was committed before it began while writers carry on. The
 * revision log is not copied: it only serves replicas following this
 * database, and a restored store starts a new one.
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import type postgres from "postgres";
import { openSqliteStore } from "./sqlite.ts";

/** Rows fetched per round trip. */
const CHUNK = 1_000;

/** Tables copied as they are: SQLite's columns, in SQLite's order. */
const TABLES: Readonly<Record<string, readonly string[]>> = {
  objects: [
    "kind",
    "key",
    "namespace",
    "service",
    "node",
    "health",
    "revision",
    "heartbeat",
    "data",
  ],
  tokens: ["id", "secret_hash", "created_at", "data"],
  certificates: [
    "serial",
    "node",
    "token_id",
    "root",
    "not_after",
    "superseded_at",
    "revoked_at",
    "data",
  ],
  policies: ["kind", "namespace", "name", "revision", "data"],
  policy_history: ["kind", "namespace", "name", "revision", "op", "at", "actor", "data"],
  audit: [
    "id",
    "at",
    "actor",
    "action",
    "kind",
    "namespace",
    "name",
    "outcome",
    "status",
    "revision",
    "detail",
  ],
  meta: ["key", "value"],
};

/** Where SQLite keeps what PostgreSQL keeps in `counters`. */
const COUNTERS_IN_META: Readonly<Record<string, string>> = {
  registry: "revision",
  policies: "policy_revision",
};

/** Writes the snapshot to `path`, which must not exist; a failed copy leaves no file. */
export async function snapshotToSqlite(sql: postgres.Sql, path: string): Promise<void> {
  // createNew: an existing file is never overwritten (SQLite's VACUUM INTO refuses too).
  (await Deno.open(path, { createNew: true, write: true })).close();
  try {
    await openSqliteStore(path).close();
    const db = new DatabaseSync(path);
    try {
      db.exec("BEGIN");
      await sql.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY", async (tx) => {
        for (const [table, columns] of Object.entries(TABLES)) {
          const insert = db.prepare(
            `INSERT OR REPLACE INTO ${table} (${columns.join(", ")}) VALUES (${
              columns.map(() => "?").join(", ")
            })`,
          );
          const rows = tx<Record<string, SQLInputValue>[]>`SELECT ${tx(columns)} FROM ${tx(table)}`;
          for await (const chunk of rows.cursor(CHUNK)) {
            for (const row of chunk) insert.run(...columns.map((c) => row[c] ?? null));
          }
        }
        const counters = await tx<{ name: string; value: number }[]>`
          SELECT name, value FROM counters`;
        const setMeta = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
        for (const { name, value } of counters) {
          const key = COUNTERS_IN_META[name];
          if (key) setMeta.run(key, String(value));
        }
      });
      db.exec("COMMIT");
    } finally {
      db.close();
    }
  } catch (error) {
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      await Deno.remove(file).catch(() => {});
    }
    throw error;
  }
}
