/**
 * The plain-HTTP port of the REST API. It runs on `node:http`, as the TLS
 * port runs on `node:https`, rather than on `Deno.serve`: `Deno.serve` has
 * no header or idle timeout and no connection cap, so a client that opened
 * connections and sent nothing (or half a request) held them for as long as
 * it liked. Both ports now share the limits of `connection_guard.ts`.
 */
import { getRequestListener } from "@hono/node-server";
import { createServer, type Server as HttpServer } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { HostPort } from "../core/address.ts";
import type { ConnectionLimits } from "../core/connection_limits.ts";
import { guardConnections } from "./connection_guard.ts";

/** A request handler on the runtime's own Request and Response classes. */
export type FetchHandler = (request: Request, env: unknown) => Response | Promise<Response>;

/** The running plain-HTTP port. */
export interface HttpListener {
  address: HostPort;
  /** Stops accepting, waits for in-flight requests (at most 5 s), then closes every connection. */
  stop(): Promise<void>;
}

/** Serves `fetch` over plain HTTP on `address` with `limits`. */
export async function listenPlain(
  address: HostPort,
  fetch: FetchHandler,
  limits: ConnectionLimits,
): Promise<HttpListener> {
  const server = createServer(
    getRequestListener(asNativeRequest(fetch), { overrideGlobalObjects: false }),
  );
  guardConnections(server, limits);
  return { address: await listenOn(server, address), stop: () => stopServer(server) };
}

/** Starts `server` listening on `address`; resolves with the address bound (port 0 picks one). */
export function listenOn(server: HttpServer | HttpsServer, address: HostPort): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      const bound = server.address();
      const port = typeof bound === "object" && bound ? bound.port : address.port;
      resolve({ host: address.host, port });
    });
  });
}

/** Stops accepting, waits for in-flight requests (at most 5 s), then closes every connection. */
export function stopServer(server: HttpServer | HttpsServer): Promise<void> {
  return new Promise<void>((done) => {
    // Requests still running after the grace period are cut, so shutdown always ends.
    const force = setTimeout(() => server.closeAllConnections(), 5_000);
    server.close(() => {
      clearTimeout(force);
      done();
    });
    server.closeIdleConnections();
  });
}

/**
 * Keeps the app on the runtime's own Request and Response classes. The
 * adapter's default swaps the global classes for lighter ones; without the
 * swap the adapter hands over its own request objects, which Hono's body
 * limit cannot clone. So the listener rebuilds a real Request around the
 * same body stream.
 */
export function asNativeRequest(fetch: FetchHandler): FetchHandler {
  return (request, env) => {
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    return fetch(
      new Request(request.url, {
        method: request.method,
        headers: request.headers,
        ...(hasBody ? { body: request.body, duplex: "half" } : {}),
      } as RequestInit),
      env,
    );
  };
}
