/**
 * The registry's objects (services, nodes, instances) in PostgreSQL: reads,
 * atomic batches under one revision, and heartbeat times in bulk.
 *
 * A commit locks the `registry` counter row first, so commits run one at a
 * time in revision order and each checks its expectations against the
 * latest committed state. A batch is applied set-wise (one DELETE and one
 * upsert, whatever its size) after reducing it to the last write of each
 * key, which is what applying its writes in order would leave.
 */
import type postgres from "postgres";
import { PreconditionFailedError } from "../core/errors.ts";
import {
  decodeObject,
  expectationFailed,
  indexColumns,
  objectData,
  type ObjectRow,
} from "./object_rows.ts";
import type { Logged } from "./postgres_log.ts";
import {
  type Batch,
  type Expectation,
  type Fence,
  keyOf,
  type Kind,
  KINDS,
  type ListQuery,
  type LogChange,
  type NodeTouch,
  type Objects,
  type Write,
} from "./store.ts";

type Sql = postgres.Sql | postgres.TransactionSql;

/** Rows read per round trip when a filter the database cannot run decides what a page holds. */
const SCAN_CHUNK = 500;

/** One object, or `null`. */
export async function getObject<K extends Kind>(
  sql: Sql,
  kind: K,
  key: string,
): Promise<Objects[K] | null> {
  const [row] = await sql<ObjectRow[]>`
    SELECT data, revision, heartbeat FROM objects WHERE kind = ${kind} AND key = ${key}`;
  return row ? decodeObject<K>(row) : null;
}

/**
 * Objects of a kind in key order. Without `query.where` the database does
 * all the work; with it, rows stream through a cursor in one read-only
 * snapshot until the page is full, as SQLite's iteration does.
 */
export async function listObjects<K extends Kind>(
  sql: postgres.Sql,
  kind: K,
  query: ListQuery<Objects[K]>,
): Promise<Objects[K][]> {
  if (query.limit <= 0) return [];
  const select = (tx: Sql, limit?: number) => {
    const filter = (column: string, value: string | undefined) =>
      value === undefined ? tx`` : tx`AND ${tx(column)} = ${value}`;
    return tx<ObjectRow[]>`
      SELECT data, revision, heartbeat FROM objects
      WHERE kind = ${kind}
        ${filter("namespace", query.namespace)} ${filter("service", query.service)}
        ${filter("node", query.node)} ${filter("health", query.health)}
        ${query.after === undefined ? tx`` : tx`AND key > ${query.after}`}
      ORDER BY key ${limit === undefined ? tx`` : tx`LIMIT ${limit}`}`;
  };
  const where = query.where;
  if (!where) return (await select(sql, query.limit)).map((row) => decodeObject<K>(row));
  return await sql.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY", async (tx) => {
    const items: Objects[K][] = [];
    for await (const rows of select(tx).cursor(SCAN_CHUNK)) {
      for (const row of rows) {
        const value = decodeObject<K>(row);
        if (where(value)) items.push(value);
        if (items.length >= query.limit) return items;
      }
    }
    return items;
  }) as Objects[K][];
}

/** How many objects of each kind exist. */
export async function countObjects(sql: Sql): Promise<Record<Kind, number>> {
  const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  const rows = await sql<{ kind: Kind; n: number }[]>`
    SELECT kind, COUNT(*)::integer AS n FROM objects GROUP BY kind`;
  for (const row of rows) counts[row.kind] = row.n;
  return counts;
}

/** The current registry revision. */
export async function registryRevision(sql: Sql): Promise<number> {
  const [row] = await sql<{ value: number }[]>`
    SELECT value FROM counters WHERE name = 'registry'`;
  return row?.value ?? 0;
}

