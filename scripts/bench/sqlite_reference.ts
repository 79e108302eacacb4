/**
 * The reference figure printed beside the heartbeat rate: how fast raw
 * `node:sqlite` takes batched inserts on this machine, with the settings the
 * server's store uses (WAL, `synchronous=NORMAL`). It tells a reader whether
 * a slow run is a slow machine or a slow server.
 */
import { DatabaseSync } from "node:sqlite";

/** Options of {@link measureSqliteInserts}. */
export interface SqliteReferenceOptions {
  /** Rows inserted in total. Default: 200,000. */
  rows?: number;
  /** Rows per transaction. Default: 1,000. */
  batch?: number;
}

/**
 * Inserts rows shaped like registry objects (a key and ~150 bytes of JSON)
 * into a fresh database file in `dir`, in transactions of `batch` rows, and
 * returns rows per second. The database files are removed afterwards.
 */
export async function measureSqliteInserts(
  dir: string,
  options: SqliteReferenceOptions = {},
): Promise<number> {
  const rows = options.rows ?? 200_000;
  const batch = options.batch ?? 1_000;
  const path = `${dir}/reference.db`;
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("CREATE TABLE rows (key TEXT PRIMARY KEY, revision INTEGER NOT NULL, data TEXT)");
    const insert = db.prepare("INSERT INTO rows (key, revision, data) VALUES (?, ?, ?)");
    const data = JSON.stringify({
      node: "bench-00000",
      service: "svc-0",
      address: "10.0.0.1",
      port: 8080,
      labels: { version: "v1" },
      check: { status: "passing", output: "" },
    });
    const start = performance.now();
    for (let done = 0; done < rows; done += batch) {
      db.exec("BEGIN");
      for (let i = done; i < Math.min(rows, done + batch); i++) insert.run(`key-${i}`, i, data);
      db.exec("COMMIT");
    }
    const seconds = (performance.now() - start) / 1000;
    return rows / seconds;
  } finally {
    db.close();
    for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(path + suffix).catch(() => {});
  }
}
