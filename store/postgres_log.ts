/**
 * The revision log in PostgreSQL: appended by every write in its own
 * transaction, read by revision, and announced with NOTIFY so followers wake
 * without polling.
 *
 * Revisions come from the `log` counter row, taken under its row lock at
 * the end of the writing transaction and held until it commits: they are
 * gapless and increase in commit order, so "everything after N" never skips
 * an entry that commits late, and a missing revision can only mean pruned.
 * The lock is held only for the last statement and the commit.
 *
 * NOTIFY is delivered at commit and lost while a listener is disconnected;
 * {@link LogListener} therefore wakes its watchers after every (re)connect
 * as well, and they read from their last revision. It keeps its own
 * connection and reconnects with backoff for as long as anyone watches:
 * postgres.js's `listen()` re-listens after a dropped connection, but gives
 * up if the server is still down at that moment (measured here: a listener
 * never hears again after a PostgreSQL restart).
 */
import postgres from "postgres";
import type { LogChange, LogEntry, LogPage } from "./store.ts";

/** The NOTIFY channel; its payload is the new revision. */
export const LOG_CHANNEL = "ironmesh_log";

/** What a write function returns: its result and what the log records about it. */
export interface Logged<T> {
  result: T;
  /** The keys changed; none means nothing is logged. */
  changes: LogChange[];
  /** The registry revision made, for a registry commit. */
  registry?: number;
  /** The policy revision made, for a policy change. */
  policies?: number;
}

/** Appends one entry for `logged` inside `tx` and notifies followers at commit. */
export async function appendLog(
  tx: postgres.TransactionSql,
  origin: string,
  logged: Logged<unknown>,
): Promise<void> {
  await tx`
    WITH head AS (UPDATE counters SET value = value + 1 WHERE name = 'log' RETURNING value)
    INSERT INTO revision_log (revision, origin, registry, policies, changes)
    SELECT value, ${origin}, ${logged.registry ?? null}, ${logged.policies ?? null},
      ${JSON.stringify(logged.changes)}
    FROM head
    RETURNING pg_notify(${LOG_CHANNEL}, revision::text)`;
}

/** The newest revision in the log. */
export async function logHead(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ value: number }[]>`SELECT value FROM counters WHERE name = 'log'`;
  return row?.value ?? 0;
}

/** Entries after `after`, and whether some of them are gone (see `LogPage.gap`). */
export async function readLog(sql: postgres.Sql, after: number, limit: number): Promise<LogPage> {
  // The head first: an entry committed after it may be read too, but never one before it missed.
  const head = await logHead(sql);
  const rows = await sql<
    {
      revision: number;
      at: Date;
      origin: string;
      registry: number | null;
      policies: number | null;
      changes: string;
    }[]
  >`
    SELECT revision, at, origin, registry, policies, changes FROM revision_log
    WHERE revision > ${after} ORDER BY revision LIMIT ${Math.max(0, limit)}`;
  const entries: LogEntry[] = rows.map((r) => ({
    revision: r.revision,
    at: r.at.toISOString(),
    origin: r.origin,
    registry: r.registry,
    policies: r.policies,
    changes: JSON.parse(r.changes) as LogChange[],
  }));
  const gap = after > head ||
    (after < head && limit > 0 && entries[0]?.revision !== after + 1);
  return { entries, head, gap };
}

/** Deletes entries committed more than `olderThanMs` ago; returns how many. */
export async function pruneLog(sql: postgres.Sql, olderThanMs: number): Promise<number> {
  const result = await sql`
    DELETE FROM revision_log WHERE at < clock_timestamp() - ${olderThanMs} * interval '1 millisecond'`;
  return result.count;
}

/** Options of {@link LogListener}. */
export interface ListenerOptions {
  /** The connection options of the store, minus the pool's. */
  connection: postgres.Options<Record<string, never>>;
  /** First delay before reconnecting; doubled per failure up to {@link maxBackoffMs}. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often the idle listening connection is checked, so a silently dead one is noticed. */
  pingMs?: number;
}

/**
 * One LISTEN connection shared by every watcher of a store: open while
 * anyone watches, reopened after any loss, and each (re)open wakes every
 * watcher.
 */
export class LogListener {
  readonly #url: string;
  readonly #options: ListenerOptions;
  readonly #watchers = new Set<() => void>();
  #sql: postgres.Sql | null = null;
  #listening = false;
  #connecting = false;
  #backoffMs: number;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #ping: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(url: string, options: ListenerOptions) {
    this.#url = url;
    this.#options = options;
    this.#backoffMs = options.minBackoffMs ?? 100;
  }

  /** True while the LISTEN is in place. */
  get listening(): boolean {
    return this.#listening;
  }

  /** See `RevisionLog.watch`. */
  watch(wake: () => void): () => void {
    if (this.#closed) return () => {};
    const watcher = () => wake();
    this.#watchers.add(watcher);
    if (this.#watchers.size === 1) void this.#connect();
    return () => {
      this.#watchers.delete(watcher);
      if (this.#watchers.size === 0) void this.#disconnect();
    };
  }

  /** Stops listening for good. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watchers.clear();
    await this.#disconnect();
  }

  #wakeAll(): void {
    for (const wake of [...this.#watchers]) wake();
  }

  async #connect(): Promise<void> {
    if (this.#closed || this.#connecting || this.#listening || this.#watchers.size === 0) return;
    this.#connecting = true;
    clearTimeout(this.#retry);
    // `onnotify` is what postgres.js's own listen() uses; its typings leave it out.
    const options: postgres.Options<Record<string, never>> & {
      onnotify: (channel: string) => void;
    } = {
      ...this.#options.connection,
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      onnotify: (channel) => {
        if (channel === LOG_CHANNEL) this.#wakeAll();
      },
      onclose: () => this.#lost(),
    };
    this.#sql ??= postgres(this.#url, options);
    try {
      await this.#sql.unsafe(`LISTEN ${LOG_CHANNEL}`);
      this.#connecting = false;
      if (this.#closed || this.#watchers.size === 0) return void this.#disconnect();
      this.#listening = true;
      this.#backoffMs = this.#options.minBackoffMs ?? 100;
      clearInterval(this.#ping);
      this.#ping = setInterval(() => {
        this.#sql?.unsafe("SELECT 1").catch(() => this.#lost());
      }, this.#options.pingMs ?? 30_000);
      this.#wakeAll();
    } catch {
      this.#connecting = false;
      this.#schedule();
    }
  }

  /** The LISTEN connection is gone: notifications stop until it is back. */
  #lost(): void {
    if (!this.#listening) return;
    this.#listening = false;
    clearInterval(this.#ping);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#watchers.size === 0) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#connect(), this.#backoffMs);
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#options.maxBackoffMs ?? 5_000);
  }

  async #disconnect(): Promise<void> {
    this.#listening = false;
    clearTimeout(this.#retry);
    clearInterval(this.#ping);
    const sql = this.#sql;
    this.#sql = null;
    await sql?.end({ timeout: 0 });
  }
}
