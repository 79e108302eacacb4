/**
 * Forwarding of the names that are not the mesh's to the host's own
 * resolvers, when the agent's DNS is configured to (`dns.forward`), so that
 * applications can use the agent as their only resolver.
 *
 * The resolvers are the `nameserver` lines of `/etc/resolv.conf`, read at
 * start, less the agent's own address (a host that points its resolver at
 * the agent must not loop). A query goes out over UDP with an ID of its
 * own; without an answer in {@link TRY_MS} it goes to the next resolver,
 * and after the last one the client gets SERVFAIL.
 */
import dgram from "node:dgram";
import { isIP } from "node:net";
import { formatHostPort, type HostPort } from "../core/address.ts";

/** Time one resolver gets to answer before the next one is tried. */
export const TRY_MS = 1_000;

/**
 * The resolvers of a `resolv.conf` text, as `host:port` (port 53), without
 * `self` (the agent's own DNS address) and without entries that are not IP
 * literals.
 */
export function resolversOf(text: string, self: HostPort): HostPort[] {
  const out: HostPort[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    // A scoped IPv6 address (fe80::1%eth0) keeps its zone for the socket.
    const host = m[1]!;
    if (isIP(host.split("%")[0]!) === 0) continue;
    if (host === self.host && self.port === 53) continue;
    out.push({ host, port: 53 });
  }
  return out;
}

interface Pending {
  resolve: (answer: Uint8Array | null) => void;
  id: number;
}

/** Sends queries to the host's resolvers; see the module comment. */
export class Forwarder {
  readonly #resolvers: HostPort[];
  readonly #sockets = new Map<4 | 6, dgram.Socket>();
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  constructor(resolvers: HostPort[]) {
    this.#resolvers = resolvers;
  }

  /** The resolvers, for the start-up log. */
  get resolvers(): string[] {
    return this.#resolvers.map(formatHostPort);
  }

  /**
   * Forwards `query` and resolves with the first resolver's answer (with the
   * query's own ID), or `null` when none answered in time.
   */
  async forward(query: Uint8Array): Promise<Uint8Array | null> {
    const originalId = (query[0]! << 8) | query[1]!;
    for (const resolver of this.#resolvers) {
      if (this.#closed) return null;
      const answer = await this.#try(query, resolver);
      if (answer !== null) {
        answer[0] = originalId >> 8;
        answer[1] = originalId & 0xff;
        return answer;
      }
    }
    return null;
  }

  /** Closes the sockets; pending queries resolve with `null`. */
  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) p.resolve(null);
    this.#pending.clear();
    for (const s of this.#sockets.values()) s.close();
    this.#sockets.clear();
  }

  #socket(family: 4 | 6): dgram.Socket {
    let socket = this.#sockets.get(family);
    if (socket === undefined) {
      socket = dgram.createSocket(family === 6 ? "udp6" : "udp4");
      socket.on("message", (message: Buffer) => {
        if (message.length < 12) return;
        const id = (message[0]! << 8) | message[1]!;
        const pending = this.#pending.get(id);
        if (pending === undefined) return;
        this.#pending.delete(id);
        pending.resolve(new Uint8Array(message));
      });
      socket.on("error", () => {});
      this.#sockets.set(family, socket);
    }
    return socket;
  }

  #try(query: Uint8Array, resolver: HostPort): Promise<Uint8Array | null> {
    let id: number;
    do id = Math.floor(Math.random() * 0x10000); while (this.#pending.has(id));
    const out = query.slice();
    out[0] = id >> 8;
    out[1] = id & 0xff;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(null);
      }, TRY_MS);
      this.#pending.set(id, {
        id,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
      });
      const family = resolver.host.includes(":") ? 6 : 4;
      this.#socket(family).send(out, resolver.port, resolver.host, (error) => {
        if (error && this.#pending.delete(id)) {
          clearTimeout(timer);
          resolve(null);
        }
      });
    });
  }
}
