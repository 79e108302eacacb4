/**
 * How failures of the SQLite file reach the rest of Ironmesh: a full disk, a
 * read-only data directory or an I/O error becomes a
 * `StorageUnavailableError` naming what we tried, the file, and the cause in
 * words, so the API answers 503 and the log says what happened. Everything
 * else (our domain errors, a broken statement, which is a bug) passes through.
 */
import { StorageUnavailableError } from "../core/errors.ts";

/**
 * SQLite's own texts for the result codes that mean the file or the disk
 * failed, not the statement (`sqlite3ErrStr()`), with what they mean for an
 * operator. Deno's `node:sqlite` gives only the text (no `errcode`), which
 * may be followed by `: PATH`.
 */
const STORAGE_FAILURES: readonly [text: string, code: string, meaning: string][] = [
  ["database or disk is full", "SQLITE_FULL", "the disk holding it is full"],
  ["attempt to write a readonly database", "SQLITE_READONLY", "it or its directory is read-only"],
  ["disk I/O error", "SQLITE_IOERR", "the disk reported an I/O error (full or read-only?)"],
  ["unable to open database file", "SQLITE_CANTOPEN", "it cannot be opened or created"],
  ["access permission denied", "SQLITE_PERM", "access to it was denied"],
  ["database disk image is malformed", "SQLITE_CORRUPT", "it is damaged; restore a backup"],
  ["file is not a database", "SQLITE_NOTADB", "it is not an SQLite database"],
  ["database is locked", "SQLITE_BUSY", "another process holds its write lock"],
];

function failure(error: unknown) {
  if ((error as { code?: unknown })?.code !== "ERR_SQLITE_ERROR") return undefined;
  const message = (error as Error).message;
  return STORAGE_FAILURES.find(([text]) => message === text || message.startsWith(`${text}:`));
}

/**
 * The error to throw for `error`, raised while trying to `what` (a verb
 * phrase: "commit registry changes") on the database file `path`.
 */
export function sqliteStoreError(error: unknown, what: string, path: string): unknown {
  const found = failure(error);
  if (!found) return error;
  const [, code, meaning] = found;
  return new StorageUnavailableError(
    `Cannot ${what}: SQLite database "${path}": ${meaning} (${(error as Error).message}, ${code})`,
    { cause: error },
  );
}
