/**
 * What the relay (`xds_relay.ts`) and its two kinds of client sessions
 * (`xds_relay_sotw.ts`, `xds_relay_delta.ts`) agree on: a session gets the
 * client's messages, the server's messages and the news of its upstream
 * stream coming and going, and sends to the client through the relay.
 */
import type { Logger } from "../core/log.ts";
import type { LocalResources } from "./sds.ts";
import type { XdsCache } from "./xds_relay_cache.ts";

/** What a session needs from the relay. */
export interface SessionOptions {
  /** The relay's number of the stream, for logs. */
  id: number;
  cache: XdsCache;
  local: LocalResources;
  log: Logger;
  /** Sends a message to the client. */
  down: (bytes: Uint8Array) => void;
  /**
   * Asks for an upstream stream when there is something for the server and
   * none is open; {@link RelaySession.upstreamOpened} follows, at once or
   * after the backoff.
   */
  wantUpstream: () => void;
  /** Counts a response made from the cache while the server was away. */
  servedFromCache?: (typeUrl: string) => void;
}

/** One client stream through the relay; every method may throw on a malformed message. */
export interface RelaySession {
  /** Handles one request from the client. */
  fromClient(bytes: Uint8Array): void;
  /** A new upstream stream: `send` writes to it until {@link upstreamClosed}. */
  upstreamOpened(send: (bytes: Uint8Array) => void): void;
  /** Handles one response from the server. */
  fromUpstream(bytes: Uint8Array): void;
  /** The upstream stream ended; the session answers from the cache until the next one. */
  upstreamClosed(): void;
  /** The agent's own resources changed (a renewed certificate). */
  localChanged(): void;
}

/** How many of its responses a session remembers, to relate the client's answers to them. */
const REMEMBERED_RESPONSES = 64;

/**
 * The bookkeeping both kinds of session share: the client's node, the
 * current upstream stream (its generation, whether it answered, whether it
 * has the node yet) and the responses sent to the client, remembered by
 * nonce with what they carried of the server's.
 */
export class SessionCore<Sent, TypeState> {
  /** The session's own state of each type the client asked for, by type URL. */
  readonly types = new Map<string, TypeState>();
  /** The client's node as it sent it, and its cache key. */
  node: Uint8Array | null = null;
  key = "";
  /** Counts upstream streams, so an answer to an older one is not sent on a newer one. */
  generation = 0;
  /** Whether the current upstream stream has answered: the server is there. */
  live = false;
  #up: ((bytes: Uint8Array) => void) | null = null;
  #nodeSentUp = false;
  #nonce = 0;
  readonly #sent = new Map<string, Sent>();

  /**
   * Takes a client's request: keeps the node of the first that has one, and
   * returns the type URL it is about.
   * @throws {Error} If it names no type.
   */
  request(
    request: { node: Uint8Array | null; typeUrl: string },
    key: (node: Uint8Array) => string,
  ): string {
    if (this.node === null && request.node !== null) {
      this.node = request.node;
      this.key = key(request.node);
    }
    if (request.typeUrl === "") throw new Error("The request has no type_url");
    return request.typeUrl;
  }

  /** Whether an upstream stream is open. */
  get open(): boolean {
    return this.#up !== null;
  }

  opened(send: (bytes: Uint8Array) => void): void {
    this.generation++;
    this.#up = send;
    this.live = false;
    this.#nodeSentUp = false;
  }

  closed(): void {
    this.#up = null;
    this.live = false;
  }

  /** Sends `encode(node)` up, the node only on the stream's first message; false when closed. */
  sendUp(encode: (node: Uint8Array | null) => Uint8Array): boolean {
    if (this.#up === null) return false;
    const node = this.#nodeSentUp ? null : this.node;
    this.#nodeSentUp = true;
    this.#up(encode(node));
    return true;
  }

  /** A new nonce for a response to the client, remembered with `sent`. */
  remember(sent: Sent): string {
    const nonce = String(++this.#nonce);
    this.#sent.set(nonce, sent);
    if (this.#sent.size > REMEMBERED_RESPONSES) this.#sent.delete(this.#sent.keys().next().value!);
    return nonce;
  }

  /** What the response with `nonce` carried, if it is still remembered. */
  sent(nonce: string): Sent | undefined {
    return this.#sent.get(nonce);
  }
}
