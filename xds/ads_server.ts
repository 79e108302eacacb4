/**
 * The ADS stream server: state-of-the-world `StreamAggregatedResources` over
 * one gRPC bidirectional stream per proxy. It knows nothing of the registry:
 * it asks `snapshotFor` for a proxy's resources and is told by the push
 * pipeline when to look again (go-control-plane's split between the cache
 * and the stream server).
 *
 * Per stream and type it keeps what Envoy's protocol needs: the names the
 * proxy subscribed to, the version and nonce last sent, the version last
 * ACKed and the last NACK. A NACKed version is never sent again, so a config
 * a proxy rejects cannot turn into a push loop; the proxy keeps its last good
 * config until a new version exists.
 */
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "../core/log.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import * as codec from "./proto/codec.ts";
import { shortHash } from "./generate/canonical.ts";
import { TYPE_URLS } from "./generate/generate.ts";
import type { ProxySnapshot, Resource, ResourceKind } from "./generate/model.ts";

export type { ProxyStatus };

/** Who is at the other end of a stream, as far as configuration goes. */
export interface ProxyPeer {
  node: string;
  identity: string;
  kind: "sidecar" | "proxyless";
}

/** Hooks for metrics; reasons and kinds are fixed sets so label values stay bounded. */
export interface AdsEvents {
  connected?: (kind: ProxyPeer["kind"], delta: 1 | -1) => void;
  sent?: (typeUrl: string) => void;
  nack?: (typeUrl: string) => void;
  acked?: (typeUrl: string, sentAtMs: number) => void;
}

/** Options of {@link AdsServer}. */
export interface AdsOptions {
  log: Logger;
  /** Resources for a proxy from the current push context. */
  snapshotFor: (peer: ProxyPeer) => ProxySnapshot;
  /** Who the caller is: from its mTLS certificate, or (loopback test listener only) its node. */
  identify: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>, node: NodeInfo) => ProxyPeer;
  events?: AdsEvents;
}

/** The `node` of a DiscoveryRequest, the parts we read. */
export interface NodeInfo {
  id?: string;
  cluster?: string;
  user_agent_name?: string;
  metadata?: Record<string, unknown>;
}

const KIND_BY_URL = new Map<string, ResourceKind>(
  Object.entries(TYPE_URLS).map(([k, url]) => [url, k as ResourceKind]),
);
/** Types whose empty subscription means "everything" (Envoy's wildcard). */
const WILDCARD_TYPES = new Set([TYPE_URLS.listeners, TYPE_URLS.clusters]);

interface TypeState {
  names: Set<string> | "*";
  sentVersion: string | null;
  sentNonce: string | null;
  sentAt: number;
  sentResources: Resource[];
  ackedVersion: string | null;
  nack: { version: string; message: string; at: string } | null;
}

interface Stream {
  id: string;
  peer: ProxyPeer | null;
  connectedAt: string;
  call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>;
  types: Map<string, TypeState>;
  snapshot: ProxySnapshot | null;
  nonce: number;
}

const DISCOVERY_REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const DISCOVERY_RESPONSE = codec.lookupType("envoy.service.discovery.v3.DiscoveryResponse");

/** The gRPC service definition of ADS, with raw bytes in and out. */
export const adsServiceDefinition = {
  streamAggregatedResources: {
    path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Uint8Array) => Buffer.from(b),
    requestDeserialize: (b: Buffer) => new Uint8Array(b),
    responseSerialize: (b: Uint8Array) => Buffer.from(b),
    responseDeserialize: (b: Buffer) => new Uint8Array(b),
    originalName: "StreamAggregatedResources",
  },
} as const;

/** The state-of-the-world ADS server. */
export class AdsServer {
  readonly #options: AdsOptions;
  readonly #streams = new Map<string, Stream>();
  /** Serialized Any values by `typeUrl|version`: one encoding per resource version, shared by all proxies. */
  #encoded = new Map<string, Uint8Array>();
  #nextId = 0;
  readonly #prefix: string;

  constructor(options: AdsOptions & { name?: string }) {
    this.#options = options;
    this.#prefix = options.name ?? "ads";
  }

