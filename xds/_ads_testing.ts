/**
 * Fixtures shared by the ADS tests (state of the world and delta): hand-built
 * snapshots with minimal bodies the strict codec accepts, a fixed peer, and
 * test clients we wrote (not Envoy) that speak either variant with the
 * strict codec.
 */
import * as grpc from "@grpc/grpc-js";
import { adsServiceDefinition, type ProxyPeer } from "./ads_server.ts";
import { contentVersion } from "./generate/canonical.ts";
import { TYPE_URLS } from "./generate/generate.ts";
import type { JsonObject, ProxySnapshot, Resource, ResourceKind } from "./generate/model.ts";
import * as codec from "./proto/codec.ts";

export const LDS = TYPE_URLS.listeners;
export const RDS = TYPE_URLS.routes;
export const CDS = TYPE_URLS.clusters;
export const EDS = TYPE_URLS.endpoints;
export const PEER: ProxyPeer = {
  node: "vm-1",
  identity: "spiffe://ironmesh.test/ns/default/sa/web",
  kind: "sidecar",
};

export function resource(kind: ResourceKind, name: string, body: JsonObject): Resource {
  return { name, typeUrl: TYPE_URLS[kind], body, version: contentVersion(body) };
}

export function cluster(name: string, timeout = "1s"): Resource {
  return resource("clusters", name, {
    name,
    type: "EDS",
    connect_timeout: timeout,
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" } },
  });
}

export function endpoints(name: string, port = 8080): Resource {
  return resource("endpoints", name, {
    cluster_name: name,
    endpoints: [{
      lb_endpoints: [{
        endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: port } } },
      }],
    }],
  });
}

export function listener(name: string, port: number): Resource {
  return resource("listeners", name, {
    name,
    address: { socket_address: { address: "0.0.0.0", port_value: port } },
  });
}

export function route(name: string, to: string): Resource {
  return resource("routes", name, {
    name,
    virtual_hosts: [{
      name: "all",
      domains: ["*"],
      routes: [{ match: { prefix: "/" }, route: { cluster: to } }],
    }],
  });
}

export function snapshot(parts: Partial<ProxySnapshot>): ProxySnapshot {
  const sorted = (list: Resource[] = []) => [...list].sort((a, b) => a.name < b.name ? -1 : 1);
  return {
    clusters: sorted(parts.clusters),
    endpoints: sorted(parts.endpoints),
    listeners: sorted(parts.listeners),
    routes: sorted(parts.routes),
    secrets: sorted(parts.secrets),
  };
}

export const BASE = snapshot({
  listeners: [listener("l1", 15001), listener("l2", 15002)],
  routes: [route("r1", "a"), route("r2", "b")],
  clusters: [cluster("a"), cluster("b")],
  endpoints: [endpoints("a"), endpoints("b")],
});

/** A DiscoveryResponse as the strict codec decodes it. */
export interface SotwResponse {
  version_info?: string;
  type_url: string;
  nonce: string;
  resources?: JsonObject[];
}

/**
 * A test client we wrote (not Envoy): one raw grpc-js `StreamAggregatedResources`
 * stream, requests and responses through the strict codec. It remembers per
 * type the names it subscribed to and the version it last accepted, as a
 * state-of-the-world client must.
 */
export class TestSotwClient {
  readonly #client: grpc.Client;
  readonly #call: grpc.ClientDuplexStream<Uint8Array, Uint8Array>;
  readonly #inbox: SotwResponse[] = [];
  #wake: (() => void) | null = null;
  readonly #ended: Promise<grpc.StatusObject>;
  readonly #names = new Map<string, string[]>();
  readonly #accepted = new Map<string, string>();
  readonly #node: string;

