/**
 * One client's incremental (delta) ADS stream through the agent's relay;
 * the state-of-the-world twin is `xds_relay_sotw.ts`, whose comment says how
 * the relay serves both sides.
 *
 * Delta keeps a version per resource, which makes the relay's job exact:
 * it knows what the client has (its `initial_resource_versions`, then what
 * the relay sent it), sends only resources whose version differs, and
 * passes on the server's removals. On a new upstream stream it tells the
 * server the versions the client has, so the server sends only what changed
 * while it was away.
 * A response of the server that changes nothing for the client is ACKed by
 * the relay itself, so the server never waits for an answer that will not
 * come.
 */
import { isLocalResource } from "./sds.ts";
import { nodeKey } from "./xds_relay_cache.ts";
import { type RelaySession, SessionCore, type SessionOptions } from "./xds_relay_session.ts";
import {
  decodeDeltaRequest,
  decodeDeltaResponse,
  type DeltaResource,
  encodeDeltaRequest,
  encodeDeltaResource,
  encodeDeltaResponse,
  type ErrorDetail,
  WILDCARD_TYPE_URLS,
} from "./xds_relay_wire.ts";

interface TypeState {
  wildcard: boolean;
  /** Names subscribed explicitly. */
  names: Set<string>;
  /** Name → version of what the client has. */
  has: Map<string, string>;
  /** The server's latest response on the current upstream stream ("" none). */
  upNonce: string;
  upVersion: string;
  /** Whether the answer to `upNonce` went up already. */
  upAnswered: boolean;
  /** Whether the subscription went up on the current upstream stream. */
  upSubscribed: boolean;
}

interface Sent {
  typeUrl: string;
  generation: number;
  upNonce: string | null;
}

/** See the module comment. */
export class DeltaSession implements RelaySession {
  readonly #options: SessionOptions;
  readonly #core = new SessionCore<Sent, TypeState>();

  constructor(options: SessionOptions) {
    this.#options = options;
  }

