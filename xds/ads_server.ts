/**
 * The ADS stream server: state-of-the-world `StreamAggregatedResources` and
 * incremental `DeltaAggregatedResources`, one gRPC bidirectional stream per
 * proxy. It knows nothing of the registry: it asks `snapshotFor` for a
 * proxy's resources and is told by the push pipeline when to look again
 * (go-control-plane's split between the cache and the stream server). Both
 * variants share the snapshots, the encoding cache, the push path, `status()`
 * and `configDump()`.
 *
 * State of the world: per stream and type it keeps the names the proxy
 * subscribed to, the version and nonce last sent, the version last ACKed and
 * the last NACK. A NACKed version is never sent again, so a config a proxy
 * rejects cannot turn into a push loop; the proxy keeps its last good config
 * until a new version exists.
 *
 * Delta: per stream and type it keeps the subscription (names and/or
 * wildcard), the version of each resource the proxy has (from
 * `initial_resource_versions` and ACKed responses), the responses awaiting an
 * answer, and the resource versions the proxy rejected. A response carries
 * only resources whose version differs from what the proxy has (or will have
 * once it accepts what is in flight), and `removed_resources` for tracked
 * names that left the snapshot. A rejected resource version (or removal) is
 * not sent again; the proxy keeps what it last ACKed. Its `sentVersion` and
 * `ackedVersion` in `status()` are hashes of the whole per-type view (sent as
 * `system_version_info`), so the two variants read the same.
 */
import type * as grpc from "@grpc/grpc-js";
import { status as grpcStatus } from "@grpc/grpc-js";
import { grpcCodeOf } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import * as codec from "./proto/codec.ts";
import { compareStrings, shortHash } from "./generate/canonical.ts";
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
  /** A proxy ACKed; `since` is when the change behind what it ACKed happened (or it was asked). */
  acked?: (typeUrl: string, since: number) => void;
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
  /** `*` or the sorted names: the key of this subscription's selection in a snapshot. */
  namesKey: string;
  sentVersion: string | null;
  sentNonce: string | null;
  sentAt: number;
  sentResources: Resource[];
  ackedVersion: string | null;
  nack: { version: string; message: string; at: string } | null;
}

/** One delta response not answered yet: what it changed, by name (`null`: removed). */
interface DeltaSent {
  nonce: string;
  version: string;
  sentAt: number;
  changes: Map<string, Resource | null>;
}

/** A resource version a delta proxy has, with its body when we know it. */
interface Held {
  version: string;
  resource: Resource | null;
}

interface DeltaTypeState {
  /** Subscribed to everything (`*`, or an empty first request for LDS/CDS). */
  wildcard: boolean;
  /** Names subscribed explicitly (besides a wildcard). */
  names: Set<string>;
  /** Each tracked resource the proxy has: `initial_resource_versions`, then ACKs. */
  have: Map<string, Held>;
  /** Responses sent and not answered yet, oldest first. */
  inflight: DeltaSent[];
  /** Versions the proxy rejected, by name (`null`: a removal); never sent again. */
  rejected: Map<string, string | null>;
  /** The proxy's view once it accepts what is in flight, with bodies (the config dump). */
  view: Map<string, Resource>;
  sentVersion: string | null;
  ackedVersion: string | null;
  nack: { version: string; message: string; at: string } | null;
}

interface Stream {
  id: string;
  variant: "sotw" | "delta";
  peer: ProxyPeer | null;
  connectedAt: string;
  call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>;
  /** State-of-the-world streams: per-type state. */
  types: Map<string, TypeState>;
  /** Delta streams: per-type state. */
  delta: Map<string, DeltaTypeState>;
  snapshot: ProxySnapshot | null;
  nonce: number;
}

const DISCOVERY_REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const DISCOVERY_RESPONSE = codec.lookupType("envoy.service.discovery.v3.DiscoveryResponse");
const DELTA_REQUEST = "envoy.service.discovery.v3.DeltaDiscoveryRequest";
const DELTA_RESPONSE = codec.lookupType("envoy.service.discovery.v3.DeltaDiscoveryResponse");

