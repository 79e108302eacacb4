/**
 * How failures of PostgreSQL and of the connection to it reach the rest of
 * Ironmesh: as `StorageUnavailableError` naming what we tried, which database, and
 * what went wrong in words, so the API answers 503 and the CLI a sentence,
 * never a stack trace. Our own domain errors pass through untouched.
 */
import { InvalidError, MeshError, StorageUnavailableError } from "../core/errors.ts";

/** SQLSTATEs after which the same transaction may simply be run again. */
const RETRYABLE = new Set(["40001", "40P01"]);

/** Driver error codes (postgres.js and the socket) in words. */
const CONNECTION_FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "refused the connection",
  ENOTFOUND: "has a host name that does not resolve",
  EAI_AGAIN: "has a host name that does not resolve",
  EHOSTUNREACH: "cannot be reached",
  ENETUNREACH: "cannot be reached",
  ETIMEDOUT: "did not answer in time",
  CONNECT_TIMEOUT: "did not answer in time",
  ECONNRESET: "closed the connection",
  EPIPE: "closed the connection",
  CONNECTION_CLOSED: "closed the connection",
  CONNECTION_DESTROYED: "closed the connection",
  CONNECTION_ENDED: "connection was closed by this server",
};

interface DriverError {
  name?: string;
  code?: string;
  message?: string;
}

/** True when `error` is a transient conflict (deadlock, serialization) worth one more try. */
export function isRetryable(error: unknown): boolean {
  const e = error as DriverError;
  return e?.name === "PostgresError" && RETRYABLE.has(e.code ?? "");
}

/** True when PostgreSQL refused a row because its unique key is taken. */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as DriverError;
  return e?.name === "PostgresError" && e.code === "23505";
}

/**
 * The error to throw for `error`, raised while trying to `what` (a verb
 * phrase: "commit registry changes") on the database `target`. Failures of
 * PostgreSQL, of the connection or of its TLS become `StorageUnavailableError`; our
 * domain errors, programming errors and file errors pass through untouched.
 */
export function storeError(error: unknown, what: string, target: string): unknown {
  const e = error as DriverError;
  const postgresError = e?.name === "PostgresError";
  if (postgresError && e.code === "22021") {
    // Text with a NUL character: PostgreSQL cannot store it, SQLite could; it came from a caller.
    return new InvalidError(`Cannot ${what}: text with a NUL character cannot be stored`);
  }
  const words = CONNECTION_FAILURES[e?.code ?? ""];
  let reason: string;
  if (words) reason = `PostgreSQL "${target}" ${words}`;
  else if (postgresError) {
    reason = `PostgreSQL "${target}" answered: ${e.message} (SQLSTATE ${e.code})`;
  } else if (!(error instanceof Error) || PASS_THROUGH.some((type) => error instanceof type)) {
    return error;
  } else reason = `PostgreSQL "${target}": ${error.message}`;
  return new StorageUnavailableError(`Cannot ${what}: ${reason}`, { cause: error });
}

/** Errors that are not the database's: ours, bugs, and files (a snapshot writes one). */
const PASS_THROUGH: readonly (abstract new (...args: never[]) => Error)[] = [
  MeshError,
  TypeError,
  RangeError,
  SyntaxError,
  ...Object.values(Deno.errors),
];

/**
 * What a store URL names, for messages and logs: `user@host:port/database`,
 * never the password.
 */
export function describeTarget(url: string): string {
  const parsed = new URL(url);
  const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : "";
  return `${user}${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`;
}