  fromClient(bytes: Uint8Array): void {
    const request = decodeDeltaRequest(bytes);
    const typeUrl = this.#core.request(request, nodeKey);
    let state = this.#core.types.get(typeUrl);
    if (state === undefined) {
      state = {
        // An empty first subscription to listeners or clusters is the legacy wildcard.
        wildcard: request.subscribe.length === 0 && WILDCARD_TYPE_URLS.has(typeUrl),
        names: new Set(),
        has: new Map(request.initialVersions),
        upNonce: "",
        upVersion: "",
        upAnswered: true,
        upSubscribed: false,
      };
      this.#core.types.set(typeUrl, state);
    }
    const added: string[] = [];
    const removed: string[] = [];
    for (const name of request.subscribe) {
      if (name === "*") state.wildcard = true;
      else if (!state.names.has(name)) {
        state.names.add(name);
        added.push(name);
      }
    }
    for (const name of request.unsubscribe) {
      if (name === "*") state.wildcard = false;
      else if (state.names.delete(name)) removed.push(name);
      state.has.delete(name);
    }
    if (request.subscribe.includes("*")) added.push("*");
    if (request.unsubscribe.includes("*")) removed.push("*");

    let forwarded = false;
    const answered = this.#core.sent(request.responseNonce);
    if (request.errorDetail !== null && answered !== undefined) {
      this.#options.log.warn("Proxy rejected configuration (NACK)", {
        stream: this.#options.id,
        typeUrl,
        error: request.errorDetail.message,
      });
    }
    if (
      answered?.typeUrl === typeUrl && answered.upNonce !== null &&
      answered.generation === this.#core.generation && answered.upNonce === state.upNonce &&
      !state.upAnswered
    ) {
      state.upAnswered = true;
      forwarded = this.#sendUp(
        typeUrl,
        state,
        added,
        removed,
        answered.upNonce,
        request.errorDetail,
      );
    }
    if (!forwarded) this.#sendUp(typeUrl, state, added, removed, "", null);
    if (!this.#core.live && this.#options.cache.delta(this.#core.key, typeUrl).size > 0) {
      this.#options.servedFromCache?.(typeUrl);
    }
    this.#respond(typeUrl, state, []);
  }

  upstreamOpened(send: (bytes: Uint8Array) => void): void {
    this.#core.opened(send);
    for (const [typeUrl, state] of this.#core.types) {
      state.upNonce = "";
      state.upAnswered = true;
      state.upSubscribed = false;
      this.#sendUp(typeUrl, state, [], [], "", null);
    }
  }

  upstreamClosed(): void {
    this.#core.closed();
  }

  fromUpstream(bytes: Uint8Array): void {
    const response = decodeDeltaResponse(bytes);
    this.#core.live = true;
    const state = this.#core.types.get(response.typeUrl);
    if (state === undefined) return;
    this.#options.cache.applyDelta(
      this.#core.key,
      response.typeUrl,
      response.resources,
      response.removed,
    );
    state.upNonce = response.nonce;
    state.upVersion = response.systemVersionInfo;
    state.upAnswered = false;
    if (!this.#respond(response.typeUrl, state, response.removed)) {
      // Nothing new for the client, so no answer will come from it: accept for it.
      state.upAnswered = true;
      this.#sendUp(response.typeUrl, state, [], [], response.nonce, null);
    }
  }

  localChanged(): void {
    for (const [typeUrl, state] of this.#core.types) {
      if ([...state.names].some((n) => isLocalResource(typeUrl, n))) {
        this.#respond(typeUrl, state, []);
      }
    }
  }

  /** Whether the server has a part in the subscription (it is not all the agent's own). */
  #wants(typeUrl: string, state: TypeState): boolean {
    return state.wildcard || [...state.names].some((n) => !isLocalResource(typeUrl, n));
  }

  /**
   * Sends up the whole subscription (first time on this upstream stream) or
   * its changes, with an answer when `nonce` is set. Returns whether it sent.
   */
  #sendUp(
    typeUrl: string,
    state: TypeState,
    added: readonly string[],
    removed: readonly string[],
    nonce: string,
    error: ErrorDetail | null,
  ): boolean {
    if (!this.#core.open) {
      // The new stream replays the subscription, this change included.
      if (this.#wants(typeUrl, state)) this.#options.wantUpstream();
      return false;
    }
    const remote = (names: Iterable<string>) =>
      [...names].filter((n) => !isLocalResource(typeUrl, n));
    let subscribe: string[];
    let unsubscribe: string[] = [];
    const initialVersions = new Map<string, string>();
    if (!state.upSubscribed) {
      const names = remote(state.names);
      if (!state.wildcard && names.length === 0) return false;
      // What the client has, so that the server sends what it lacks (the cache may be ahead of
      // this client when another stream of the same node reconnected first).
      for (const [name, version] of state.has) {
        if (!isLocalResource(typeUrl, name)) initialVersions.set(name, version);
      }
      subscribe = state.wildcard && names.length > 0 ? ["*", ...names] : names;
      state.upSubscribed = true;
    } else {
      subscribe = remote(added);
      unsubscribe = remote(removed);
      if (subscribe.length === 0 && unsubscribe.length === 0 && nonce === "") return false;
    }
    return this.#core.sendUp((node) =>
      encodeDeltaRequest({
        node,
        typeUrl,
        subscribe,
        unsubscribe,
        initialVersions,
        responseNonce: nonce,
        errorDetail: error,
      })
    );
  }

  /**
   * Sends the client what it lacks of its subscription (and the server's
   * removals of what it has). Returns whether there was anything to send.
   */
  #respond(typeUrl: string, state: TypeState, serverRemoved: readonly string[]): boolean {
    const cache = this.#options.cache.delta(this.#core.key, typeUrl);
    const names = state.wildcard ? new Set([...cache.keys(), ...state.names]) : state.names;
    const resources: DeltaResource[] = [];
    for (const name of [...names].sort()) {
      const local = this.#options.local.get(typeUrl, name);
      const resource = local !== undefined
        ? encodeDeltaResource(name, local.version, local.any)
        : cache.get(name);
      if (resource === undefined || state.has.get(name) === resource.version) continue;
      resources.push({ name, version: resource.version, bytes: resource.bytes });
      state.has.set(name, resource.version);
    }
    const removed = serverRemoved.filter((name) => state.has.delete(name));
    if (resources.length === 0 && removed.length === 0) return false;
    const nonce = this.#core.remember({
      typeUrl,
      generation: this.#core.generation,
      upNonce: state.upAnswered ? null : state.upNonce,
    });
    this.#options.down(encodeDeltaResponse({
      systemVersionInfo: state.upVersion,
      resources,
      typeUrl,
      nonce,
      removed,
    }));
    return true;
  }
}
