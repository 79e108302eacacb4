/**
 * The agent's DNS server: UDP and TCP on one address (`--dns-addr`, default
 * `127.0.0.1:8600`; port 0 picks one port free for both), answering the
 * mesh's names (`dns_message.ts`, `dns_zone.ts`) and, when configured,
 * forwarding the rest to the host's resolvers (`dns_forward.ts`).
 *
 * TCP carries each message after a 2-byte length (RFC 1035, 4.2.2); a
 * connection may send several queries, and is closed after
 * {@link TCP_IDLE_MS} without one or when it sends a length of 0. Answers
 * never wait for the server: the zone is the agent's own copy of the
 * registry.
 */
import dgram from "node:dgram";
import net from "node:net";
import { formatHostPort, type HostPort } from "../core/address.ts";
import type { Logger } from "../core/log.ts";
import type { Forwarder } from "./dns_forward.ts";
import type { DnsResponder, Rcode } from "./dns_message.ts";

/** The default address of the agent's DNS server. */
export const DEFAULT_DNS_ADDR = "127.0.0.1:8600";
/** A TCP connection without a query for this long is closed. */
export const TCP_IDLE_MS = 10_000;
/** Attempts to find a port free for both UDP and TCP when asked for port 0. */
const FREE_PORT_ATTEMPTS = 20;

/** Hooks for metrics; the values are bounded sets. */
export interface DnsEvents {
  /** A query arrived (`type`: the question's type). */
  query?: (type: string, transport: "udp" | "tcp") => void;
  /** A response went out with this RCODE (forwarded ones as `forwarded`). */
  response?: (rcode: Rcode | "forwarded", transport: "udp" | "tcp") => void;
  /** A query took this long, in seconds, from arrival to answer. */
  duration?: (seconds: number) => void;
}

/** Options of {@link startDnsServer}. */
export interface DnsServerOptions {
  listen: HostPort;
  responder: DnsResponder;
  /** Where names outside the mesh's domain go; absent: REFUSED. */
  forwarder?: Forwarder;
  log: Logger;
  events?: DnsEvents;
}

/** A running DNS server. */
export interface DnsServer {
  /** The address bound, port 0 resolved (the same for UDP and TCP). */
  readonly address: HostPort;
  close(): Promise<void>;
}

function bindUdp(socket: dgram.Socket, address: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => reject(error);
    socket.once("error", fail);
    socket.bind(address.port, address.host, () => {
      socket.off("error", fail);
      resolve(socket.address().port);
    });
  });
}

function listenTcp(server: net.Server, address: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => reject(error);
    server.once("error", fail);
    server.listen(address.port, address.host, () => {
      server.off("error", fail);
      resolve();
    });
  });
}

/** Starts the server; rejects when the address cannot be bound. */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const { log, responder, forwarder, events } = options;

  /** Answers one message; `null` when there is nothing to send. */
  const answer = async (
    query: Uint8Array,
    transport: "udp" | "tcp",
  ): Promise<Uint8Array | null> => {
    const started = performance.now();
    const handled = responder.handle(query, transport);
    if (handled.kind === "drop") return null;
    events?.query?.(handled.type, transport);
    let bytes: Uint8Array | null;
    if (handled.kind === "forward") {
      bytes = await forwarder!.forward(query);
      if (bytes === null) {
        bytes = responder.serverFailure(query, transport);
        events?.response?.("SERVFAIL", transport);
      } else {
        events?.response?.("forwarded", transport);
      }
    } else {
      bytes = handled.bytes;
      events?.response?.(handled.rcode, transport);
    }
    events?.duration?.((performance.now() - started) / 1000);
    return bytes;
  };

  const family = options.listen.host.includes(":") ? "udp6" : "udp4";
  let udp!: dgram.Socket;
  let tcp!: net.Server;
  let port = 0;
  const sockets = new Set<net.Socket>();
  for (let attempt = 0;; attempt++) {
    udp = dgram.createSocket(family);
    tcp = net.createServer();
    try {
      port = await bindUdp(udp, options.listen);
      await listenTcp(tcp, { host: options.listen.host, port });
      break;
    } catch (error) {
      udp.close();
      tcp.close();
      // Port 0: UDP got a port TCP could not have; try another.
      if (options.listen.port !== 0 || attempt >= FREE_PORT_ATTEMPTS) {
        throw new Error(
          `Cannot listen on DNS address ${formatHostPort(options.listen)}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        );
      }
    }
  }

  udp.on("message", (message: Buffer, peer: dgram.RemoteInfo) => {
    answer(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), "udp").then(
      (bytes) => {
        if (bytes !== null) udp.send(bytes, peer.port, peer.address);
      },
    );
  });
  udp.on("error", (error) => log.warn("DNS UDP socket error", { error }));

  tcp.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 2) {
        const length = buffer.readUInt16BE(0);
        if (length === 0) {
          socket.destroy();
          return;
        }
        if (buffer.length < 2 + length) break;
        const message = new Uint8Array(buffer.subarray(2, 2 + length));
        buffer = buffer.subarray(2 + length);
        answer(message, "tcp").then((bytes) => {
          if (bytes === null || socket.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(bytes.length);
          socket.write(Buffer.concat([head, bytes]));
        });
      }
    });
  });

  const address = { host: options.listen.host, port };
  log.info("DNS server listening", {
    address: formatHostPort(address),
    forwardTo: forwarder?.resolvers ?? [],
  });
  return {
    address,
    async close() {
      for (const s of sockets) s.destroy();
      forwarder?.close();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}
