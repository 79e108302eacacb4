/**
 * What the state-of-the-world and delta ADS servers share
 * (go-control-plane's `pkg/server/stream`): the streams and who is at the
 * other end, the snapshot each stream serves, the push that visits only
 * the streams a change can concern, the status and config dump, and the
 * encoding of resources, done once per resource and shared by every
 * stream that is sent it.
 *
 * A variant (`sotw_server.ts`, `delta_server.ts`) decodes its requests,
 * keeps its per-type state, and sends; the core tells it when its stream's
 * snapshot changed, with the names that changed, so a stream that
 * subscribes to none of them costs a set lookup per type.
 */
import type * as grpc from "@grpc/grpc-js";
import { status as grpcStatus } from "@grpc/grpc-js";
import { grpcCodeOf } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import { TYPE_URLS } from "./generate/generate.ts";
import { type ProxySnapshot, type Resource, type ResourceKind } from "./generate/model.ts";
import * as codec from "./proto/codec.ts";
import { ResourceEncoder } from "./resource_encoder.ts";
import { chainedDiff, diffSnapshots, isIndexed, type SnapshotDiff } from "./snapshot_diff.ts";

/** Who is at the other end of a stream, as far as configuration goes. */
export interface ProxyPeer {
  node: string;
  identity: string;
  kind: "sidecar" | "proxyless";
  /** A proxyless client whose bootstrap has the mesh's certificate provider. Default: false. */
  mtls?: boolean | undefined;
}

/** Hooks for metrics; reasons and kinds are fixed sets so label values stay bounded. */
export interface AdsEvents {
  connected?: (kind: ProxyPeer["kind"], delta: 1 | -1) => void;
  sent?: (typeUrl: string) => void;
  nack?: (typeUrl: string) => void;
  /** A proxy ACKed; `since` is when the change behind what it ACKed happened (or it was asked). */
  acked?: (typeUrl: string, since: number) => void;
}

/** The `node` of a DiscoveryRequest, the parts we read. */
export interface NodeInfo {
  id?: string;
  cluster?: string;
  user_agent_name?: string;
  metadata?: Record<string, unknown>;
}

/** Options of the ADS server, shared by both variants. */
export interface AdsOptions {
  log: Logger;
  /** Resources for a proxy from the current push context. */
  snapshotFor: (peer: ProxyPeer) => ProxySnapshot;
  /**
   * The key under which `snapshotFor` caches a peer's snapshot: a push
   * names the keys whose snapshots changed. Default: one key for all.
   */
  snapshotKey?: (peer: ProxyPeer) => string;
  /** Who the caller is: from its mTLS certificate, or (loopback test listener only) its node. */
  identify: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>, node: NodeInfo) => ProxyPeer;
  events?: AdsEvents;
}

/** Which streams a push must look at: those of these snapshot keys, and those of these nodes. */
export interface PushScope {
  keys: ReadonlySet<string>;
  nodes: ReadonlySet<string>;
}

/** The resource kind of each type URL we serve. */
export const KIND_BY_URL: ReadonlyMap<string, ResourceKind> = new Map(
  Object.entries(TYPE_URLS).map(([k, url]) => [url, k as ResourceKind]),
);
/** Types whose empty subscription means "everything" (Envoy's wildcard). */
export const WILDCARD_TYPES: ReadonlySet<string> = new Set([
  TYPE_URLS.listeners,
  TYPE_URLS.clusters,
]);

/** One ADS stream; `S` is its variant's per-type state. */
export interface Stream<S> {
  id: string;
  /** Order of connection, across both variants. */
  seq: number;
  peer: ProxyPeer | null;
  /** The peer's snapshot key when it was last looked at. */
  key: string;
  connectedAt: string;
  call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>;
  types: Map<string, S>;
  snapshot: ProxySnapshot | null;
  nonce: number;
  /** Requests of a stream waiting to be admitted (see `StreamCore`); `null` once admitted. */
  waiting: Uint8Array[] | null;
  /** Forgets the stream (it ended or was refused). */
  close?: () => void;
  /** What it subscribes to, per kind, as the core indexes it (see `StreamIo.subscribed`). */
  subscriptions: Map<ResourceKind, { names: Set<string>; wildcard: boolean }>;
}

