/**
 * The listening socket of a gRPC port, owned by us rather than by grpc-js
 * (issue 14 item 9). grpc-js's own listener (`bindAsync`) has no deadline for
 * a connection that never speaks and no cap on connections: a client that
 * connected and sent nothing held its socket (and, under TLS, a half-done
 * handshake) until it went away. So the port listens with `node:net` or
 * `node:tls` here, bounds what a connection may hold, and hands each accepted
 * connection to the grpc-js server through its connection injector.
 *
 * - **Cap.** `maxConnections` of the listening server: connections over it
 *   are closed as they arrive (the runtime's accept loop does it).
 * - **Header deadline.** A connection has `headerTimeoutMs` to finish its TLS
 *   handshake and send the HTTP/2 client preface and its first frame (the
 *   SETTINGS frame every client sends with the preface). The check is made
 *   once, at the deadline, on the bytes read from the connection (decrypted
 *   ones on a TLS port): one timer per connection and nothing per frame.
 * - **Idle.** grpc-js's `grpc.max_connection_idle_ms` (set by the caller on
 *   the grpc-js server) closes a connection with no call open; an open ADS
 *   stream is a call, so a proxy's long-lived stream is never cut as idle.
 *
 * TLS is terminated here, not by grpc-js: the deadline then sees the
 * handshake's end and the preface apart, and the serving certificate is
 * swapped like the HTTPS port's (`setSecureContext`). grpc-js gets the
 * `TLSSocket` as a plaintext HTTP/2 connection, and its `getAuthContext()`
 * still reads the client certificate from it (checked on Deno 2.9.6 with
 * grpc-js 1.14.7).
 */
import * as grpc from "@grpc/grpc-js";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import type { HostPort } from "../core/address.ts";
import type { ConnectionLimits } from "../core/connection_limits.ts";

/**
 * Bytes a gRPC client sends before anything else: the 24-byte HTTP/2 client
 * preface and the 9-byte header of the SETTINGS frame that must follow it
 * (RFC 9113 section 3.4).
 */
const PREFACE_BYTES = 24 + 9;

/** PEM material of a mTLS gRPC port. */
export interface GrpcTlsMaterial {
  /** Server private key. */
  key: string;
  /** Server certificate chain (leaf then intermediate). */
  cert: string;
  /** Roots client certificates must chain to (the trust bundle). */
  ca: string;
}

/** Why a connection was closed by the port's limits. */
export type GrpcCloseReason = "header-timeout";

/** Options of {@link listenGrpc}. */
export interface GrpcListenOptions {
  /** Limits of this port. */
  limits: ConnectionLimits;
  /** Serve mTLS (client certificates required) with this material; plaintext when absent. */
  tls?: GrpcTlsMaterial;
  /** Hears of each connection closed by the limits. */
  closed?: (reason: GrpcCloseReason) => void;
}

/** A listening gRPC port. */
export interface GrpcPort {
  /** The address bound (port 0 resolved). */
  address: HostPort;
  /** New handshakes use `material`; open connections keep theirs. No-op on a plaintext port. */
  reload(material: GrpcTlsMaterial): void;
  /** Stops accepting; connections already handed over stay with grpc-js. */
  close(): void;
  /** Destroys every connection the port still holds. */
  destroyAll(): void;
}

/** Listens on `address` and hands every connection within `options.limits` to `server`. */
export function listenGrpc(
  server: grpc.Server,
  address: HostPort,
  options: GrpcListenOptions,
): Promise<GrpcPort> {
  const { limits, tls } = options;
  // Plaintext to grpc-js in both cases: a TLS port hands over its decrypted TLSSocket.
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const open = new Set<Socket>();
  const started = (socket: Socket) => socket.bytesRead >= PREFACE_BYTES;
  const track = (socket: Socket) => {
    open.add(socket);
    // A reset by the client is its own business; the socket just closes.
    socket.on("error", () => {});
    socket.once("close", () => open.delete(socket));
  };
  let listener: NetServer;
  if (tls) {
    listener = createTlsServer({
      ...tls,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
      ALPNProtocols: ["h2"],
    });
    const secured = new WeakMap<Socket, TLSSocket>();
    listener.on("connection", (raw: Socket) => {
      track(raw);
      deadline(raw, limits.headerTimeoutMs, () => {
        const secure = secured.get(raw);
        return secure !== undefined && started(secure);
      }, options.closed);
    });
    listener.on("secureConnection", (socket: TLSSocket) => {
      const raw = (socket as TLSSocket & { _parent?: Socket })._parent;
      if (raw) secured.set(raw, socket);
      track(socket);
      injector.injectConnection(socket);
    });
    // A failed handshake (no or a stranger's certificate) closes the connection, nothing more.
    listener.on("tlsClientError", () => {});
  } else {
    listener = createNetServer((socket) => {
      track(socket);
      deadline(socket, limits.headerTimeoutMs, () => started(socket), options.closed);
      injector.injectConnection(socket);
    });
  }
  listener.maxConnections = limits.maxConnections;
  return new Promise((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(address.port, address.host, () => {
      listener.off("error", reject);
      const bound = listener.address();
      resolve({
        address: { host: address.host, port: typeof bound === "object" && bound ? bound.port : 0 },
        reload(material) {
          if (tls) (listener as ReturnType<typeof createTlsServer>).setSecureContext(material);
        },
        close() {
          listener.close();
        },
        destroyAll() {
          for (const socket of open) socket.destroy();
          injector.destroy();
        },
      });
    });
  });
}

/** Destroys `socket` at `ms` unless `spoke()` says it has started talking by then. */
function deadline(
  socket: Socket,
  ms: number,
  spoke: () => boolean,
  closed?: (reason: GrpcCloseReason) => void,
): void {
  const timer = setTimeout(() => {
    if (socket.destroyed || spoke()) return;
    closed?.("header-timeout");
    socket.destroy();
  }, ms);
  // A stopping server must not wait for these.
  Deno.unrefTimer(timer as unknown as number);
  socket.once("close", () => clearTimeout(timer));
}