/** A DeltaDiscoveryRequest, the parts we read. */
interface DeltaRequest {
  node?: NodeInfo;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { message?: string };
}

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
  deltaAggregatedResources: {
    path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Uint8Array) => Buffer.from(b),
    requestDeserialize: (b: Buffer) => new Uint8Array(b),
    responseSerialize: (b: Uint8Array) => Buffer.from(b),
    responseDeserialize: (b: Buffer) => new Uint8Array(b),
    originalName: "DeltaAggregatedResources",
  },
} as const;

/** The ADS server, state-of-the-world and delta. */
export class AdsServer {
  readonly #options: AdsOptions;
  readonly #streams = new Map<string, Stream>();
  /** When the change behind the running push happened; `null` outside pushes. */
  #causedAt: number | null = null;
  /** Selections per snapshot (see `#select`); dropped with the snapshot. */
  readonly #selections = new WeakMap<
    ProxySnapshot,
    Map<string, { resources: Resource[]; version: string }>
  >();
  /** Each snapshot's resources by kind and name, for selections by name (see `#select`). */
  readonly #byName = new WeakMap<ProxySnapshot, Map<ResourceKind, Map<string, Resource>>>();
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
        this.#open(call, "sotw"),
      deltaAggregatedResources: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>) =>
        this.#open(call, "delta"),
    };
  }

  #open(call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>, variant: Stream["variant"]): void {
    const stream: Stream = {
      // The status type has no field for the variant: delta streams say so in their id.
      id: variant === "delta"
        ? `${this.#prefix}-delta-${++this.#nextId}`
        : `${this.#prefix}-${++this.#nextId}`,
      variant,
      peer: null,
      connectedAt: new Date().toISOString(),
      call,
      types: new Map(),
      delta: new Map(),
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
        if (variant === "delta") this.#onDeltaRequest(stream, bytes);
        else this.#onRequest(stream, bytes);
      } catch (error) {
        this.#options.log.warn("ADS request refused", { stream: stream.id, error });
        endWith(call, refusalCode(error), error instanceof Error ? error.message : String(error));
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
    const peer = this.#identify(stream, request.node);
    const typeUrl = request.type_url ?? "";
    if (!KIND_BY_URL.has(typeUrl)) {
      this.#options.log.debug("Unknown xDS type requested", { stream: stream.id, typeUrl });
      return;
    }
    let state = stream.types.get(typeUrl);
    if (!state) {
      state = {
        names: "*",
        namesKey: "*",
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
    // A reply to an older response than the last one sent is stale: the proxy will answer the
    // newest. A nonce on a type nothing was sent for on this stream (a client that kept it across
    // a reconnect) answers nothing here: the request still counts as a subscription.
    if (nonce !== "" && state.sentNonce !== null && nonce !== state.sentNonce) return;
    if (nonce !== "" && nonce === state.sentNonce) {
      if (request.error_detail) {
        state.nack = {
          version: state.sentVersion ?? "",
          message: request.error_detail.message ?? "",
          at: new Date().toISOString(),
        };
        this.#options.events?.nack?.(typeUrl);
        this.#options.log.warn("Proxy rejected configuration (NACK)", {
          stream: stream.id,
          node: peer.node,
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
    state.namesKey = wanted === "*" ? "*" : [...wanted].sort().join("\n");
    if (changed) this.#send(stream, typeUrl, state, true);
  }

  /** Sends a type's current resources when they differ from what the proxy has (or `force`). */
  #send(stream: Stream, typeUrl: string, state: TypeState, force: boolean): void {
    const { resources, version } = this.#select(stream.snapshot, typeUrl, state);
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
    state.sentAt = this.#causedAt ?? Date.now();
    state.sentResources = resources;
    stream.call.write(response);
    this.#options.events?.sent?.(typeUrl);
  }

  /**
   * The resources of one subscription in a snapshot, with their combined
   * version. Proxies that share a snapshot and subscribe to the same names
   * (most proxyless clients of a service) share one selection per push, so a
   * push costs per distinct subscription, not per stream.
   */
  #select(
    snapshot: ProxySnapshot | null,
    typeUrl: string,
    state: TypeState,
  ): { resources: Resource[]; version: string } {
    const kind = KIND_BY_URL.get(typeUrl)!;
    if (!snapshot) return { resources: [], version: shortHash("") };
    let memo = this.#selections.get(snapshot);
    if (!memo) this.#selections.set(snapshot, memo = new Map());
    const key = `${kind}|${state.namesKey}`;
    let selection = memo.get(key);
    if (!selection) {
      const resources = state.names === "*"
        ? snapshot[kind]
        : this.#named(snapshot, kind, state.names);
      const version = shortHash(resources.map((r) => `${r.name}:${r.version}`).join(","));
      memo.set(key, selection = { resources, version });
    }
    return selection;
  }

  /**
   * The resources of `kind` named in `names`, in the snapshot's (name) order.
   * A lookup per name, not a scan of the list per subscription: with a
   * thousand services, scanning cost a push more than generating it.
   */
  #named(snapshot: ProxySnapshot, kind: ResourceKind, names: ReadonlySet<string>): Resource[] {
    let kinds = this.#byName.get(snapshot);
    if (!kinds) this.#byName.set(snapshot, kinds = new Map());
    let index = kinds.get(kind);
    if (!index) kinds.set(kind, index = new Map(snapshot[kind].map((r) => [r.name, r])));
    const out: Resource[] = [];
    for (const name of [...names].sort(compareStrings)) {
      const resource = index.get(name);
      if (resource) out.push(resource);
    }
    return out;
  }

  /** Identifies the proxy on its stream's first request and takes its first snapshot. */
  #identify(stream: Stream, node: NodeInfo | undefined): ProxyPeer {
    if (!stream.peer) {
      const peer = this.#options.identify(stream.call, node ?? {});
      stream.peer = peer;
      stream.snapshot = this.#options.snapshotFor(peer);
      this.#options.events?.connected?.(peer.kind, 1);
      this.#options.log.info("Proxy connected", {
        stream: stream.id,
        variant: stream.variant,
        ...peer,
      });
    }
    return stream.peer;
  }

  #onDeltaRequest(stream: Stream, bytes: Uint8Array): void {
    const request = codec.decodeStrict(DELTA_REQUEST, bytes) as DeltaRequest;
    const peer = this.#identify(stream, request.node);
    const typeUrl = request.type_url ?? "";
    if (!KIND_BY_URL.has(typeUrl)) {
      this.#options.log.debug("Unknown xDS type requested", { stream: stream.id, typeUrl });
      return;
    }
    const subscribe = request.resource_names_subscribe ?? [];
    const unsubscribe = request.resource_names_unsubscribe ?? [];
    let state = stream.delta.get(typeUrl);
    const first = !state;
    if (!state) {
      state = {
        wildcard: subscribe.length === 0 && WILDCARD_TYPES.has(typeUrl),
        names: new Set(),
        have: new Map(),
        inflight: [],
        rejected: new Map(),
        view: new Map(),
        sentVersion: null,
        ackedVersion: null,
        nack: null,
      };
      stream.delta.set(typeUrl, state);
    }

    // The answer to a response: every response up to it is answered (the proxy answers in
    // order; one it skipped counts as accepted). A nonce not in flight is stale: ignored.
    const nonce = request.response_nonce ?? "";
    const at = nonce === "" ? -1 : state.inflight.findIndex((s) => s.nonce === nonce);
    if (at >= 0) {
      const answered = state.inflight.splice(0, at + 1);
      const last = answered.pop()!;
      for (const sent of answered) this.#deltaAccept(state, sent);
      if (request.error_detail) {
        for (const [name, r] of last.changes) {
          if (tracks(state, name)) state.rejected.set(name, r ? r.version : null);
        }
        state.nack = {
          version: last.version,
          message: request.error_detail.message ?? "",
          at: new Date().toISOString(),
        };
        this.#options.events?.nack?.(typeUrl);
        this.#options.log.warn("Proxy rejected configuration (NACK)", {
          stream: stream.id,
          node: peer.node,
          typeUrl,
          version: last.version,
          resources: [...last.changes.keys()],
          error: state.nack.message,
        });
      } else {
        this.#deltaAccept(state, last);
        this.#options.events?.acked?.(typeUrl, last.sentAt);
      }
    } else if (nonce !== "") {
      this.#options.log.debug("Stale nonce ignored", { stream: stream.id, typeUrl, nonce });
    }

    // Subscription changes apply whatever the nonce: the proxy never repeats them.
    for (const name of subscribe) {
      if (name === "*") state.wildcard = true;
      else state.names.add(name);
    }
    for (const name of unsubscribe) {
      if (name === "*") state.wildcard = false;
      else state.names.delete(name);
    }
    for (const tracked of [state.have, state.rejected, state.view]) {
      for (const name of tracked.keys()) if (!tracks(state, name)) tracked.delete(name);
    }
    if (first) {
      for (const [name, version] of Object.entries(request.initial_resource_versions ?? {})) {
        if (tracks(state, name)) state.have.set(name, { version, resource: null });
      }
    }
    // A wildcard's first request is answered even when there is nothing to send, so the
    // proxy's initialization does not wait for a timeout.
    this.#sendDelta(stream, typeUrl, state, first && state.wildcard);
  }

  /** Records an accepted delta response as what the proxy has. */
  #deltaAccept(state: DeltaTypeState, sent: DeltaSent): void {
    for (const [name, r] of sent.changes) {
      if (!tracks(state, name)) continue;
      if (r) state.have.set(name, { version: r.version, resource: r });
      else state.have.delete(name);
      state.rejected.delete(name);
    }
    state.ackedVersion = sent.version;
  }

  /**
   * Sends a delta type's changes: tracked resources whose version differs from what the proxy
   * has or will have (except versions it rejected), and removals of tracked names the snapshot
   * no longer holds. Nothing is sent when nothing changed, unless `respondEmpty`.
   */
  #sendDelta(stream: Stream, typeUrl: string, state: DeltaTypeState, respondEmpty: boolean): void {
    const kind = KIND_BY_URL.get(typeUrl)!;
    const current = new Map<string, Resource>();
    for (const r of stream.snapshot?.[kind] ?? []) {
      if (tracks(state, r.name)) current.set(r.name, r);
    }
    for (const [name, held] of state.have) {
      if (!held.resource && current.get(name)?.version === held.version) {
        held.resource = current.get(name)!;
      }
    }
    // What the proxy will have once it accepts every response in flight.
    const expected = new Map(state.have);
    for (const sent of state.inflight) {
      for (const [name, r] of sent.changes) {
        if (!tracks(state, name)) continue;
        if (r) expected.set(name, { version: r.version, resource: r });
        else expected.delete(name);
      }
    }
    const changes = new Map<string, Resource | null>();
    for (const r of current.values()) {
      if (expected.get(r.name)?.version === r.version) continue;
      if (state.rejected.get(r.name) === r.version) continue;
      changes.set(r.name, r);
    }
    for (const name of [...expected.keys()].sort(compareStrings)) {
      if (current.has(name)) continue;
      if (state.rejected.has(name) && state.rejected.get(name) === null) continue;
      changes.set(name, null);
    }
    for (const [name, r] of changes) {
      if (r) expected.set(name, { version: r.version, resource: r });
      else expected.delete(name);
    }
    const names = [...expected.keys()].sort(compareStrings);
    state.view = new Map();
    for (const name of names) {
      const resource = expected.get(name)!.resource;
      if (resource) state.view.set(name, resource);
    }
    const version = shortHash(names.map((n) => `${n}:${expected.get(n)!.version}`).join(","));
    if (changes.size === 0 && !respondEmpty) {
      // Nothing ever sent and nothing to send: the proxy already has everything (a reconnect).
      if (state.sentVersion === null && state.inflight.length === 0) {
        state.sentVersion = version;
        state.ackedVersion = version;
      }
      return;
    }
    const nonce = String(++stream.nonce);
    const resources = [...changes.values()].filter((r): r is Resource => r !== null);
    const response = DELTA_RESPONSE.encode({
      system_version_info: version,
      type_url: typeUrl,
      nonce,
      resources: resources.map((r) => ({
        name: r.name,
        version: r.version,
        resource: { type_url: typeUrl, value: this.#encode(r) },
      })),
      removed_resources: [...changes].filter(([, r]) => r === null).map(([name]) => name),
    }).finish();
    state.sentVersion = version;
    state.inflight.push({ nonce, version, sentAt: this.#causedAt ?? Date.now(), changes });
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
  async push(causedAt?: number): Promise<void> {
    // ACKs of what this push sends are timed from the change that caused it (convergence).
    this.#causedAt = causedAt ?? null;
    try {
      await this.#pushAll();
    } finally {
      this.#causedAt = null;
    }
  }

  async #pushAll(): Promise<void> {
    const inUse = new Map<string, Uint8Array>();
    // What streams hold, each distinct list once: shared selections are the common case.
    const held = new Set<Resource[] | Map<string, Resource>>();
    let done = 0;
    for (const stream of [...this.#streams.values()]) {
      if (!stream.peer) continue;
      stream.snapshot = this.#options.snapshotFor(stream.peer);
      for (const [typeUrl, state] of stream.types) {
        this.#send(stream, typeUrl, state, false);
        held.add(state.sentResources);
      }
      for (const [typeUrl, state] of stream.delta) {
        this.#sendDelta(stream, typeUrl, state, false);
        held.add(state.view);
      }
      if (++done % 100 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    for (const resources of held) {
      for (const r of resources.values()) {
        const key = `${r.typeUrl}|${r.version}`;
        const bytes = this.#encoded.get(key);
        if (bytes) inUse.set(key, bytes);
      }
    }
    // Drop encodings no proxy holds any more, so memory follows the mesh, not its history.
    this.#encoded = inUse;
  }

  /** Every connected proxy with its per-type state (delta streams have `-delta-` in their id). */
  status(): ProxyStatus[] {
    return [...this.#streams.values()].filter((s) => s.peer).map((s) => ({
      id: s.id,
      ...s.peer!,
      connectedAt: s.connectedAt,
      types: [
        ...[...s.types].map(([typeUrl, t]) => ({
          typeUrl,
          subscribed: t.names === "*" ? "*" as const : [...t.names].sort(),
          sentVersion: t.sentVersion,
          ackedVersion: t.ackedVersion,
          lastNack: t.nack,
          inSync: t.sentVersion !== null && t.sentVersion === t.ackedVersion,
        })),
        ...[...s.delta].map(([typeUrl, t]) => ({
          typeUrl,
          subscribed: t.wildcard ? "*" as const : [...t.names].sort(),
          sentVersion: t.sentVersion,
          ackedVersion: t.ackedVersion,
          lastNack: t.nack,
          inSync: t.sentVersion !== null && t.sentVersion === t.ackedVersion,
        })),
      ],
    }));
  }

  /**
   * Proxy `id`'s configuration per type, as JSON (`config_dump`): what was last sent
   * (state of the world), or what the proxy holds once it accepts what is in flight (delta).
   */
  configDump(id: string): Record<string, unknown[]> | null {
    const stream = this.#streams.get(id);
    if (!stream) return null;
    return Object.fromEntries([
      ...[...stream.types].map(([typeUrl, t]) => [typeUrl, t.sentResources.map((r) => r.body)]),
      ...[...stream.delta].map((
        [typeUrl, t],
      ) => [typeUrl, [...t.view.values()].map((r) => r.body)]),
    ]);
  }

  /** Ends every stream of `node` (its certificate was revoked). */
  closeNode(node: string): number {
    let closed = 0;
    for (const stream of this.#streams.values()) {
      if (stream.peer?.node !== node) continue;
      endWith(stream.call, grpcStatus.UNAUTHENTICATED, `Node "${node}" has been revoked`);
      closed++;
    }
    return closed;
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    for (const stream of this.#streams.values()) stream.call.end();
  }
}

/**
 * Ends a stream with an error status. grpc-js sends a status only when the stream ends:
 * `destroy()` would drop the call here and leave the client's stream open.
 */
function endWith(
  call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>,
  code: grpcStatus,
  details: string,
): void {
  call.emit("error", { code, details });
}

/** The status of a refused stream, from the one error table (`core/errors.ts`). */
function refusalCode(error: unknown): grpcStatus {
  return grpcStatus[grpcCodeOf(error)];
}

/** True when a delta subscription covers `name`. */
function tracks(state: DeltaTypeState, name: string): boolean {
  return state.wildcard || state.names.has(name);
}

function sameNames(a: Set<string> | "*", b: Set<string> | "*"): boolean {
  if (a === "*" || b === "*") return a === b;
  return a.size === b.size && [...a].every((n) => b.has(n));
}