/**
 * New streams admitted per turn of the event loop. A server restart brings
 * every proxy back at once; answering all their first requests in one turn
 * queued every response in memory before any could be written.
 */
const ADMIT_PER_TURN = 64;

/** What the core does for a variant's streams. */
export interface StreamIo<S> {
  /** Identifies the proxy on its stream's first request and takes its first snapshot. */
  identify(stream: Stream<S>, node: NodeInfo | undefined): ProxyPeer;
  /** A new nonce of the stream. */
  nonce(stream: Stream<S>): string;
  /** Writes a response. */
  write(stream: Stream<S>, typeUrl: string, bytes: Uint8Array): void;
  /**
   * Records what a stream now subscribes to of a type, so that a push finds
   * the streams a changed resource concerns without looking at the others.
   */
  subscribed(
    stream: Stream<S>,
    typeUrl: string,
    names: Iterable<string>,
    wildcard: boolean,
  ): void;
}

/** What a variant does with its streams. */
export interface Variant<S> {
  /** Handles one request; throws to end the stream with the error's status. */
  request(stream: Stream<S>, bytes: Uint8Array, io: StreamIo<S>): void;
  /**
   * The stream's snapshot changed: send what its subscriptions see of
   * `diff` (`null`: anything may have changed).
   */
  refresh(stream: Stream<S>, diff: SnapshotDiff | null, io: StreamIo<S>): void;
  /** Per-type status of a stream. */
  status(stream: Stream<S>): ProxyStatus["types"];
  /** Per-type configuration of a stream, as JSON. */
  dump(stream: Stream<S>): [string, unknown[]][];
}

/** What a variant is built with: the server's shared state, its log and its metric hooks. */
export interface VariantContext {
  shared: SharedState;
  log: Logger;
  events: AdsEvents;
}

/** Counters and caches both variants of one server share. */
export class SharedState {
  #nextId = 0;
  /** When the change behind the running push happened; `null` outside pushes. */
  causedAt: number | null = null;
  readonly encoder = new ResourceEncoder();
  readonly #indexes = new WeakMap<ProxySnapshot, Map<ResourceKind, Map<string, Resource>>>();
  readonly #diffs = new WeakMap<ProxySnapshot, WeakMap<ProxySnapshot, SnapshotDiff>>();

  nextSeq(): number {
    return ++this.#nextId;
  }

  /** When what is being sent was caused: the push's change, or now. */
  sentAt(): number {
    return this.causedAt ?? Date.now();
  }

  /**
   * A snapshot's resources of `kind` by name, built once per snapshot: a
   * lookup per subscribed name, not a scan of the list per stream.
   */
  index(snapshot: ProxySnapshot, kind: ResourceKind): ReadonlyMap<string, Resource> {
    if (isIndexed(snapshot)) return snapshot.byName.get(kind)!;
    let kinds = this.#indexes.get(snapshot);
    if (!kinds) this.#indexes.set(snapshot, kinds = new Map());
    let index = kinds.get(kind);
    if (!index) kinds.set(kind, index = new Map(snapshot[kind].map((r) => [r.name, r])));
    return index;
  }

  /** What changed from `before` to `after`, computed once per pair. */
  diff(before: ProxySnapshot, after: ProxySnapshot): SnapshotDiff {
    let byAfter = this.#diffs.get(before);
    if (!byAfter) this.#diffs.set(before, byAfter = new WeakMap());
    let diff = byAfter.get(after);
    if (!diff) {
      byAfter.set(after, diff = chainedDiff(before, after) ?? diffSnapshots(before, after));
    }
    return diff;
  }
}

/**
 * The streams of one variant: open, identify, index by snapshot key and
 * node, push, status, close.
 */
