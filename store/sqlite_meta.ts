/** The SQLite store's schema (forward migrations) and its small server-wide settings. */
import { UnavailableError } from "../core/errors.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import type { SqliteDb } from "./sqlite_db.ts";

/** Applies every migration newer than the database, each in its own transaction. */
export function migrate(db: SqliteDb): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
  );
  const current = schemaVersion(db);
  const latest = SQLITE_MIGRATIONS.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new UnavailableError(
      `Database schema version ${current} is newer than this ironmesh knows (${latest}): run a newer ironmesh or restore a backup taken by this version`,
    );
  }
  for (const migration of SQLITE_MIGRATIONS) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
      ).run(migration.version, migration.description, new Date().toISOString());
    });
  }
}

/** The schema version the database is at: 0 before the first migration. */
export function schemaVersion(db: SqliteDb): number {
  const row = db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as
    | { v: number | null }
    | undefined;
  return row?.v ?? 0;
}

/** A server-wide setting, or `null`. */
export function getMeta(db: SqliteDb, key: string): string | null {
  const row = db.stmt("SELECT value FROM meta WHERE key = ?").get(key) as
    | { value: string }
    | undefined;
  return row?.value ?? null;
}

/** Sets a server-wide setting. */
export function setMeta(db: SqliteDb, key: string, value: string): void {
  db.stmt("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(key, value);
}
