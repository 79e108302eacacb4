/**
 * Keeps a failed connection attempt to PostgreSQL that postgres.js has
 * already given up on from killing the server.
 *
 * Under Deno's `node:net`, a socket postgres.js has abandoned (it removes
 * every listener once the socket reports `close`) can still report its
 * failed `connect` afterwards. With no `error` listener left, Deno raises it
 * as an unhandled rejection and exits. CI saw it once, in the e2e test that
 * stops PostgreSQL under a running server: `Uncaught (in promise) Error:
 * connect ECONNREFUSED 127.0.0.1:<the database's port>`. Nothing is lost by
 * dropping it: the call that needed that connection has already failed with
 * its own error (a 503 to the client, `/readyz` unready), and the next call
 * connects again. Only a `connect` error for this store's own host and port
 * is dropped; any other unhandled rejection still ends the process as before.
 */

/** What Node.js-style socket errors carry. */
interface SocketError extends Error {
  syscall?: string;
  address?: string;
  port?: number;
}

/**
 * Drops stray `connect` errors for the database at `url` until the returned
 * function is called.
 */
export function dropStrayConnectErrors(url: string): () => void {
  const port = Number(new URL(url).port || "5432");
  const listener = (event: PromiseRejectionEvent) => {
    if (isStrayConnectError(event.reason, port)) event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", listener);
  return () => globalThis.removeEventListener("unhandledrejection", listener);
}

/** True for a failed `connect` to `port` (any address: `localhost` may resolve to either family). */
export function isStrayConnectError(reason: unknown, port: number): boolean {
  if (!(reason instanceof Error)) return false;
  const error = reason as SocketError;
  return error.syscall === "connect" && error.port === port;
}
