/**
 * Test doubles for the agent's xDS relay: a server's ADS port that speaks
 * real xDS (both variants, strict protobuf against Envoy's descriptor, mTLS
 * with client certificates required), a TCP proxy in front of it that a test
 * cuts and restores (an outage on the same port, without shutting a gRPC
 * server down under open streams, which can crash Deno's HTTP/2), and
 * clients that speak ADS as Envoy and grpc-js-xds do.
 *
 * They speak protobuf through the strict codec (`xds/proto/codec.ts`), which
 * the test passes in: only test files may reach into the `xds` layer.
 */
import { CDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL, SDS_TYPE_URL } from "../core/xds_type_urls.ts";
import * as grpc from "@grpc/grpc-js";
import type { CertificateAuthority } from "../ca/authority.ts";
import { issueTestLeaf } from "../ca/_testing.ts";
import type { TlsMaterial } from "./tls_clients.ts";
import { ADS_METHOD, DELTA_ADS_METHOD } from "./xds_relay.ts";

/** The strict protobuf codec of `xds/proto/codec.ts`. */
export interface StrictCodec {
  encodeStrict(typeName: string, value: Record<string, unknown>): Uint8Array;
  decodeStrict(typeName: string, bytes: Uint8Array): Record<string, unknown>;
}
const raw = (b: Buffer) => b;

export const LDS = LDS_TYPE_URL;
export const CDS = CDS_TYPE_URL;
export const EDS = EDS_TYPE_URL;
export const SDS = SDS_TYPE_URL;
const REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const RESPONSE = "envoy.service.discovery.v3.DiscoveryResponse";
const DELTA_REQUEST = "envoy.service.discovery.v3.DeltaDiscoveryRequest";
const DELTA_RESPONSE = "envoy.service.discovery.v3.DeltaDiscoveryResponse";

/** A decoded DiscoveryRequest or DiscoveryResponse (snake_case proto JSON). */
export interface Discovery {
  version_info?: string;
  node?: Record<string, unknown>;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  nonce?: string;
  error_detail?: { code?: number; message?: string };
  resources?: { "@type": string; name?: string; [key: string]: unknown }[];
}

/** A decoded DeltaDiscoveryRequest or DeltaDiscoveryResponse. */
export interface DeltaDiscovery {
  node?: Record<string, unknown>;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  nonce?: string;
  system_version_info?: string;
  error_detail?: { code?: number; message?: string };
  resources?: {
    name: string;
    version: string;
    resource: { "@type": string; [key: string]: unknown };
  }[];
  removed_resources?: string[];
}

/** The certificates of the mesh, from the real CA (`ca/authority.ts`). */
export type MeshCa = Pick<CertificateAuthority, "bundle" | "issue" | "issueServerCertificate">;

/** A server key and certificate chain (PEM) from `ca` for `ip`, as the server's own. */
export async function serverLeaf(ca: MeshCa, ip: string): Promise<{ key: string; cert: string }> {
  const serving = await ca.issueServerCertificate({ ipAddresses: [ip] });
  return { key: serving.keyPem, cert: serving.chainPem };
}

/** An agent's mesh material with the service account `sa`, trusting `ca`'s bundle. */
export async function agentMaterial(ca: MeshCa, sa: string): Promise<TlsMaterial> {
  const request = { node: "vm-1", namespace: "default", serviceAccount: sa };
  const { keyPem, leaf } = await issueTestLeaf(ca, request);
  return { caPem: ca.bundle().pem, certPem: leaf.chainPem, keyPem };
}

/** One stream the double received. */
export interface DoubleStream {
  variant: "sotw" | "delta";
  san: string | undefined;
  requests: (Discovery | DeltaDiscovery)[];
  /** Raw request bytes, to look for what must never go up. */
  raws: Buffer[];
  ended: boolean;
  cancelled: boolean;
}

/** A resource the double serves: its fields, without `@type`. */
export type Fields = Record<string, unknown>;

interface SotwState {
  names: Set<string> | "*";
}
interface DeltaState {
  wildcard: boolean;
  names: Set<string>;
  has: Map<string, string>;
}

/**
 * The server's ADS port, as a double: serves `resources` by type and name,
 * answers every new subscription at once and pushes every change to every
 * stream (state of the world: each subscribed resource; delta: what changed,
 * removals included). Nonces and versions are its own numbers.
 */
export class XdsServerDouble {
  readonly streams: DoubleStream[] = [];
  readonly #resources = new Map<string, Map<string, { fields: Fields; version: string }>>();
  readonly #pushers = new Set<() => void>();
  #server: grpc.Server | undefined;
  #version = 0;
  #nonce = 0;
  readonly #codec: StrictCodec;
  port = 0;

  private constructor(codec: StrictCodec) {
    this.#codec = codec;
  }

