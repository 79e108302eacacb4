/**
 * Incremental ADS (`DeltaAggregatedResources`), over the shared stream
 * core. Per stream and type it keeps the subscription (names and/or
 * wildcard), the version of each resource the proxy has (from
 * `initial_resource_versions` and ACKed responses), the responses awaiting
 * an answer, and the resource versions the proxy rejected. A response
 * carries only resources whose version differs from what the proxy has (or
 * will have once it accepts what is in flight), and `removed_resources` for
 * tracked names that left the snapshot. A rejected resource version (or
 * removal) is not sent again; the proxy keeps what it last ACKed. Its
 * `sentVersion` and `ackedVersion` in `status()` are hashes of the whole
 * per-type view (sent as `system_version_info`), so the two variants read
 * the same.
 */
import type { ProxyStatus } from "../core/proxy_status.ts";
import { compareStrings, shortHash } from "./generate/canonical.ts";
import type { Resource } from "./generate/model.ts";
import * as codec from "./proto/codec.ts";
import {
  KIND_BY_URL,
  type Nack,
  nackOf,
  type NodeInfo,
  readRequest,
  type Stream,
  type StreamIo,
  type Variant,
  type VariantContext,
  WILDCARD_TYPES,
} from "./stream_core.ts";
import { type SnapshotDiff, touches } from "./snapshot_diff.ts";

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

/** Per stream and type. */
export interface DeltaState {
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
  nack: Nack | null;
}

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

/** The delta variant; see the module comment. */
export class DeltaVariant implements Variant<DeltaState> {
  readonly #ctx: VariantContext;

  constructor(context: VariantContext) {
    this.#ctx = context;
  }

  request(stream: Stream<DeltaState>, bytes: Uint8Array, io: StreamIo<DeltaState>): void {
    const read = readRequest<DeltaRequest>(stream as Stream<unknown>, bytes, io, {
      typeName: DELTA_REQUEST,
      log: this.#ctx.log,
    });
    if (!read) return;
    const { request, peer, typeUrl } = read;
    const subscribe = request.resource_names_subscribe ?? [];
    const unsubscribe = request.resource_names_unsubscribe ?? [];
    let state = stream.types.get(typeUrl);
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
      stream.types.set(typeUrl, state);
    }

    // The answer to a response: every response up to it is answered (the proxy answers in
    // order; one it skipped counts as accepted). A nonce not in flight is stale: ignored.
    const nonce = request.response_nonce ?? "";
    const at = nonce === "" ? -1 : state.inflight.findIndex((s) => s.nonce === nonce);
    if (at >= 0) {
      const answered = state.inflight.splice(0, at + 1);
      const last = answered.pop()!;
      for (const sent of answered) accept(state, sent);
      if (request.error_detail) {
        for (const [name, r] of last.changes) {
          if (tracks(state, name)) state.rejected.set(name, r ? r.version : null);
        }
        state.nack = nackOf(this.#ctx, { stream: stream as Stream<unknown>, peer, typeUrl }, {
          version: last.version,
          message: request.error_detail.message ?? "",
          detail: { resources: [...last.changes.keys()] },
        });
      } else {
        accept(state, last);
        this.#ctx.events.acked?.(typeUrl, last.sentAt);
      }
    } else if (nonce !== "") {
      this.#ctx.log.debug("Stale nonce ignored", { stream: stream.id, typeUrl, nonce });
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
    if (first || subscribe.length > 0 || unsubscribe.length > 0) {
      io.subscribed(stream, typeUrl, state.names, state.wildcard);
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
    this.#send(io, stream, typeUrl, state, first && state.wildcard);
  }

  refresh(stream: Stream<DeltaState>, diff: SnapshotDiff | null, io: StreamIo<DeltaState>): void {
    for (const [typeUrl, state] of stream.types) {
      const changed = diff?.get(KIND_BY_URL.get(typeUrl)!);
      if (changed && !touches(state.wildcard ? "*" : state.names, changed)) continue;
      this.#send(io, stream, typeUrl, state, false);
    }
  }

  /**
   * Sends a delta type's changes: tracked resources whose version differs from what the proxy
   * has or will have (except versions it rejected), and removals of tracked names the snapshot
   * no longer holds. Nothing is sent when nothing changed, unless `respondEmpty`.
   */
  #send(
    io: StreamIo<DeltaState>,
    stream: Stream<DeltaState>,
    typeUrl: string,
    state: DeltaState,
    respondEmpty: boolean,
  ): void {
    const kind = KIND_BY_URL.get(typeUrl)!;
    const current = new Map<string, Resource>();
    if (stream.snapshot) {
      if (state.wildcard) {
        for (const r of stream.snapshot[kind]) current.set(r.name, r);
      } else {
        const index = this.#ctx.shared.index(stream.snapshot, kind);
        for (const name of [...state.names].sort(compareStrings)) {
          const r = index.get(name);
          if (r) current.set(name, r);
        }
      }
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
    const nonce = io.nonce(stream);
    const resources = [...changes.values()].filter((r): r is Resource => r !== null);
    const response = DELTA_RESPONSE.encode({
      system_version_info: version,
      type_url: typeUrl,
      nonce,
      resources: resources.map((r) => ({
        name: r.name,
        version: r.version,
        resource: { type_url: typeUrl, value: this.#ctx.shared.encoder.value(r) },
      })),
      removed_resources: [...changes].filter(([, r]) => r === null).map(([name]) => name),
    }).finish();
    state.sentVersion = version;
    state.inflight.push({ nonce, version, sentAt: this.#ctx.shared.sentAt(), changes });
    io.write(stream, typeUrl, response);
  }

  status(stream: Stream<DeltaState>): ProxyStatus["types"] {
    return [...stream.types].map(([typeUrl, t]) => ({
      typeUrl,
      subscribed: t.wildcard ? "*" as const : [...t.names].sort(),
      sentVersion: t.sentVersion,
      ackedVersion: t.ackedVersion,
      lastNack: t.nack,
      inSync: t.sentVersion !== null && t.sentVersion === t.ackedVersion,
    }));
  }

  dump(stream: Stream<DeltaState>): [string, unknown[]][] {
    return [...stream.types].map((
      [typeUrl, t],
    ) => [typeUrl, [...t.view.values()].map((r) => r.body)]);
  }
}

/** Records an accepted delta response as what the proxy has. */
function accept(state: DeltaState, sent: DeltaSent): void {
  for (const [name, r] of sent.changes) {
    if (!tracks(state, name)) continue;
    if (r) state.have.set(name, { version: r.version, resource: r });
    else state.have.delete(name);
    state.rejected.delete(name);
  }
  state.ackedVersion = sent.version;
}

/** True when a delta subscription covers `name`. */
function tracks(state: DeltaState, name: string): boolean {
  return state.wildcard || state.names.has(name);
}
