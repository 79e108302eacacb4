/**
 * The CA's material in PostgreSQL (`SharedCaMaterial` in `store.ts`): one
 * row per text in `ca_material`, so every replica signs under the same CA.
 * Keys arrive here already encrypted under the CA key passphrase; the
 * database never sees a plain key. Changes are made under a session-level
 * advisory lock held on a connection of its own, so two replicas starting
 * on an empty database do not both create a CA, and a rotation step on one
 * does not interleave with another's.
 */
import type postgres from "postgres";
import { CA_LOCK, LOCK_CLASS } from "./postgres_meta.ts";
import type { Logged } from "./postgres_log.ts";

/** The text stored under `name`, or `null`. */
export async function readCaText(sql: postgres.Sql, name: string): Promise<string | null> {
  const [row] = await sql<{ content: string }[]>`
    SELECT content FROM ca_material WHERE name = ${name}`;
  return row?.content ?? null;
}

/** Stores `content` under `name`. */
export async function writeCaText(
  tx: postgres.TransactionSql,
  name: string,
  content: string,
): Promise<Logged<void>> {
  await tx`
    INSERT INTO ca_material (name, content) VALUES (${name}, ${content})
    ON CONFLICT (name) DO UPDATE SET content = EXCLUDED.content, updated_at = now()`;
  return { result: undefined, changes: [{ kind: "ca", key: name }] };
}

/** Removes `name`; logs nothing when it was absent. */
export async function removeCaText(
  tx: postgres.TransactionSql,
  name: string,
): Promise<Logged<void>> {
  const result = await tx`DELETE FROM ca_material WHERE name = ${name}`;
  return { result: undefined, changes: result.count > 0 ? [{ kind: "ca", key: name }] : [] };
}

/**
 * Runs `fn` holding the CA lock. The lock belongs to the reserved
 * connection, so a replica that dies (or loses that connection) releases it
 * at once; `fn` itself reads and writes through the pool.
 */
export async function withCaLock<T>(sql: postgres.Sql, fn: () => Promise<T>): Promise<T> {
  const conn = await sql.reserve();
  try {
    await conn`SELECT pg_advisory_lock(${LOCK_CLASS}, ${CA_LOCK})`;
    try {
      return await fn();
    } finally {
      await conn`SELECT pg_advisory_unlock(${LOCK_CLASS}, ${CA_LOCK})`.catch(() => {});
    }
  } finally {
    conn.release();
  }
}