/** Applies a batch inside `tx` (see the file's header); returns the revision and the keys changed. */
export async function commitBatch(
  tx: postgres.TransactionSql,
  batch: Batch,
): Promise<Logged<number>> {
  const [head] = await tx<{ value: number }[]>`
    SELECT value FROM counters WHERE name = 'registry' FOR UPDATE`;
  const current = head?.value ?? 0;
  if (batch.fence) await checkFence(tx, batch.fence);
  await checkExpectations(tx, batch.expect ?? []);
  if (batch.writes.length === 0) return { result: current, changes: [] };
  const revision = current + 1;

  const last = new Map<string, Write>();
  for (const write of batch.writes) {
    const key = `${write.kind}\u0000${writeKey(write)}`;
    last.delete(key);
    last.set(key, write);
  }
  const writes = [...last.values()];
  const instanceKeys = writes.filter((w) => w.kind === "instance").map(writeKey);
  const before = new Map<string, string>();
  if (instanceKeys.length > 0) {
    const rows = await tx<{ key: string; namespace: string; service: string }[]>`
      SELECT key, namespace, service FROM objects
      WHERE kind = 'instance' AND key = ANY(${instanceKeys}::text[])`;
    for (const row of rows) before.set(row.key, `${row.namespace}/${row.service}`);
  }

  const deletes = writes.filter((w) => w.op === "delete");
  if (deletes.length > 0) {
    await tx`
      DELETE FROM objects WHERE (kind, key) IN (
        SELECT * FROM unnest(${deletes.map((w) => w.kind)}::text[], ${
      deletes.map(writeKey)
    }::text[])
      )`;
  }
  const puts = writes.flatMap((w) => w.op === "put" ? [w] : []);
  if (puts.length > 0) {
    const rows = puts.map((w) => ({ ...indexColumns(w.kind, w.value), data: objectData(w.value) }));
    const column = <C extends keyof (typeof rows)[number]>(c: C) => rows.map((r) => r[c]);
    await tx`
      INSERT INTO objects (kind, key, namespace, service, node, health, revision, heartbeat, data)
      SELECT kind, key, namespace, service, node, health, ${revision}, heartbeat, data
      FROM unnest(
        ${puts.map((w) => w.kind)}::text[], ${puts.map(writeKey)}::text[],
        ${column("namespace")}::text[], ${column("service")}::text[], ${column("node")}::text[],
        ${column("health")}::text[], ${column("heartbeat")}::text[], ${column("data")}::text[]
      ) AS t(kind, key, namespace, service, node, health, heartbeat, data)
      ON CONFLICT (kind, key) DO UPDATE SET
        namespace = EXCLUDED.namespace, service = EXCLUDED.service, node = EXCLUDED.node,
        health = EXCLUDED.health, revision = EXCLUDED.revision,
        heartbeat = EXCLUDED.heartbeat, data = EXCLUDED.data`;
  }
  await tx`UPDATE counters SET value = ${revision} WHERE name = 'registry'`;

  const changes = writes.map((write): LogChange => {
    const key = writeKey(write);
    if (write.kind !== "instance") return { kind: write.kind, key };
    const services = new Set<string>();
    const old = before.get(key);
    if (old !== undefined) services.add(old);
    if (write.op === "put") services.add(`${write.value.namespace}/${write.value.service}`);
    return { kind: "instance", key, services: [...services] };
  });
  return { result: revision, changes, registry: revision };
}

/**
 * Throws `PreconditionFailedError` unless `fence`'s holder still holds its
 * lease at its epoch. The row stays share-locked until the commit, so a
 * takeover waits for this batch: the new leader starts after it.
 */
async function checkFence(tx: postgres.TransactionSql, fence: Fence): Promise<void> {
  const [held] = await tx`
    SELECT 1 FROM leases
    WHERE name = ${fence.lease} AND holder = ${fence.holder} AND epoch = ${fence.epoch}
      AND expires_at > clock_timestamp()
    FOR SHARE`;
  if (!held) {
    throw new PreconditionFailedError(
      `This replica no longer holds the "${fence.lease}" lease (epoch ${fence.epoch}): the write is left to the replica that does`,
      null,
    );
  }
}

/** Throws `PreconditionFailedError` (as SQLite words it) at the first expectation that fails. */
async function checkExpectations(
  tx: postgres.TransactionSql,
  expect: readonly Expectation[],
): Promise<void> {
  if (expect.length === 0) return;
  const rows = await tx<{ kind: string; key: string; revision: number }[]>`
    SELECT kind, key, revision FROM objects WHERE (kind, key) IN (
      SELECT * FROM unnest(${expect.map((e) => e.kind)}::text[], ${
    expect.map((e) => e.key)
  }::text[])
    )`;
  const revisions = new Map(rows.map((r) => [`${r.kind}\u0000${r.key}`, r.revision]));
  for (const expected of expect) {
    const actual = revisions.get(`${expected.kind}\u0000${expected.key}`) ?? null;
    if (actual !== expected.revision) throw expectationFailed(expected, actual);
  }
}

/**
 * Records heartbeat times in one statement; a time never moves backwards.
 * Entries for one node are reduced to the latest first, since one UPDATE
 * may change a row only once.
 */
export async function touchNodes(sql: Sql, entries: readonly NodeTouch[]): Promise<void> {
  const latest = new Map<string, string>();
  for (const e of entries) {
    const seen = latest.get(e.name);
    if (seen === undefined || seen < e.lastHeartbeat) latest.set(e.name, e.lastHeartbeat);
  }
  // Sorted, so two replicas flushing overlapping nodes lock rows in the same order.
  const names = [...latest.keys()].sort();
  await sql`
    UPDATE objects AS o SET heartbeat = t.heartbeat
    FROM unnest(${names}::text[], ${names.map((n) => latest.get(n)!)}::text[]) AS t(name, heartbeat)
    WHERE o.kind = 'node' AND o.key = t.name
      AND (o.heartbeat IS NULL OR o.heartbeat < t.heartbeat)`;
}

function writeKey(write: Write): string {
  return write.op === "delete" ? write.key : keyOf(write.kind, write.value);
}
