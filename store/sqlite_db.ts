import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { UnavailableError } from "../core/errors.ts";

/** A row as `node:sqlite` returns it. */
export type Row = Record<string, SQLInputValue>;

/**
 * One SQLite connection as the store's domain files use it: prepared
 * statements cached by their text (preparing costs more than running the
 * small statements the store issues), and transactions that take the write
 * lock up front.
 */
export class SqliteDb {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The prepared statement for `sql`; throws `UnavailableError` once closed. */
  stmt(sql: string): StatementSync {
    if (this.#closed) throw new UnavailableError("The store is closed");
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /** Runs SQL that is not worth caching (schema changes, one-off statements). */
  exec(sql: string): void {
    this.#db.exec(sql);
  }

  /** Prepares `sql` without caching it. */
  prepare(sql: string): StatementSync {
    return this.#db.prepare(sql);
  }

  /**
   * Runs `fn` in one transaction. `BEGIN IMMEDIATE` takes the write lock at
   * once, so two writers never both read and then fail to upgrade.
   *
   * On a failure the original error is what the caller sees. SQLite itself
   * rolls back on some errors (a full disk, an I/O error); a `ROLLBACK` then
   * fails with "no transaction is active", which must not replace the cause.
   */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.#db.isTransaction) {
        try {
          this.#db.exec("ROLLBACK");
        } catch {
          // The failure that matters is `error`; SQLite ends the transaction when it cannot roll back.
        }
      }
      throw error;
    }
  }

  /** Closes the connection once; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#statements.clear();
    try {
      this.#db.exec("PRAGMA optimize");
    } catch {
      // Only an optimisation; on a full or read-only disk it fails, and closing must not.
    }
    this.#db.close();
  }
}