export class StreamCore<S> implements StreamIo<S> {
  readonly #options: AdsOptions;
  readonly #shared: SharedState;
  readonly #variant: Variant<S>;
  readonly #idPrefix: string;
  readonly #name: "sotw" | "delta";
  readonly #streams = new Map<string, Stream<S>>();
  readonly #byKey = new Map<string, Set<Stream<S>>>();
  readonly #byNode = new Map<string, Set<Stream<S>>>();
  /** Streams by subscribed resource (`subscriberKey()`), and wildcard subscribers by kind. */
  readonly #subscribers = new Map<string, Set<Stream<S>>>();
  readonly #wildcards = new Map<string, Set<Stream<S>>>();
  /** Streams whose first request waits for admission, oldest first. */
  readonly #admissions: Stream<S>[] = [];
  #admitting = false;

  constructor(
    options: AdsOptions,
    shared: SharedState,
    variant: { name: "sotw" | "delta"; handler: Variant<S>; idPrefix: string },
  ) {
    this.#options = options;
    this.#shared = shared;
    this.#variant = variant.handler;
    this.#name = variant.name;
    this.#idPrefix = variant.idPrefix;
  }

  /** Serves one gRPC stream. */
  open(call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>): void {
    const seq = this.#shared.nextSeq();
    const stream: Stream<S> = {
      id: `${this.#idPrefix}${seq}`,
      seq,
      peer: null,
      key: "",
      connectedAt: new Date().toISOString(),
      call,
      types: new Map(),
      snapshot: null,
      nonce: 0,
      waiting: [],
      subscriptions: new Map(),
    };
    this.#streams.set(stream.id, stream);
    const close = () => {
      if (!this.#streams.delete(stream.id)) return;
      for (const kind of [...stream.subscriptions.keys()]) this.#unsubscribe(stream, kind);
      if (stream.peer) {
        this.#unindex(stream);
        this.#options.events?.connected?.(stream.peer.kind, -1);
      }
    };
    call.on("data", (bytes: Uint8Array) => {
      if (stream.waiting) {
        stream.waiting.push(bytes);
        if (stream.waiting.length === 1) this.#admit(stream);
      } else this.#handle(stream, bytes, close);
    });
    stream.close = close;
    call.on("end", () => {
      call.end();
      close();
    });
    call.on("error", close);
    call.on("cancelled", close);
  }

  #handle(stream: Stream<S>, bytes: Uint8Array, close: () => void): void {
    if (!this.#streams.has(stream.id)) return;
    try {
      this.#variant.request(stream, bytes, this);
    } catch (error) {
      this.#options.log.warn("ADS request refused", { stream: stream.id, error });
      endWith(
        stream.call,
        refusalCode(error),
        error instanceof Error ? error.message : String(error),
      );
      close();
    }
  }

  /**
   * Queues a new stream's first request; {@link ADMIT_PER_TURN} streams are
   * answered per turn of the event loop, so responses are written out
   * between turns instead of piling up.
   */
  #admit(stream: Stream<S>): void {
    this.#admissions.push(stream);
    if (this.#admitting) return;
    this.#admitting = true;
    const turn = () => {
      for (const next of this.#admissions.splice(0, ADMIT_PER_TURN)) {
        const requests = next.waiting ?? [];
        next.waiting = null;
        for (const bytes of requests) this.#handle(next, bytes, next.close!);
      }
      if (this.#admissions.length > 0) setTimeout(turn, 0);
      else this.#admitting = false;
    };
    setTimeout(turn, 0);
  }

  /** Identifies the proxy on its stream's first request and takes its first snapshot. */
  identify(stream: Stream<S>, node: NodeInfo | undefined): ProxyPeer {
    if (!stream.peer) {
      const peer = this.#options.identify(stream.call, node ?? {});
      stream.peer = peer;
      stream.snapshot = this.#options.snapshotFor(peer);
      stream.key = this.#keyOf(peer);
      this.#index(stream);
      this.#options.events?.connected?.(peer.kind, 1);
      this.#options.log.info("Proxy connected", {
        stream: stream.id,
        variant: this.#name,
        ...peer,
      });
    }
    return stream.peer;
  }