  /**
   * Starts on a free port with a server certificate for 127.0.0.1 from `ca`
   * (or `serving`), requiring client certificates that chain to `ca`'s
   * bundle as it is now.
   */
  static async start(
    codec: StrictCodec,
    ca: MeshCa,
    serving?: { key: string; cert: string },
  ): Promise<XdsServerDouble> {
    const double = new XdsServerDouble(codec);
    serving ??= await serverLeaf(ca, "127.0.0.1");
    const server = new grpc.Server();
    const method = (path: string) => ({
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    });
    server.addService({ sotw: method(ADS_METHOD), delta: method(DELTA_ADS_METHOD) }, {
      sotw: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => double.#sotw(call),
      delta: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => double.#delta(call),
    });
    double.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        "127.0.0.1:0",
        grpc.ServerCredentials.createSsl(
          Buffer.from(ca.bundle().pem),
          [{ private_key: Buffer.from(serving.key), cert_chain: Buffer.from(serving.cert) }],
          true,
        ),
        (e, p) => e ? reject(e) : resolve(p),
      )
    );
    double.#server = server;
    return double;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Sets (or replaces) a resource and pushes it. */
  set(typeUrl: string, name: string, fields: Fields): void {
    let type = this.#resources.get(typeUrl);
    if (type === undefined) this.#resources.set(typeUrl, type = new Map());
    type.set(name, { fields, version: String(++this.#version) });
    for (const push of this.#pushers) push();
  }

  /** Removes a resource and pushes the removal. */
  remove(typeUrl: string, name: string): void {
    this.#version++;
    this.#resources.get(typeUrl)?.delete(name);
    for (const push of this.#pushers) push();
  }

  /** The state-of-the-world version: one number for everything. */
  get version(): string {
    return String(this.#version);
  }

  /** Call last, once nothing is connected. */
  stop(): void {
    this.#server?.forceShutdown();
  }

  #record(call: grpc.ServerDuplexStream<Buffer, Buffer>, variant: DoubleStream["variant"]) {
    const seen: DoubleStream = {
      variant,
      san: call.getAuthContext().sslPeerCertificate?.subjectaltname,
      requests: [],
      raws: [],
      ended: false,
      cancelled: false,
    };
    this.streams.push(seen);
    call.on("end", () => {
      seen.ended = true;
      call.end();
    });
    call.on("cancelled", () => seen.cancelled = true);
    call.on("error", () => {});
    return seen;
  }

  #any(typeUrl: string, name: string, fields: Fields) {
    const named = typeUrl === EDS ? { cluster_name: name } : { name };
    return { "@type": typeUrl, ...named, ...fields };
  }

  #sotw(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const seen = this.#record(call, "sotw");
    const types = new Map<string, SotwState>();
    const send = (typeUrl: string, state: SotwState) => {
      const all = this.#resources.get(typeUrl) ?? new Map();
      const names = state.names === "*" ? [...all.keys()] : [...state.names];
      const resources = names.flatMap((n) => {
        const r = all.get(n);
        return r ? [this.#any(typeUrl, n, r.fields)] : [];
      });
      call.write(Buffer.from(this.#codec.encodeStrict(RESPONSE, {
        version_info: this.version,
        type_url: typeUrl,
        nonce: String(++this.#nonce),
        resources,
      })));
    };
    const push = () => {
      for (const [typeUrl, state] of types) send(typeUrl, state);
    };
    this.#pushers.add(push);
    call.on("close", () => this.#pushers.delete(push));
    call.on("cancelled", () => this.#pushers.delete(push));
    call.on("data", (b: Buffer) => {
      seen.raws.push(b);
      const request = this.#codec.decodeStrict(REQUEST, b) as Discovery;
      seen.requests.push(request);
      const typeUrl = request.type_url ?? "";
      const names = request.resource_names ?? [];
      const wanted = names.length === 0 && (typeUrl === LDS || typeUrl === CDS)
        ? "*"
        : new Set(names);
      const before = types.get(typeUrl);
      const key = (n: Set<string> | "*") => n === "*" ? "*" : [...n].sort().join(",");
      types.set(typeUrl, { names: wanted });
      if (before === undefined || key(before.names) !== key(wanted)) {
        send(typeUrl, types.get(typeUrl)!);
      }
    });
  }

  #delta(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const seen = this.#record(call, "delta");
    const types = new Map<string, DeltaState>();
    const send = (typeUrl: string, state: DeltaState) => {
      const all = this.#resources.get(typeUrl) ?? new Map();
      const names = state.wildcard ? new Set([...all.keys(), ...state.names]) : state.names;
      const resources = [];
      const removed = [];
      for (const name of names) {
        const r = all.get(name);
        if (r === undefined) {
          if (state.has.delete(name)) removed.push(name);
        } else if (state.has.get(name) !== r.version) {
          resources.push({
            name,
            version: r.version,
            resource: this.#any(typeUrl, name, r.fields),
          });
          state.has.set(name, r.version);
        }
      }
      for (const name of [...state.has.keys()]) {
        if (!all.has(name)) {
          state.has.delete(name);
          if (!removed.includes(name)) removed.push(name);
        }
      }
      if (resources.length === 0 && removed.length === 0) return;
      call.write(Buffer.from(this.#codec.encodeStrict(DELTA_RESPONSE, {
        system_version_info: this.version,
        type_url: typeUrl,
        nonce: String(++this.#nonce),
        resources,
        removed_resources: removed,
      })));
    };
    const push = () => {
      for (const [typeUrl, state] of types) send(typeUrl, state);
    };
    this.#pushers.add(push);
    call.on("close", () => this.#pushers.delete(push));
    call.on("cancelled", () => this.#pushers.delete(push));
    call.on("data", (b: Buffer) => {
      seen.raws.push(b);
      const request = this.#codec.decodeStrict(DELTA_REQUEST, b) as DeltaDiscovery;
      seen.requests.push(request);
      const typeUrl = request.type_url ?? "";
      let state = types.get(typeUrl);
      if (state === undefined) {
        const subscribe = request.resource_names_subscribe ?? [];
        state = {
          wildcard: subscribe.length === 0 && (typeUrl === LDS || typeUrl === CDS),
          names: new Set(),
          has: new Map(Object.entries(request.initial_resource_versions ?? {})),
        };
        types.set(typeUrl, state);
      }
      for (const n of request.resource_names_subscribe ?? []) {
        if (n === "*") state.wildcard = true;
        else state.names.add(n);
      }
      for (const n of request.resource_names_unsubscribe ?? []) {
        state.names.delete(n);
        state.has.delete(n);
      }
      send(typeUrl, state);
    });
  }
}

/**
 * A TCP proxy on a fixed loopback port in front of `target`: `down()` closes
 * the port and cuts every connection (the server is gone), `up()` listens on
 * the same port again.
 */
export class TcpCut {
  readonly #target: number;
  #listener: Deno.Listener | null = null;
  readonly #conns = new Set<Deno.Conn>();
  port = 0;

  constructor(target: number) {
    this.#target = target;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  up(): void {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#listener = listener;
    (async () => {
      for await (const conn of listener) {
        let upstream: Deno.Conn;
        try {
          upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
        } catch {
          conn.close();
          continue;
        }
        this.#conns.add(conn);
        this.#conns.add(upstream);
        const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
          try {
            await from.readable.pipeTo(to.writable);
          } catch {
            // Cut by down() or by the other side.
          }
          for (const c of [from, to]) {
            try {
              c.close();
            } catch {
              // Already closed.
            }
            this.#conns.delete(c);
          }
        };
        pipe(conn, upstream);
        pipe(upstream, conn);
      }
    })().catch(() => {});
  }

  down(): void {
    this.#listener?.close();
    this.#listener = null;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // Already closed.
      }
    }
    this.#conns.clear();
  }
}

/** A client's ADS stream to `address` (plaintext), as Envoy or grpc-js-xds opens it. */
export class AdsClient<Req, Res> {
  readonly responses: Res[] = [];
  readonly status: Promise<grpc.StatusObject>;
  readonly #client: grpc.Client;
  readonly #call: grpc.ClientDuplexStream<Buffer, Buffer>;
  readonly #requestType: string;
  readonly #codec: StrictCodec;

  private constructor(codec: StrictCodec, address: string, variant: "sotw" | "delta") {
    this.#codec = codec;
    this.#client = new grpc.Client(address, grpc.credentials.createInsecure());
    this.#requestType = variant === "sotw" ? REQUEST : DELTA_REQUEST;
    const responseType = variant === "sotw" ? RESPONSE : DELTA_RESPONSE;
    this.#call = this.#client.makeBidiStreamRequest(
      variant === "sotw" ? ADS_METHOD : DELTA_ADS_METHOD,
      raw,
      raw,
      new grpc.Metadata(),
      {},
    );
    this.#call.on(
      "data",
      (b: Buffer) => this.responses.push(codec.decodeStrict(responseType, b) as Res),
    );
    this.#call.on("error", () => {});
    this.status = new Promise((resolve) => this.#call.on("status", resolve));
  }

  /** A state-of-the-world client. */
  static sotw(codec: StrictCodec, address: string): AdsClient<Discovery, Discovery> {
    return new AdsClient(codec, address, "sotw");
  }

  /** A delta client. */
  static delta(codec: StrictCodec, address: string): AdsClient<DeltaDiscovery, DeltaDiscovery> {
    return new AdsClient(codec, address, "delta");
  }

  send(request: Req): void {
    this.#call.write(Buffer.from(this.#codec.encodeStrict(this.#requestType, request as never)));
  }

  /** Sends bytes as they are (e.g. something that is not xDS). */
  sendRaw(bytes: Uint8Array): void {
    this.#call.write(Buffer.from(bytes));
  }

  end(): void {
    this.#call.end();
  }

  close(): void {
    this.#client.close();
  }
}
