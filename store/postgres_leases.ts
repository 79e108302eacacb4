/**
 * Leases in PostgreSQL (`Leases` in `store.ts`): one row per lease, taken
 * or renewed by one statement that compares its expiry with the database's
 * clock, so no replica's clock decides. This is a lease row with a fencing
 * epoch, as Kuma's leader election on PostgreSQL (pglock) keeps one, rather
 * than a session advisory lock: a lease survives a dropped connection for
 * its term (a pool reconnecting is not a change of leader), and its holder
 * and epoch can be read by anyone, which `/readyz` shows.
 */
import type postgres from "postgres";
import type { Lease } from "./store.ts";

interface LeaseRow {
  holder: string;
  epoch: number;
  remaining_ms: number;
}

function lease(row: LeaseRow): Lease {
  return { holder: row.holder, epoch: row.epoch, remainingMs: Number(row.remaining_ms) };
}

/** See `Leases.acquire`. */
export async function acquireLease(
  sql: postgres.Sql,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<Lease> {
  const [taken] = await sql<LeaseRow[]>`
    INSERT INTO leases AS l (name, holder, epoch, expires_at)
    VALUES (${name}, ${holder}, 1, clock_timestamp() + ${ttlMs} * interval '1 millisecond')
    ON CONFLICT (name) DO UPDATE SET
      holder = EXCLUDED.holder,
      epoch = CASE WHEN l.holder = EXCLUDED.holder THEN l.epoch ELSE l.epoch + 1 END,
      expires_at = EXCLUDED.expires_at
    WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
    RETURNING holder, epoch,
      (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8 AS remaining_ms`;
  if (taken) return lease(taken);
  const [held] = await sql<LeaseRow[]>`
    SELECT holder, epoch,
      (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8 AS remaining_ms
    FROM leases WHERE name = ${name}`;
  // Released and deleted between the two statements: nobody holds it; the next try takes it.
  return held ? lease(held) : { holder: "", epoch: 0, remainingMs: 0 };
}

/** See `Leases.release`. */
export async function releaseLease(sql: postgres.Sql, name: string, holder: string): Promise<void> {
  await sql`
    UPDATE leases SET expires_at = clock_timestamp() - interval '1 millisecond'
    WHERE name = ${name} AND holder = ${holder}`;
}