  /** A new nonce of the stream. */
  nonce(stream: Stream<S>): string {
    return String(++stream.nonce);
  }

  subscribed(
    stream: Stream<S>,
    typeUrl: string,
    names: Iterable<string>,
    wildcard: boolean,
  ): void {
    const kind = KIND_BY_URL.get(typeUrl)!;
    this.#unsubscribe(stream, kind);
    const entry = { names: new Set(names), wildcard };
    stream.subscriptions.set(kind, entry);
    if (wildcard) addTo(this.#wildcards, kind, stream);
    for (const name of entry.names) addTo(this.#subscribers, subscriberKey(kind, name), stream);
  }

  #unsubscribe(stream: Stream<S>, kind: ResourceKind): void {
    const entry = stream.subscriptions.get(kind);
    if (!entry) return;
    stream.subscriptions.delete(kind);
    if (entry.wildcard) removeFrom(this.#wildcards, kind, stream);
    for (const name of entry.names) {
      removeFrom(this.#subscribers, subscriberKey(kind, name), stream);
    }
  }

  /** Writes a response. */
  write(stream: Stream<S>, typeUrl: string, bytes: Uint8Array): void {
    stream.call.write(bytes);
    this.#options.events?.sent?.(typeUrl);
  }

  #keyOf(peer: ProxyPeer): string {
    return this.#options.snapshotKey?.(peer) ?? "";
  }

  #index(stream: Stream<S>): void {
    addTo(this.#byKey, stream.key, stream);
    addTo(this.#byNode, stream.peer!.node, stream);
  }

  #unindex(stream: Stream<S>): void {
    removeFrom(this.#byKey, stream.key, stream);
    removeFrom(this.#byNode, stream.peer!.node, stream);
  }

  /**
   * Gives each stream in `scope` (every stream without one) its current
   * snapshot and lets the variant send what changed. The streams of one
   * snapshot key share their snapshot: it is taken once, and only the
   * streams subscribed to a resource that changed (or to a whole type that
   * did) are looked at further, so a change of one service costs its
   * subscribers, not every proxy of a namespace. Yields to the event loop
   * every 100 streams it sends to, so a large push never starves request
   * handling.
   */
  async push(scope?: PushScope): Promise<void> {
    const work: [Stream<S>, SnapshotDiff | null][] = [];
    if (scope) {
      // Nodes first: a node's locality may have moved its streams to another snapshot key.
      for (const node of scope.nodes) {
        for (const stream of [...this.#byNode.get(node) ?? []]) this.#refreshOne(stream, work);
      }
      for (const key of scope.keys) this.#collect(key, work);
    } else {
      for (const stream of this.#streams.values()) this.#refreshOne(stream, work);
    }
    let done = 0;
    for (const [stream, diff] of work) {
      if (!this.#streams.has(stream.id)) continue;
      this.#variant.refresh(stream, diff, this);
      if (++done % 100 === 0) await new Promise((r) => setTimeout(r, 0));
    }
  }

  /** Queues the streams of snapshot key `key` that its new snapshot concerns. */
  #collect(key: string, work: [Stream<S>, SnapshotDiff | null][]): void {
    const streams = this.#byKey.get(key);
    const first = streams?.values().next().value;
    if (!streams || !first?.peer) return;
    const next = this.#options.snapshotFor(first.peer);
    const byBefore = new Map<ProxySnapshot | null, Set<Stream<S>>>();
    for (const stream of streams) {
      if (stream.snapshot === next) continue;
      let group = byBefore.get(stream.snapshot);
      if (!group) byBefore.set(stream.snapshot, group = new Set());
      group.add(stream);
      stream.snapshot = next;
    }
    for (const [before, group] of byBefore) {
      const diff = before ? this.#shared.diff(before, next) : null;
      if (!diff) {
        for (const stream of group) work.push([stream, null]);
        continue;
      }
      const concerned = new Set<Stream<S>>();
      for (const [kind, names] of diff) {
        if (names.size === 0) continue;
        for (const stream of this.#wildcards.get(kind) ?? []) {
          if (group.has(stream)) concerned.add(stream);
        }
        for (const name of names) {
          for (const stream of this.#subscribers.get(subscriberKey(kind, name)) ?? []) {
            if (group.has(stream)) concerned.add(stream);
          }
        }
      }
      for (const stream of concerned) work.push([stream, diff]);
    }
  }

  /** Queues one stream, after giving it its key and snapshot afresh (its node changed). */
  #refreshOne(stream: Stream<S>, work: [Stream<S>, SnapshotDiff | null][]): void {
    if (!stream.peer) return;
    const key = this.#keyOf(stream.peer);
    if (key !== stream.key) {
      this.#unindex(stream);
      stream.key = key;
      this.#index(stream);
    }
    const snapshot = this.#options.snapshotFor(stream.peer);
    const before = stream.snapshot;
    if (snapshot === before) return;
    stream.snapshot = snapshot;
    work.push([stream, before ? this.#shared.diff(before, snapshot) : null]);
  }

  /** Every identified stream. */
  streams(): Stream<S>[] {
    return [...this.#streams.values()].filter((s) => s.peer);
  }

  /** Status of every identified stream. */
  status(): (ProxyStatus & { seq: number })[] {
    return this.streams().map((s) => ({
      id: s.id,
      seq: s.seq,
      ...s.peer!,
      connectedAt: s.connectedAt,
      types: this.#variant.status(s),
    }));
  }

  /** Stream `id`'s configuration per type, or `null` when there is no such stream. */
  configDump(id: string): Record<string, unknown[]> | null {
    const stream = this.#streams.get(id);
    return stream ? Object.fromEntries(this.#variant.dump(stream)) : null;
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

/** The key of one resource in the subscriber index. */
function subscriberKey(kind: ResourceKind, name: string): string {
  return `${kind}\u0000${name}`;
}

function addTo<T>(map: Map<string, Set<T>>, key: string, value: T): void {
  let set = map.get(key);
  if (!set) map.set(key, set = new Set());
  set.add(value);
}

function removeFrom<T>(map: Map<string, Set<T>>, key: string, value: T): void {
  const set = map.get(key);
  set?.delete(value);
  if (set?.size === 0) map.delete(key);
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

/**
 * Decodes a variant's request and identifies its stream's proxy; `null`
 * (logged) when it asks for a type we do not serve.
 */
export function readRequest<R extends { node?: NodeInfo; type_url?: string }>(
  stream: Stream<unknown>,
  bytes: Uint8Array,
  io: Pick<StreamIo<unknown>, "identify">,
  options: { typeName: string; log: Logger },
): { request: R; peer: ProxyPeer; typeUrl: string } | null {
  const request = codec.decodeStrict(options.typeName, bytes) as R;
  const peer = io.identify(stream, request.node);
  const typeUrl = request.type_url ?? "";
  if (!KIND_BY_URL.has(typeUrl)) {
    options.log.debug("Unknown xDS type requested", { stream: stream.id, typeUrl });
    return null;
  }
  return { request, peer, typeUrl };
}

/** A NACK as a stream's status shows it. */
export interface Nack {
  version: string;
  message: string;
  at: string;
}

/**
 * Records that a proxy rejected `version` of a type: the metric, a warning
 * naming the proxy (with `detail`), and the NACK the stream's status shows.
 */
export function nackOf(
  ctx: VariantContext,
  at: { stream: Stream<unknown>; peer: ProxyPeer; typeUrl: string },
  nack: { version: string; message: string; detail?: Record<string, unknown> },
): Nack {
  ctx.events.nack?.(at.typeUrl);
  ctx.log.warn("Proxy rejected configuration (NACK)", {
    stream: at.stream.id,
    node: at.peer.node,
    typeUrl: at.typeUrl,
    version: nack.version,
    ...nack.detail,
    error: nack.message,
  });
  return { version: nack.version, message: nack.message, at: new Date().toISOString() };
}
