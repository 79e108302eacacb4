import { getRequestListener } from "@hono/node-server";
import { createServer, type Server } from "node:https";
import type { TLSSocket } from "node:tls";
import type { HostPort } from "../core/address.ts";
import type { ConnectionLimits } from "../core/connection_limits.ts";
import { guardConnections } from "./connection_guard.ts";
import { asNativeRequest, type FetchHandler, listenOn, stopServer } from "./http_listener.ts";

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
export async function listenTls(
  address: HostPort,
  material: TlsMaterial,
  fetch: FetchHandler,
  limits: ConnectionLimits,
): Promise<TlsListener> {
  const server: Server = createServer({
    ...material,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: "TLSv1.2",
  }, getRequestListener(asNativeRequest(fetch), { overrideGlobalObjects: false }));
  guardConnections(server, limits);
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
  return {
    address: await listenOn(server, address),
    reload(next) {
      server.setSecureContext({ ...next });
    },
    closeNode(node) {
      const sockets = byNode.get(node);
      if (!sockets) return 0;
      for (const s of sockets) s.destroy();
      return sockets.size;
    },
    stop: () => stopServer(server),
  };
}
