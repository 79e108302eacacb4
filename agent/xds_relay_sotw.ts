/**
 * One client's state-of-the-world ADS stream through the agent's relay.
 *
 * The relay is an xDS server to the client and an xDS client of the server:
 * every response the client gets is built here, from the cache of what the
 * server last sent for the client's node (`xds_relay_cache.ts`) plus what
 * the agent serves itself (`sds.ts`), with the relay's own nonces. So the
 * client's stream does not depend on the server's: when the server goes
 * away the client keeps its stream and is answered from the cache (a new
 * client too); when the server comes back the relay replays the client's
 * subscriptions on a new upstream stream, with the versions the client has,
 * and the server's answers reach the client on the stream it never left.
 *
 * ACKs and NACKs still reach the server: each response to the client
 * remembers the server's response it carries (nonce and version), and the
 * client's answer to it goes up as the answer to that one. Answers to
 * responses made here alone (from the cache, or a renewed certificate) go
 * nowhere, unless they change the subscription.
 *
 * Per type the client gets every resource it subscribed to that the relay
 * knows (every one of the type for a wildcard), in one response: a state of
 * the world, as the protocol asks for listeners and clusters and as Envoy's
 * unified mux reads every type (see `sds.ts`).
 */
import { isLocalResource } from "./sds.ts";
import { nodeKey } from "./xds_relay_cache.ts";
import { type RelaySession, SessionCore, type SessionOptions } from "./xds_relay_session.ts";
import {
  decodeSotwRequest,
  decodeSotwResponse,
  encodeSotwRequest,
  encodeSotwResponse,
  type ErrorDetail,
  resourceName,
  WILDCARD_TYPE_URLS,
} from "./xds_relay_wire.ts";

interface TypeState {
  /** What the client subscribed to. */
  names: ReadonlySet<string> | "*";
  /** The nonce of the last response to the client; `null` before the first. */
  sentNonce: string | null;
  /** The server's version the client last accepted, sent on a new upstream stream. */
  upAccepted: string;
  /** The server's latest response on the current upstream stream ("" none) and its version. */
  upNonce: string;
  upVersion: string;
  /** Whether the client's answer to `upNonce` went up already. */
  upAnswered: boolean;
  /** The names last sent up on the current upstream stream (`null`: none yet). */
  upNames: { key: string; names: ReadonlySet<string> | "*" } | null;
}

interface Sent {
  typeUrl: string;
  /** The upstream stream it belongs to. */
  generation: number;
  /** The server's response this one carries, if any. */
  upNonce: string | null;
  upVersion: string;
}

/** The key of a subscription, to compare two. */
function namesKey(names: ReadonlySet<string> | readonly string[] | "*"): string {
  return names === "*" ? "*" : [...names].sort().join("\n");
}

/** See the module comment. */
export class SotwSession implements RelaySession {
  readonly #options: SessionOptions;
  readonly #core = new SessionCore<Sent, TypeState>();

  constructor(options: SessionOptions) {
    this.#options = options;
  }

  /**
   * Handles one request from the client.
   * @throws {Error} If it is not a DiscoveryRequest (the relay ends the stream).
   */
  fromClient(bytes: Uint8Array): void {
    const request = decodeSotwRequest(bytes);
    const typeUrl = this.#core.request(request, nodeKey);
    let state = this.#core.types.get(typeUrl);
    const first = state === undefined;
    state ??= {
      names: "*",
      sentNonce: null,
      upAccepted: "",
      upNonce: "",
      upVersion: "",
      upAnswered: true,
      upNames: null,
    };
    this.#core.types.set(typeUrl, state);

    let forwarded = false;
    const answered = this.#core.sent(request.responseNonce);
    const wanted = request.resourceNames.length === 0 && WILDCARD_TYPE_URLS.has(typeUrl)
      ? "*"
      : new Set(request.resourceNames);
    const changed = first || namesKey(wanted) !== namesKey(state.names);
    state.names = wanted;
    if (answered !== undefined && answered.typeUrl === typeUrl) {
      forwarded = this.#answer(state, typeUrl, answered, request.errorDetail);
    }
    if (!changed) return;
    if (!forwarded) {
      this.#sendUp(typeUrl, state, state.upAnswered ? state.upNonce : "", null);
    }
    // Answer now what needs no server: the agent's own secrets, and the cache while it is away.
    const local = wanted !== "*" && [...wanted].some((n) => isLocalResource(typeUrl, n));
    const cached = !this.#core.live &&
      this.#options.cache.sotw(this.#core.key, typeUrl) !== undefined;
    if (local || cached) {
      if (cached) this.#options.servedFromCache?.(typeUrl);
      this.#respond(typeUrl, state);
    }
  }

  /** A new upstream stream: the client's subscriptions go up again, with what it has. */
  upstreamOpened(send: (bytes: Uint8Array) => void): void {
    this.#core.opened(send);
    for (const [typeUrl, state] of this.#core.types) {
      state.upNonce = "";
      state.upVersion = "";
      state.upAnswered = true;
      state.upNames = null;
      this.#sendUp(typeUrl, state, "", null);
    }
  }

