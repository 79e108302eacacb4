/**
 * What the xDS generators read and what they return. The inputs are plain
 * data the registry fills in once per push; the outputs are Envoy resources
 * in the snake_case JSON form of Envoy's protobufs (Any as
 * `{"@type": "type.googleapis.com/…", …}`, Durations as `"5s"`).
 */
import type { Protocol } from "../../core/model.ts";
import type { PolicySet } from "../../core/policy/model.ts";

export type { PolicySet, Protocol };

/** A JSON value as it appears in a resource body. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
/** A JSON object: the body of an Envoy resource or a part of it. */
export type JsonObject = { [key: string]: JsonValue };

/** One port of a service. */
export interface MeshServicePort {
  port: number;
  protocol: Protocol;
}

/** A service as the registry knows it. */
export interface MeshService {
  namespace: string;
  name: string;
  ports: readonly MeshServicePort[];
  labels: Readonly<Record<string, string>>;
}

/** Where an instance runs; both fields are `""` when the node has no such label. */
export interface Locality {
  region: string;
  zone: string;
}

/** One instance of a service on a node, as traffic sees it. */
export interface MeshEndpoint {
  service: string;
  namespace: string;
  node: string;
  /** An IP literal: xDS clients refuse host names. */
  address: string;
  /** The application's port; it is the service port the instance serves. */
  port: number;
  /** The port of the node's sidecar listener for this instance; `null` when it runs without one. */
  inboundPort: number | null;
  protocol: Protocol;
  labels: Readonly<Record<string, string>>;
  /** True when the instance's health is `healthy` (neither draining nor unhealthy). */
  healthy: boolean;
  /** From the node's `region` and `zone` labels. */
  locality: Locality;
  /** SPIFFE ID of the instance's node: the name its sidecar's certificate carries. */
  identity: string;
}

/**
 * One consistent snapshot of the registry, built once per push and shared by
 * every proxy's generation (Istio's push context).
 */
export interface MeshView {
  trustDomain: string;
  /** PEM of every root the mesh trusts now (several during a root rotation); must not be empty. */
  trustBundlePem: string;
  services: readonly MeshService[];
  endpoints: readonly MeshEndpoint[];
  /**
   * Every stored policy, already validated. Default: `EMPTY_POLICY_SET`
   * (`core/policy/model.ts`), the mesh's defaults everywhere.
   */
  policies?: PolicySet;
}

/** One local instance behind a sidecar: peers reach it on `inboundPort`, the app listens on `appPort`. */
export interface InboundEntry {
  /** The instance's local id, unique on the node. */
  id: string;
  service: string;
  namespace: string;
  inboundPort: number;
  appPort: number;
  protocol: Protocol;
}

/** One service the local app reaches through `127.0.0.1:localPort` (Consul's explicit upstreams). */
export interface UpstreamEntry {
  service: string;
  namespace: string;
  localPort: number;
  /** The service port to reach. Default: the service's lowest port. */
  port?: number;
}

/** An Envoy sidecar on a VM asking for its configuration. */
export interface SidecarRequest {
  kind: "sidecar";
  /** Node name. */
  node: string;
  /** SPIFFE ID from the caller's mTLS certificate, never from its node metadata. */
  identity: string;
  /** The node's address; inbound listeners bind here. */
  hostAddress: string;
  inbound: readonly InboundEntry[];
  upstreams: readonly UpstreamEntry[];
  /**
   * Where the node runs (its `region` and `zone` labels), for locality-aware
   * load balancing. Default: unknown, which prefers no locality.
   */
  locality?: Locality;
}

/** A proxyless gRPC client (`@grpc/grpc-js-xds`) asking for its configuration. */
export interface ProxylessRequest {
  kind: "proxyless";
  /** Node name. */
  node: string;
  /** SPIFFE ID from the caller's mTLS certificate; its namespace enables short names. */
  identity: string;
  /**
   * Where the client runs, for locality-aware load balancing. Default:
   * unknown, which prefers no locality. Clients of one namespace share a
   * snapshot only when they also share a locality.
   */
  locality?: Locality;
  /**
   * The client's bootstrap has the mesh's certificate provider (node
   * metadata, `core/grpc_bootstrap.ts`): in STRICT mode it gets TLS
   * contexts and server Listeners (`proxyless_security.ts`). Default: false.
   */
  mtls?: boolean;
}

/** Who is asking. */
export type ProxyRequest = SidecarRequest | ProxylessRequest;

/** One named Envoy resource with its content version. */
export interface Resource {
  name: string;
  /** `type.googleapis.com/<full protobuf type name>`. */
  typeUrl: string;
  /** The resource in Envoy's snake_case JSON form. */
  body: JsonObject;
  /** First 16 hex digits of the SHA-256 of the body's canonical JSON: equal content, equal version. */
  version: string;
}

/**
 * The xDS resource kinds of a snapshot, in make-before-break order for an ADS
 * push: clusters before the endpoints and listeners that use them, listeners
 * before their routes.
 */
export const RESOURCE_KINDS = ["clusters", "endpoints", "listeners", "routes", "secrets"] as const;
/** One of {@link RESOURCE_KINDS}. */
export type ResourceKind = typeof RESOURCE_KINDS[number];

/** Everything one proxy gets, each list sorted by name (go-control-plane's snapshot). */
export type ProxySnapshot = { [K in ResourceKind]: Resource[] };
