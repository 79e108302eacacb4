/**
 * State-of-the-world ADS (`StreamAggregatedResources`), over the shared
 * stream core. Per stream and type it keeps the names the proxy subscribed
 * to, the version and nonce last sent, the version last ACKed and the last
 * NACK. A NACKed version is never sent again, so a config a proxy rejects
 * cannot turn into a push loop; the proxy keeps its last good config until
 * a new version exists.
 */
import type { ProxyStatus } from "../core/proxy_status.ts";
import { compareStrings, shortHash } from "./generate/canonical.ts";
import type { ProxySnapshot, Resource } from "./generate/model.ts";
import * as streams from "./stream_core.ts";
import { type SnapshotDiff, touches } from "./snapshot_diff.ts";
import { concat, stringField } from "./resource_encoder.ts";

/** Per stream and type. */
export interface SotwState {
  names: Set<string> | "*";
  /** `*` or the sorted names: the key of this subscription's selection in a snapshot. */
  namesKey: string;
  sentVersion: string | null;
  sentNonce: string | null;
  sentAt: number;
  sentResources: Resource[];
  ackedVersion: string | null;
  nack: streams.Nack | null;
}

/** The resources of one subscription in one snapshot, with their version and encoding. */
interface Selection {
  resources: Resource[];
  version: string;
  /** The response's fields but the nonce, built on first use. */
  bytes: Uint8Array | null;
}

const DISCOVERY_REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";

/** A DiscoveryRequest, the parts we read. */
interface SotwRequest {
  type_url?: string;
  resource_names?: string[];
  version_info?: string;
  response_nonce?: string;
  error_detail?: { message?: string };
  node?: streams.NodeInfo;
}

/** The state-of-the-world variant; see the module comment. */
export class SotwVariant implements streams.Variant<SotwState> {
  readonly #ctx: streams.VariantContext;
  /** Selections per snapshot (see `#select`); dropped with the snapshot. */
  readonly #selections = new WeakMap<ProxySnapshot, Map<string, Selection>>();

  constructor(context: streams.VariantContext) {
    this.#ctx = context;
  }

  request(
    stream: streams.Stream<SotwState>,
    bytes: Uint8Array,
    io: streams.StreamIo<SotwState>,
  ): void {
    const read = streams.readRequest<SotwRequest>(stream as streams.Stream<unknown>, bytes, io, {
      typeName: DISCOVERY_REQUEST,
      log: this.#ctx.log,
    });
    if (!read) return;
    const { request, peer, typeUrl } = read;
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
        state.nack = streams.nackOf(this.#ctx, {
          stream: stream as streams.Stream<unknown>,
          peer,
          typeUrl,
        }, {
          version: state.sentVersion ?? "",
          message: request.error_detail.message ?? "",
        });
      } else if (state.ackedVersion !== request.version_info) {
        state.ackedVersion = request.version_info ?? null;
        this.#ctx.events.acked?.(typeUrl, state.sentAt);
      }
    }
    const names = request.resource_names ?? [];
    const wanted = names.length === 0 && streams.WILDCARD_TYPES.has(typeUrl) ? "*" : new Set(names);
    const changed = !sameNames(state.names, wanted) || state.sentVersion === null;
    state.names = wanted;
    state.namesKey = wanted === "*" ? "*" : [...wanted].sort().join("\n");
    if (changed) io.subscribed(stream, typeUrl, wanted === "*" ? [] : wanted, wanted === "*");
    if (changed) this.#send(io, stream, typeUrl, state, true);
  }

  refresh(
    stream: streams.Stream<SotwState>,
    diff: SnapshotDiff | null,
    io: streams.StreamIo<SotwState>,
  ): void {
    for (const [typeUrl, state] of stream.types) {
      if (diff && !touches(state.names, diff.get(streams.KIND_BY_URL.get(typeUrl)!)!)) continue;
      this.#send(io, stream, typeUrl, state, false);
    }
  }

  /** Sends a type's current resources when they differ from what the proxy has (or `force`). */
  #send(
    io: streams.StreamIo<SotwState>,
    stream: streams.Stream<SotwState>,
    typeUrl: string,
    state: SotwState,
    force: boolean,
  ): void {
    const selection = this.#select(stream.snapshot, typeUrl, state);
    const { resources, version } = selection;
    if (!force && version === state.sentVersion) return;
    if (state.nack && version === state.nack.version) return;
    const nonce = io.nonce(stream);
    selection.bytes ??= concat([
      stringField(1, version),
      ...resources.map((r) => this.#ctx.shared.encoder.entry(r)),
      stringField(4, typeUrl),
    ]);
    state.sentVersion = version;
    state.sentNonce = nonce;
    state.sentAt = this.#ctx.shared.sentAt();
    state.sentResources = resources;
    io.write(stream, typeUrl, concat([selection.bytes, stringField(5, nonce)]));
  }

  /**
   * The resources of one subscription in a snapshot, with their combined
   * version. Proxies that share a snapshot and subscribe to the same names
   * (most proxyless clients of a service) share one selection, and its
   * encoding, so a push costs per distinct subscription, not per stream.
   */
  #select(snapshot: ProxySnapshot | null, typeUrl: string, state: SotwState): Selection {
    const kind = streams.KIND_BY_URL.get(typeUrl)!;
    if (!snapshot) return { resources: [], version: shortHash(""), bytes: null };
    let memo = this.#selections.get(snapshot);
    if (!memo) this.#selections.set(snapshot, memo = new Map());
    const key = `${kind}|${state.namesKey}`;
    let selection = memo.get(key);
    if (!selection) {
      let resources: Resource[];
      if (state.names === "*") resources = snapshot[kind];
      else {
        const index = this.#ctx.shared.index(snapshot, kind);
        resources = [];
        for (const name of [...state.names].sort(compareStrings)) {
          const resource = index.get(name);
          if (resource) resources.push(resource);
        }
      }
      const version = shortHash(resources.map((r) => `${r.name}:${r.version}`).join(","));
      memo.set(key, selection = { resources, version, bytes: null });
    }
    return selection;
  }

  status(stream: streams.Stream<SotwState>): ProxyStatus["types"] {
    return [...stream.types].map(([typeUrl, t]) => ({
      typeUrl,
      subscribed: t.names === "*" ? "*" as const : [...t.names].sort(),
      sentVersion: t.sentVersion,
      ackedVersion: t.ackedVersion,
      lastNack: t.nack,
      inSync: t.sentVersion !== null && t.sentVersion === t.ackedVersion,
    }));
  }

  dump(stream: streams.Stream<SotwState>): [string, unknown[]][] {
    return [...stream.types].map(([typeUrl, t]) => [typeUrl, t.sentResources.map((r) => r.body)]);
  }
}

function sameNames(a: Set<string> | "*", b: Set<string> | "*"): boolean {
  if (a === "*" || b === "*") return a === b;
  return a.size === b.size && [...a].every((n) => b.has(n));
}
