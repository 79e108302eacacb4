/**
 * Deadlines and a cap for the connections of an HTTP port (plain and TLS).
 *
 * Deno's `node:http` and `node:https` servers ignore `headersTimeout` and
 * `requestTimeout` (checked on Deno 2.9.6: a connection that sent half a
 * request line, or nothing at all, stayed open for as long as it was watched),
 * and `Deno.serve` has neither option; `keepAliveTimeout` and
 * `maxConnections` do work. So each connection gets a timer of our own:
 * armed when it opens and again when a response ends, cleared when a
 * request's headers have arrived. A connection that does not send a whole
 * request head in time is closed, which bounds both the slow-header client
 * and the one that connects and sends nothing.
 */
import type { Server as HttpServer } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { ConnectionLimits } from "../core/connection_limits.ts";

/** Applies `limits` to `server`; `events` hears of each connection closed by them. */
export function guardConnections(
  server: HttpServer | HttpsServer,
  limits: ConnectionLimits,
  events: { closed?: (reason: "header-timeout" | "idle-timeout") => void } = {},
): void {
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  const timers = new WeakMap<Socket, ReturnType<typeof setTimeout>>();
  const arm = (socket: Socket, ms: number, reason: "header-timeout" | "idle-timeout") => {
    clearTimeout(timers.get(socket));
    const timer = setTimeout(() => {
      events.closed?.(reason);
      socket.destroy();
    }, ms);
    // A stopping server must not wait for these.
    Deno.unrefTimer(timer as unknown as number);
    timers.set(socket, timer);
  };
  const clear = (socket: Socket) => {
    clearTimeout(timers.get(socket));
    timers.delete(socket);
  };
  // The raw connection for a TLS port too: its handshake counts against the header deadline.
  server.on("connection", (socket: Socket) => {
    arm(socket, limits.headerTimeoutMs, "header-timeout");
    socket.once("close", () => clear(socket));
  });
  server.on("secureConnection", (socket: Socket) => {
    // The TLS socket carries the requests from here on; the deadline moves to it.
    const raw = (socket as Socket & { _parent?: Socket })._parent;
    if (raw) clear(raw);
    arm(socket, limits.headerTimeoutMs, "header-timeout");
    socket.once("close", () => clear(socket));
  });
  server.on("request", (request, response) => {
    const socket = request.socket as Socket;
    clear(socket);
    response.once("close", () => {
      if (!socket.destroyed) arm(socket, limits.idleTimeoutMs, "idle-timeout");
    });
  });
}
