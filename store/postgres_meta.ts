/**
 * The PostgreSQL store's schema and its small server-wide settings.
 *
 * Migrations (`POSTGRES_MIGRATIONS` in `migrations.ts`) are forward-only,
 * like SQLite's. Several replicas may start at once against one database, so
 * the migrator holds a session-level advisory lock while it reads the
 * version and applies what is missing: the second replica waits, then finds
 * nothing left to do. A replica refuses a database newer than it knows,
 * since an older binary cannot know what a newer schema means.
 */
import type postgres from "postgres";
import { UnavailableError } from "../core/errors.ts";
import { type Migration, POSTGRES_MIGRATIONS } from "./migrations.ts";
import type { Logged } from "./postgres_log.ts";

/**
 * The advisory lock migrations run under, as `pg_advisory_lock(class, id)`:
 * the class is "iron" in ASCII, so our locks stay clear of other programs
 * sharing the database; the ids of our other locks (e.g. leadership) follow.
 */
export const LOCK_CLASS = 0x69726f6e;
/** The id of the migration lock within {@link LOCK_CLASS}. */
export const MIGRATION_LOCK = 1;
/** The id of the lock certificate writes take within {@link LOCK_CLASS}. */
export const CERTIFICATES_LOCK = 2;
/** The id of the lock the CA is created and changed under (`postgres_ca.ts`). */
export const CA_LOCK = 3;

/**
 * Applies every migration newer than the database, each in its own
 * transaction, while holding the migration lock on one connection of `sql`.
 * Throws `UnavailableError` when the database is newer than `migrations`.
 */
export async function migrate(
  sql: postgres.Sql,
  migrations: readonly Migration[] = POSTGRES_MIGRATIONS,
): Promise<void> {
  const latest = migrations.at(-1)?.version ?? 0;
  const conn = await sql.reserve();
  try {
    await conn`SELECT pg_advisory_lock(${LOCK_CLASS}, ${MIGRATION_LOCK})`;
    try {
      await conn.unsafe(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
          version integer PRIMARY KEY,
          description text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`,
      );
      const current = await schemaVersion(conn);
      if (current > latest) {
        throw new UnavailableError(
          `Database schema version ${current} is newer than this ironmesh knows (${latest}): run a newer ironmesh or restore a backup taken by this version`,
        );
      }
      for (const migration of migrations) {
        if (migration.version <= current) continue;
        await conn.unsafe("BEGIN");
        try {
          await conn.unsafe(migration.sql).simple();
          await conn`INSERT INTO schema_migrations (version, description) VALUES (${migration.version}, ${migration.description})`;
          await conn.unsafe("COMMIT");
        } catch (error) {
          await conn.unsafe("ROLLBACK").catch(() => {});
          throw error;
        }
      }
    } finally {
      await conn`SELECT pg_advisory_unlock(${LOCK_CLASS}, ${MIGRATION_LOCK})`.catch(() => {});
    }
  } finally {
    conn.release();
  }
}

/** The schema version of the database `sql` is connected to (0 before the first migration). */
export async function schemaVersion(sql: postgres.Sql | postgres.ReservedSql): Promise<number> {
  const [row] = await sql<{ v: number | null }[]>`SELECT MAX(version) AS v FROM schema_migrations`;
  return row?.v ?? 0;
}

/** A server-wide setting, or `null`. */
export async function getMeta(sql: postgres.Sql, key: string): Promise<string | null> {
  const [row] = await sql<{ value: string }[]>`SELECT value FROM meta WHERE key = ${key}`;
  return row?.value ?? null;
}

/** Sets a server-wide setting. */
export async function setMeta(
  tx: postgres.TransactionSql,
  key: string,
  value: string,
): Promise<Logged<void>> {
  await tx`
    INSERT INTO meta (key, value) VALUES (${key}, ${value})
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
  return { result: undefined, changes: [{ kind: "meta", key }] };
}