  /**
   * A stream to `host:port` (default `127.0.0.1`, plaintext) whose requests
   * carry node id `node`. Over TLS, name the host its certificate names: the
   * grpc-js client under Deno refuses an IP address as the TLS server name.
   */
  constructor(
    port: number,
    node = PEER.node,
    options: { credentials?: grpc.ChannelCredentials; host?: string } = {},
  ) {
    this.#node = node;
    this.#client = new grpc.Client(
      `${options.host ?? "127.0.0.1"}:${port}`,
      options.credentials ?? grpc.credentials.createInsecure(),
    );
    this.#call = this.#client.makeBidiStreamRequest(
      adsServiceDefinition.streamAggregatedResources.path,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => new Uint8Array(b),
    );
    this.#call.on("data", (bytes: Uint8Array) => {
      this.#inbox.push(
        codec.decodeStrict("envoy.service.discovery.v3.DiscoveryResponse", bytes) as never,
      );
      this.#wake?.();
    });
    this.#call.on("error", () => {});
    this.#ended = new Promise((resolve) => this.#call.on("status", resolve));
  }

  #send(request: codec.ProtoJson): void {
    this.#call.write(
      codec.encodeStrict("envoy.service.discovery.v3.DiscoveryRequest", {
        node: { id: this.#node, user_agent_name: "ironmesh-test-client" },
        ...request,
      }),
    );
  }

  /** Subscribes to `names` of a type (`[]`: wildcard for LDS/CDS). */
  subscribe(typeUrl: string, names: string[]): void {
    this.#names.set(typeUrl, names);
    this.#send({
      type_url: typeUrl,
      resource_names: names,
      version_info: this.#accepted.get(typeUrl),
    });
  }

  /** Accepts a response. */
  ack(response: SotwResponse): void {
    this.#accepted.set(response.type_url, response.version_info ?? "");
    this.#send({
      type_url: response.type_url,
      resource_names: this.#names.get(response.type_url),
      version_info: response.version_info,
      response_nonce: response.nonce,
    });
  }

  /** Rejects a response: the version stays the last accepted one. */
  nack(response: SotwResponse, message: string): void {
    this.#send({
      type_url: response.type_url,
      resource_names: this.#names.get(response.type_url),
      version_info: this.#accepted.get(response.type_url),
      response_nonce: response.nonce,
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message },
    });
  }

  /** Sends a request as is (for stale replies). */
  raw(request: codec.ProtoJson): void {
    this.#send(request);
  }

  /** The next response, waiting up to `timeoutMs`. */
  async next(timeoutMs = 2_000): Promise<SotwResponse> {
    if (this.#inbox.length === 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#wake = resolve),
        new Promise<void>((_, reject) =>
          timer = setTimeout(() => reject(new Error("No response in time")), timeoutMs)
        ),
      ]).finally(() => {
        clearTimeout(timer);
        this.#wake = null;
      });
    }
    return this.#inbox.shift()!;
  }

  /** Responses received and not read yet. */
  get unread(): number {
    return this.#inbox.length;
  }

  /** How the stream ended. */
  get ended(): Promise<grpc.StatusObject> {
    return this.#ended;
  }

  async close(): Promise<void> {
    this.#call.end();
    await this.#ended;
    this.#client.close();
  }
}

/** A DeltaDiscoveryResponse as the strict codec decodes it. */
export interface DeltaResponse {
  system_version_info?: string;
  type_url: string;
  nonce: string;
  resources?: { name: string; version: string; resource: JsonObject }[];
  removed_resources?: string[];
}

/**
 * A test client we wrote (not Envoy): one raw grpc-js `DeltaAggregatedResources`
 * stream, requests and responses through the strict codec.
 */
export class TestDeltaClient {
  readonly #client: grpc.Client;
  readonly #call: grpc.ClientDuplexStream<Uint8Array, Uint8Array>;
  readonly #inbox: DeltaResponse[] = [];
  #wake: (() => void) | null = null;
  readonly #ended: Promise<grpc.StatusObject>;
  readonly #node: string;

  /**
   * A stream to `host:port` (default `127.0.0.1`, plaintext) whose requests
   * carry node id `node`. Over TLS, name the host its certificate names: the
   * grpc-js client under Deno refuses an IP address as the TLS server name.
   */
  constructor(
    port: number,
    node = PEER.node,
    options: { credentials?: grpc.ChannelCredentials; host?: string } = {},
  ) {
    this.#node = node;
    this.#client = new grpc.Client(
      `${options.host ?? "127.0.0.1"}:${port}`,
      options.credentials ?? grpc.credentials.createInsecure(),
    );
    this.#call = this.#client.makeBidiStreamRequest(
      adsServiceDefinition.deltaAggregatedResources.path,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => new Uint8Array(b),
    );
    this.#call.on("data", (bytes: Uint8Array) => {
      this.#inbox.push(
        codec.decodeStrict("envoy.service.discovery.v3.DeltaDiscoveryResponse", bytes) as never,
      );
      this.#wake?.();
    });
    this.#call.on("error", () => {});
    this.#ended = new Promise((resolve) => this.#call.on("status", resolve));
  }

  /** Sends a DeltaDiscoveryRequest (with a node). */
  send(request: {
    type_url: string;
    resource_names_subscribe?: string[];
    resource_names_unsubscribe?: string[];
    initial_resource_versions?: Record<string, string>;
    response_nonce?: string;
    error_detail?: { code: number; message: string };
  }): void {
    this.#call.write(
      codec.encodeStrict("envoy.service.discovery.v3.DeltaDiscoveryRequest", {
        node: { id: this.#node, user_agent_name: "ironmesh-test-client" },
        ...request,
      }),
    );
  }

  ack(response: DeltaResponse): void {
    this.send({ type_url: response.type_url, response_nonce: response.nonce });
  }

  nack(response: DeltaResponse, message: string): void {
    this.send({
      type_url: response.type_url,
      response_nonce: response.nonce,
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message },
    });
  }

  /** The next response, waiting up to `timeoutMs`. */
  async next(timeoutMs = 2_000): Promise<DeltaResponse> {
    if (this.#inbox.length === 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#wake = resolve),
        new Promise<void>((_, reject) =>
          timer = setTimeout(() => reject(new Error("No response in time")), timeoutMs)
        ),
      ]).finally(() => {
        clearTimeout(timer);
        this.#wake = null;
      });
    }
    return this.#inbox.shift()!;
  }

  /** Responses received and not read yet. */
  get unread(): number {
    return this.#inbox.length;
  }

  /** How the stream ended. */
  get ended(): Promise<grpc.StatusObject> {
    return this.#ended;
  }

  async close(): Promise<void> {
    this.#call.end();
    await this.#ended;
    this.#client.close();
  }
}