  /** The handler object for `server.addService(adsServiceDefinition, …)`. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      streamAggregatedResources: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>) =>
        this.#open(call),
    };
  }

  #open(call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>): void {
    const stream: Stream = {
      id: `${this.#prefix}-${++this.#nextId}`,
      peer: null,
      connectedAt: new Date().toISOString(),
      call,
      types: new Map(),
      snapshot: null,
      nonce: 0,
    };
    this.#streams.set(stream.id, stream);
    const close = () => {
      if (!this.#streams.delete(stream.id)) return;
      if (stream.peer) this.#options.events?.connected?.(stream.peer.kind, -1);
    };
    call.on("data", (bytes: Uint8Array) => {
      try {
        this.#onRequest(stream, bytes);
      } catch (error) {
        this.#options.log.warn("ADS request refused", { stream: stream.id, error });
        call.destroy(error as Error);
        close();
      }
    });
    call.on("end", () => {
      call.end();
      close();
    });
    call.on("error", close);
    call.on("cancelled", close);
  }

  #onRequest(stream: Stream, bytes: Uint8Array): void {
    const request = codec.decodeStrict(DISCOVERY_REQUEST, bytes) as {
      type_url?: string;
      resource_names?: string[];
      version_info?: string;
      response_nonce?: string;
      error_detail?: { message?: string };
      node?: NodeInfo;
    };
    if (!stream.peer) {
      stream.peer = this.#options.identify(stream.call, request.node ?? {});
      stream.snapshot = this.#options.snapshotFor(stream.peer);
      this.#options.events?.connected?.(stream.peer.kind, 1);
      this.#options.log.info("Proxy connected", { stream: stream.id, ...stream.peer });
    }
    const typeUrl = request.type_url ?? "";
    if (!KIND_BY_URL.has(typeUrl)) {
      this.#options.log.debug("Unknown xDS type requested", { stream: stream.id, typeUrl });
      return;
    }
    let state = stream.types.get(typeUrl);
    if (!state) {
      state = {
        names: "*",
        sentVersion: null,
        sentNonce: null,
        sentAt: 0,
        sentResources: [],
        ackedVersion: null,
        nack: null,
      };
      stream.types.set(typeUrl, state);
    }
    const nonce = request.response_nonce ?? "";
    // A reply to an older response than the last one sent is stale: the proxy will answer the newest.
    if (nonce !== "" && nonce !== state.sentNonce) return;
    if (nonce !== "") {
      if (request.error_detail) {
        state.nack = {
          version: state.sentVersion ?? "",
          message: request.error_detail.message ?? "",
          at: new Date().toISOString(),
        };
        this.#options.events?.nack?.(typeUrl);
        this.#options.log.warn("Proxy rejected configuration (NACK)", {
          stream: stream.id,
          node: stream.peer.node,
          typeUrl,
          version: state.nack.version,
          error: state.nack.message,
        });
      } else if (state.ackedVersion !== request.version_info) {
        state.ackedVersion = request.version_info ?? null;
        this.#options.events?.acked?.(typeUrl, state.sentAt);
      }
    }
    const names = request.resource_names ?? [];
    const wanted = names.length === 0 && WILDCARD_TYPES.has(typeUrl) ? "*" : new Set(names);
    const changed = !sameNames(state.names, wanted) || state.sentVersion === null;
    state.names = wanted;
    if (changed) this.#send(stream, typeUrl, state, true);
  }

  /** Sends a type's current resources when they differ from what the proxy has (or `force`). */
  #send(stream: Stream, typeUrl: string, state: TypeState, force: boolean): void {
    const kind = KIND_BY_URL.get(typeUrl)!;
    const all = stream.snapshot?.[kind] ?? [];
    const resources = state.names === "*"
      ? all
      : all.filter((r) => (state.names as Set<string>).has(r.name));
    const version = shortHash(resources.map((r) => `${r.name}:${r.version}`).join(","));
    if (!force && version === state.sentVersion) return;
    if (state.nack && version === state.nack.version) return;
    const nonce = String(++stream.nonce);
    const response = DISCOVERY_RESPONSE.encode({
      version_info: version,
      type_url: typeUrl,
      nonce,
      resources: resources.map((r) => ({ type_url: typeUrl, value: this.#encode(r) })),
    }).finish();
    state.sentVersion = version;
    state.sentNonce = nonce;
    state.sentAt = Date.now();
    state.sentResources = resources;
    stream.call.write(response);
    this.#options.events?.sent?.(typeUrl);
  }

  #encode(resource: Resource): Uint8Array {
    const key = `${resource.typeUrl}|${resource.version}`;
    let bytes = this.#encoded.get(key);
    if (!bytes) {
      const { encodeStrict } = codec;
      bytes = encodeStrict(
        resource.typeUrl.slice(resource.typeUrl.indexOf("/") + 1),
        resource.body,
      );
      this.#encoded.set(key, bytes);
    }
    return bytes;
  }

  /**
   * Recomputes every connected proxy's snapshot and sends what changed. Runs
   * in slices that yield to the event loop, so a mass reconnect or a large
   * push never starves request handling.
   */
  async push(): Promise<void> {
    const inUse = new Map<string, Uint8Array>();
    let done = 0;
    for (const stream of [...this.#streams.values()]) {
      if (!stream.peer) continue;
      stream.snapshot = this.#options.snapshotFor(stream.peer);
      for (const [typeUrl, state] of stream.types) {
        this.#send(stream, typeUrl, state, false);
        for (const r of state.sentResources) {
          const key = `${r.typeUrl}|${r.version}`;
          const bytes = this.#encoded.get(key);
          if (bytes) inUse.set(key, bytes);
        }
      }
      if (++done % 100 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    // Drop encodings no proxy holds any more, so memory follows the mesh, not its history.
    this.#encoded = inUse;
  }

  /** Every connected proxy with its per-type state. */
  status(): ProxyStatus[] {
    return [...this.#streams.values()].filter((s) => s.peer).map((s) => ({
      id: s.id,
      ...s.peer!,
      connectedAt: s.connectedAt,
      types: [...s.types].map(([typeUrl, t]) => ({
        typeUrl,
        subscribed: t.names === "*" ? "*" : [...t.names].sort(),
        sentVersion: t.sentVersion,
        ackedVersion: t.ackedVersion,
        lastNack: t.nack,
        inSync: t.sentVersion !== null && t.sentVersion === t.ackedVersion,
      })),
    }));
  }

  /** What was last sent to proxy `id`, per type, as JSON (`config_dump`). */
  configDump(id: string): Record<string, unknown[]> | null {
    const stream = this.#streams.get(id);
    if (!stream) return null;
    return Object.fromEntries(
      [...stream.types].map(([typeUrl, t]) => [typeUrl, t.sentResources.map((r) => r.body)]),
    );
  }

  /** Ends every stream of `node` (its certificate was revoked). */
  closeNode(node: string): number {
    let closed = 0;
    for (const stream of this.#streams.values()) {
      if (stream.peer?.node !== node) continue;
      stream.call.destroy(new Error(`Node "${node}" has been revoked`));
      closed++;
    }
    return closed;
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    for (const stream of this.#streams.values()) stream.call.end();
  }
}

function sameNames(a: Set<string> | "*", b: Set<string> | "*"): boolean {
  if (a === "*" || b === "*") return a === b;
  return a.size === b.size && [...a].every((n) => b.has(n));
}
