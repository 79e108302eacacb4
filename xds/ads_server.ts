/**
 * The ADS server: state-of-the-world `StreamAggregatedResources`
 * (`sotw_server.ts`) and incremental `DeltaAggregatedResources`
 * (`delta_server.ts`) over one stream core (`stream_core.ts`), one gRPC
 * bidirectional stream per proxy. It knows nothing of the registry: it asks
 * `snapshotFor` for a proxy's resources and is told by the push pipeline
 * when to look again, and at which proxies (go-control-plane's split
 * between the cache and the stream server). Both variants share the
 * snapshots, the encoded resources, the push path, `status()` and
 * `configDump()`.
 */
import type * as grpc from "@grpc/grpc-js";
import type { ProxyStatus } from "../core/proxy_status.ts";
import { type DeltaState, DeltaVariant } from "./delta_server.ts";
import { type SotwState, SotwVariant } from "./sotw_server.ts";
import { type AdsOptions, type PushScope, SharedState, StreamCore } from "./stream_core.ts";

export type { AdsEvents, AdsOptions, NodeInfo, ProxyPeer, PushScope } from "./stream_core.ts";
export type { ProxyStatus };

/** The gRPC service definition of ADS, with raw bytes in and out. */
export const adsServiceDefinition = {
  streamAggregatedResources: bytesStream("StreamAggregatedResources"),
  deltaAggregatedResources: bytesStream("DeltaAggregatedResources"),
} as const;

/** A bidirectional ADS method of raw bytes. */
function bytesStream<N extends string>(name: N) {
  return {
    path: `/envoy.service.discovery.v3.AggregatedDiscoveryService/${name}` as const,
    requestStream: true,
    responseStream: true,
    requestSerialize: asBuffer,
    requestDeserialize: (b: Buffer) => new Uint8Array(b),
    responseSerialize: asBuffer,
    responseDeserialize: (b: Buffer) => new Uint8Array(b),
    originalName: name,
  } as const;
}

/** The bytes as a Buffer over the same memory: a response is written once, never copied. */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The ADS server, state-of-the-world and delta. */
export class AdsServer {
  readonly #shared = new SharedState();
  readonly #sotw: StreamCore<SotwState>;
  readonly #delta: StreamCore<DeltaState>;

  constructor(options: AdsOptions & { name?: string }) {
    const prefix = options.name ?? "ads";
    const events = options.events ?? {};
    this.#sotw = new StreamCore(options, this.#shared, {
      name: "sotw",
      handler: new SotwVariant({ shared: this.#shared, log: options.log, events }),
      idPrefix: `${prefix}-`,
    });
    // The status type has no field for the variant: delta streams say so in their id.
    this.#delta = new StreamCore(options, this.#shared, {
      name: "delta",
      handler: new DeltaVariant({ shared: this.#shared, log: options.log, events }),
      idPrefix: `${prefix}-delta-`,
    });
  }

  /** The handler object for `server.addService(adsServiceDefinition, …)`. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      streamAggregatedResources: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>) =>
        this.#sotw.open(call),
      deltaAggregatedResources: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>) =>
        this.#delta.open(call),
    };
  }

  /**
   * Gives the streams in `scope` (every stream without one) their current
   * snapshots and sends what changed. `causedAt` is when the change behind
   * the push happened: ACKs of what it sends are timed from it.
   */
  async push(causedAt?: number, scope?: PushScope): Promise<void> {
    this.#shared.causedAt = causedAt ?? null;
    try {
      await this.#sotw.push(scope);
      await this.#delta.push(scope);
    } finally {
      this.#shared.causedAt = null;
    }
  }

  /** Every connected proxy with its per-type state (delta streams have `-delta-` in their id). */
  status(): ProxyStatus[] {
    return [...this.#sotw.status(), ...this.#delta.status()]
      .sort((a, b) => a.seq - b.seq)
      .map(({ seq: _, ...status }) => status);
  }

  /**
   * Proxy `id`'s configuration per type, as JSON (`config_dump`): what was last sent
   * (state of the world), or what the proxy holds once it accepts what is in flight (delta).
   */
  configDump(id: string): Record<string, unknown[]> | null {
    return this.#sotw.configDump(id) ?? this.#delta.configDump(id);
  }

  /** Ends every stream of `node` (its certificate was revoked). */
  closeNode(node: string): number {
    return this.#sotw.closeNode(node) + this.#delta.closeNode(node);
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    this.#sotw.closeAll();
    this.#delta.closeAll();
  }
}
