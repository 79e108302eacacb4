import { getRequestListener } from "@hono/node-server";
import { createServer, type Server } from "node:https";
import type { TLSSocket } from "node:tls";
import type { HostPort } from "../core/address.ts";
import { HEARTBEAT_INTERVAL_BOUNDS } from "../core/model.ts";

/**
 * How long the TLS port keeps an idle keep-alive connection open: the longest
 * heartbeat interval an agent may declare, plus a minute. Node's default (5 s)
 * equals the agent's default interval, so the server's close crossed the
 * agent's next heartbeat on the wire (1.8% of heartbeats failed with 5,000
 * agents). Above every allowed interval, an agent's connection is closed by
 * the agent (its client's own idle limit) or by a restart, never between
 * two beats. Idle connections cost memory only (see docs/benchmarks.md).
 * The headers and request timeouts stay at Node's defaults: they run only
 * while a request is arriving, not while the connection is idle, and they
 * are what bounds a client that opens a request and never finishes it.
 */
export const IDLE_TIMEOUT_MS = HEARTBEAT_INTERVAL_BOUNDS.max + 60_000;

/** The PEM material the TLS port serves with. */
export interface TlsMaterial {
  /** Server private key. */
  key: string;
  /** Server certificate chain (leaf then intermediate). */
  cert: string;
  /** Roots that client certificates must chain to (the trust bundle). */
  ca: string;
}

/** The running TLS port. */
export interface TlsListener {
  address: HostPort;
  /** Serves new handshakes with new material; open connections keep theirs. */
  reload(material: TlsMaterial): void;
  /** Closes every connection whose client certificate names `node` (revocation). */
  closeNode(node: string): number;
  /** Stops accepting, waits for in-flight requests, then closes idle connections. */
  stop(): Promise<void>;
}

/**
 * Serves `fetch` over HTTPS with optional client certificates. `Deno.serve`
 * cannot ask for client certificates, so this port runs on `node:https`:
 * it requests a certificate but does not require one (`rejectUnauthorized:
 * false`), so automation with bearer tokens and agents with mesh
 * certificates share one port; the app decides per request from
 * `socket.authorized`.
 */
export function listenTls(
  address: HostPort,
  material: TlsMaterial,
  fetch: (request: Request, env: unknown) => Response | Promise<Response>,
): Promise<TlsListener> {
  const server: Server = createServer({
    ...material,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: "TLSv1.2",
    keepAliveTimeout: IDLE_TIMEOUT_MS,
  }, getRequestListener(asNativeRequest(fetch), { overrideGlobalObjects: false }));
  const byNode = new Map<string, Set<TLSSocket>>();
  server.on("secureConnection", (socket: TLSSocket) => {
    const cn = socket.getPeerCertificate()?.subject?.CN;
    const node = Array.isArray(cn) ? cn[0] : cn;
    if (!node) return;
    let sockets = byNode.get(node);
    if (!sockets) byNode.set(node, sockets = new Set());
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0 && byNode.get(node) === sockets) byNode.delete(node);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      const bound = server.address();
      const port = typeof bound === "object" && bound ? bound.port : address.port;
      resolve({
        address: { host: address.host, port },
        reload(next) {
          server.setSecureContext({ ...next });
        },
        closeNode(node) {
          const sockets = byNode.get(node);
          if (!sockets) return 0;
          for (const s of sockets) s.destroy();
          return sockets.size;
        },
        stop() {
          return new Promise<void>((done) => {
            // Requests still running after the grace period are cut, so shutdown always ends.
            const force = setTimeout(() => server.closeAllConnections(), 5_000);
            server.close(() => {
              clearTimeout(force);
              done();
            });
            server.closeIdleConnections();
          });
        },
      });
    });
  });
}

/**
 * Keeps the app on the runtime's own Request and Response classes. The
 * adapter's default swaps the global classes for lighter ones, which the
 * plain-HTTP port (`Deno.serve`, same app) refuses; without the swap the
 * adapter hands over its own request objects, which Hono's body limit cannot
 * clone. So the listener rebuilds a real Request around the same body stream.
 */
function asNativeRequest(
  fetch: (request: Request, env: unknown) => Response | Promise<Response>,
): (request: Request, env: unknown) => Response | Promise<Response> {
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