  /** The upstream stream ended; the client is answered from the cache until the next one. */
  upstreamClosed(): void {
    this.#core.closed();
  }

  /**
   * Handles one response from the server.
   * @throws {Error} If it is not a DiscoveryResponse.
   */
  fromUpstream(bytes: Uint8Array): void {
    const response = decodeSotwResponse(bytes);
    this.#core.live = true;
    const state = this.#core.types.get(response.typeUrl);
    if (state === undefined) return;
    // The server answered the names it was last asked for: what it left out does not exist.
    this.#options.cache.putSotw(
      this.#core.key,
      response.typeUrl,
      state.upNames?.names ?? new Set(),
      response.versionInfo,
      response.resources.map((any) => ({ name: resourceName(any), any })),
    );
    state.upNonce = response.nonce;
    state.upVersion = response.versionInfo;
    state.upAnswered = false;
    this.#respond(response.typeUrl, state);
  }

  /** The agent's own resources changed (a renewed certificate): subscribed clients get them. */
  localChanged(): void {
    for (const [typeUrl, state] of this.#core.types) {
      if (state.names === "*" || state.sentNonce === null) continue;
      if ([...state.names].some((n) => isLocalResource(typeUrl, n))) this.#respond(typeUrl, state);
    }
  }

  /** The client's answer to one of the relay's responses; returns whether it went up. */
  #answer(
    state: TypeState,
    typeUrl: string,
    answered: Sent,
    error: ErrorDetail | null,
  ): boolean {
    if (error !== null) {
      this.#options.log.warn("Proxy rejected configuration (NACK)", {
        stream: this.#options.id,
        typeUrl,
        version: answered.upVersion,
        error: error.message,
      });
    } else if (answered.upNonce === null && answered.upVersion !== "") {
      // An answer from the cache, accepted: the server hears of it on the next upstream stream.
      state.upAccepted = answered.upVersion;
    }
    if (answered.upNonce === null || answered.generation !== this.#core.generation) return false;
    if (answered.upNonce !== state.upNonce || state.upAnswered) return false;
    if (error === null) state.upAccepted = answered.upVersion;
    state.upAnswered = true;
    return this.#sendUp(typeUrl, state, answered.upNonce, error);
  }

  /** Whether the server has a part in the subscription (it is not all the agent's own). */
  #wants(typeUrl: string, state: TypeState): boolean {
    return state.names === "*" || [...state.names].some((n) => !isLocalResource(typeUrl, n));
  }

  /** Sends the subscription (and an answer) up, if an upstream stream is open. */
  #sendUp(typeUrl: string, state: TypeState, nonce: string, error: ErrorDetail | null): boolean {
    if (!this.#core.open) {
      // The new stream replays the subscription, this change included.
      if (this.#wants(typeUrl, state)) this.#options.wantUpstream();
      return false;
    }
    const names = state.names === "*"
      ? "*"
      : [...state.names].filter((n) => !isLocalResource(typeUrl, n));
    const key = namesKey(names);
    // Only the agent's own resources, never asked of the server: nothing to tell it.
    if (names !== "*" && names.length === 0 && state.upNames === null) return false;
    if (nonce === "" && error === null && key === state.upNames?.key) return false;
    state.upNames = { key, names: names === "*" ? "*" : new Set(names) };
    return this.#core.sendUp((node) =>
      encodeSotwRequest({
        versionInfo: state.upAccepted,
        node,
        resourceNames: names === "*" ? [] : names,
        typeUrl,
        responseNonce: nonce,
        errorDetail: error,
      })
    );
  }

  /** Sends the client every subscribed resource the relay knows, as one response. */
  #respond(typeUrl: string, state: TypeState): void {
    const entry = this.#options.cache.sotw(this.#core.key, typeUrl);
    const resources: Uint8Array[] = [];
    const localVersions: string[] = [];
    if (state.names === "*") {
      resources.push(...(entry?.resources.values() ?? []));
    } else {
      for (const name of [...state.names].sort()) {
        const local = this.#options.local.get(typeUrl, name);
        if (local !== undefined) {
          resources.push(local.any);
          localVersions.push(local.version);
          continue;
        }
        const any = entry?.resources.get(name);
        if (any !== undefined) resources.push(any);
      }
    }
    const upVersion = state.upAnswered ? (entry?.version ?? "") : state.upVersion;
    const version = [upVersion, ...localVersions].filter((v) => v !== "").join("+");
    const nonce = this.#core.remember({
      typeUrl,
      generation: this.#core.generation,
      upNonce: state.upAnswered ? null : state.upNonce,
      upVersion,
    });
    state.sentNonce = nonce;
    this.#options.down(encodeSotwResponse({ versionInfo: version, resources, typeUrl, nonce }));
  }
}
