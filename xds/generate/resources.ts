/**
 * Builders of whole Envoy resources, one per kind of resource we emit. They
 * take already-resolved inputs (names, ports, identities) and decide nothing
 * about the mesh; the generators decide what to build.
 *
 * Bodies are in the strict codec's canonical form (scalar defaults and empty
 * lists left out), so that a golden file shows exactly what goes on the wire
 * and decoding what we send gives back the very same object.
 */
import { compareStrings } from "./canonical.ts";
import {
  adsConfigSource,
  anyOf,
  downstreamMtls,
  duration,
  faultFilter,
  http2ProtocolOptions,
  httpConnectionManager,
  httpConnectionManagerFilter,
  socketAddress,
  tcpProxyFilter,
  tlsInspectorFilter,
  TYPE,
} from "./envoy.ts";
import type { InboundEntry, JsonObject, Locality, Protocol } from "./model.ts";
import {
  inboundClusterName,
  inboundListenerName,
  inboundRouteConfigName,
  outboundListenerName,
  ROOT_CA_SECRET,
} from "./names.ts";

/** True when Envoy proxies `protocol` as HTTP (with an HttpConnectionManager) rather than TCP. */
export function isHttp(protocol: Protocol): boolean {
  return protocol !== "tcp";
}

/** True when the upstream must be spoken to in HTTP/2. */
export function usesHttp2(protocol: Protocol): boolean {
  return protocol === "grpc" || protocol === "http2";
}

/** A route configuration with one virtual host whose `routes` are tried in order. */
export function routeConfiguration(
  name: string,
  domains: readonly string[],
  routes: readonly JsonObject[],
): JsonObject {
  return { name, virtual_hosts: [{ name, domains: [...domains], routes: [...routes] }] };
}

/**
 * A route from an inbound listener to the local app: no timeout, so that
 * gRPC streams and long polls live on.
 */
export function appRoute(cluster: string, match: JsonObject): JsonObject {
  return { match, route: { cluster, timeout: duration(0) } };
}

/** Options of {@link inboundListener}. */
export interface InboundOptions {
  /** Accept plaintext too, beside mTLS (MeshConfig's `mtls.mode: PERMISSIVE`). Default: false. */
  permissive?: boolean;
  /**
   * Filters before the one that proxies: HTTP filters before the router for
   * HTTP, network filters before `tcp_proxy` for TCP. Default: none.
   */
  filters?: readonly JsonObject[];
  /** HTTP only: more HttpConnectionManager fields (see `connection_manager.ts`). Default: none. */
  connectionManager?: JsonObject;
  /**
   * Peers may dial the host over IPv6. With `hostAddress` `0.0.0.0` the
   * listener then also binds `::` (IPv6 only, so the two sockets do not
   * clash); `::` alone with `ipv4_compat` would fail on a host without IPv6.
   * Default: false.
   */
  ipv6?: boolean;
}

/**
 * How long a PERMISSIVE TCP listener's TLS inspector waits for the client's
 * first bytes before it takes the connection for plaintext. A TLS client
 * sends its ClientHello at once; a plaintext client of a protocol where the
 * server speaks first (MySQL, SMTP) sends nothing until it has the
 * greeting, and by Envoy's default the inspector would wait 15 s and then
 * close the connection (Listener.listener_filters_timeout and
 * continue_on_listener_filters_timeout in
 * api/envoy/config/listener/v3/listener.proto). HTTP clients always speak
 * first, so HTTP listeners keep the default.
 */
const SERVER_FIRST_PLAINTEXT: JsonObject = {
  listener_filters_timeout: duration(1_000),
  continue_on_listener_filters_timeout: true,
};

/**
 * `inbound|<inboundPort>` on `hostAddress`: mesh mTLS, then HTTP routing or
 * TCP proxying to the local app's cluster `inbound|<appPort>`. When
 * permissive, a TLS inspector tells TLS from plaintext, and each gets a
 * filter chain of its own with the same filters.
 */
export function inboundListener(
  entry: InboundEntry,
  hostAddress: string,
  trustDomain: string,
  options: InboundOptions = {},
): JsonObject {
  const name = inboundListenerName(entry.inboundPort);
  const statPrefix = `inbound_${entry.inboundPort}`;
  const cluster = inboundClusterName(entry.appPort);
  const before = options.filters ?? [];
  // HTTP routes come over RDS (`inbound|<inboundPort>`, see {@link inboundRoutes}): Envoy
  // builds one route table per RDS name and config source however many connection managers
  // use it, so both filter chains of a PERMISSIVE listener share its rate limit buckets, and a
  // listener change (an AuthorizationPolicy edit) keeps them.
  const filters = isHttp(entry.protocol)
    ? [
      httpConnectionManagerFilter(statPrefix, { rds: inboundRouteConfigName(entry.inboundPort) }, {
        httpFilters: before,
        settings: options.connectionManager ?? {},
      }),
    ]
    : [...before, tcpProxyFilter(statPrefix, cluster)];
  const mtls = { filters, transport_socket: downstreamMtls(trustDomain) };
  return {
    name,
    address: socketAddress(hostAddress, entry.inboundPort),
    ...(options.ipv6 && hostAddress === "0.0.0.0"
      ? { additional_addresses: [{ address: socketAddress("::", entry.inboundPort) }] }
      : {}),
    traffic_direction: "INBOUND",
    ...(options.permissive
      ? {
        listener_filters: [tlsInspectorFilter()],
        ...(isHttp(entry.protocol) ? {} : SERVER_FIRST_PLAINTEXT),
        filter_chains: [
          { filter_chain_match: { transport_protocol: "tls" }, ...mtls },
          { filter_chain_match: { transport_protocol: "raw_buffer" }, filters },
        ],
      }
      : { filter_chains: [mtls] }),
  };
}

/**
 * The route configuration `inbound|<inboundPort>` of an HTTP inbound
 * listener: `routes` to the app (default: one route for everything).
 */
export function inboundRoutes(entry: InboundEntry, routes?: readonly JsonObject[]): JsonObject {
  const name = inboundRouteConfigName(entry.inboundPort);
  const cluster = inboundClusterName(entry.appPort);
  return routeConfiguration(name, ["*"], routes ?? [appRoute(cluster, { prefix: "/" })]);
}

/** `inbound|<appPort>`: a STATIC cluster to the app on `127.0.0.1:<appPort>`. */
export function inboundCluster(
  appPort: number,
  protocol: Protocol,
  connectTimeoutMs: number,
): JsonObject {
  const name = inboundClusterName(appPort);
  return {
    name,
    type: "STATIC",
    connect_timeout: duration(connectTimeoutMs),
    load_assignment: {
      cluster_name: name,
      endpoints: [{
        lb_endpoints: [{ endpoint: { address: socketAddress("127.0.0.1", appPort) } }],
      }],
    },
    ...(usesHttp2(protocol) ? { typed_extension_protocol_options: http2ProtocolOptions() } : {}),
  };
}

/** Where an outbound listener sends traffic. */
export interface OutboundTarget {
  protocol: Protocol;
  /** The cluster, for TCP. */
  cluster: string;
  /** The route configuration (RDS), for HTTP. */
  routeConfig: string;
  /** HTTP only: more HttpConnectionManager fields (see `connection_manager.ts`). Default: none. */
  connectionManager?: JsonObject;
  /** TCP only: the TCP proxy's `hash_policy`, for a hashing load balancer. Default: none. */
  tcpHashPolicy?: readonly JsonObject[];
}

/** `outbound|<localPort>` on `127.0.0.1`: HTTP through RDS, or TCP to the cluster. */
export function outboundListener(localPort: number, target: OutboundTarget): JsonObject {
  const statPrefix = `outbound_${localPort}`;
  const filter = isHttp(target.protocol)
    ? httpConnectionManagerFilter(statPrefix, { rds: target.routeConfig }, {
      httpFilters: [faultFilter()],
      settings: target.connectionManager ?? {},
    })
    : tcpProxyFilter(statPrefix, target.cluster, target.tcpHashPolicy);
  return {
    name: outboundListenerName(localPort),
    address: socketAddress("127.0.0.1", localPort),
    traffic_direction: "OUTBOUND",
    filter_chains: [{ filters: [filter] }],
  };
}

/**
 * A listener for a proxyless gRPC client: no socket, just an
 * HttpConnectionManager that names its route configuration (RDS over ADS)
 * and runs the fault filter, then the router, the two filters grpc-js-xds
 * knows on the client side (the router last, as it requires).
 */
export function apiListener(name: string, routeConfig: string): JsonObject {
  return {
    name,
    api_listener: {
      api_listener: anyOf(
        TYPE.httpConnectionManager,
        httpConnectionManager(name, { rds: routeConfig }, { httpFilters: [faultFilter()] }),
      ),
    },
  };
}

/** Options of {@link edsCluster}. */
export interface EdsClusterOptions {
  connectTimeoutMs: number;
  /** A `transport_socket` (e.g. upstream mTLS); none means plaintext. */
  transportSocket?: JsonObject;
  /** Speak HTTP/2 to the hosts. Default: false. */
  http2?: boolean;
  /**
   * Load balancing, circuit breakers and outlier detection, as Cluster
   * fields. Default: none (round robin, Envoy's default thresholds, no
   * outlier detection).
   */
  traffic?: JsonObject;
}

/**
 * A cluster whose hosts come from the EDS resource of the same name over ADS
 * (grpc-js-xds needs `eds_config.ads`).
 */
export function edsCluster(name: string, options: EdsClusterOptions): JsonObject {
  return {
    name,
    type: "EDS",
    eds_cluster_config: { service_name: name, eds_config: adsConfigSource() },
    connect_timeout: duration(options.connectTimeoutMs),
    ...options.traffic,
    ...(options.transportSocket ? { transport_socket: options.transportSocket } : {}),
    ...(options.http2 ? { typed_extension_protocol_options: http2ProtocolOptions() } : {}),
  };
}

/** One host of a {@link clusterLoadAssignment}. */
export interface LbHost {
  address: string;
  port: number;
  locality: Locality;
}

/**
 * The endpoints of cluster `clusterName`, grouped by locality. Every
 * locality carries a `locality` message and a weight equal to its number of
 * hosts: grpc-js-xds silently drops a locality without either. A repeated
 * address and port is kept once, because grpc-js-xds rejects the whole
 * resource over a duplicate. Callers pass only hosts that should get
 * traffic; no hosts gives no `endpoints` at all (an empty list, in protobuf
 * terms), which still answers the EDS request. `priorityOf` ranks
 * localities for locality-aware routing (0 first); by default all share
 * priority 0.
 */
export function clusterLoadAssignment(
  clusterName: string,
  hosts: readonly LbHost[],
  priorityOf: (locality: Locality) => number = () => 0,
): JsonObject {
  const sorted = [...hosts].sort((a, b) =>
    priorityOf(a.locality) - priorityOf(b.locality) ||
    compareStrings(a.locality.region, b.locality.region) ||
    compareStrings(a.locality.zone, b.locality.zone) ||
    compareStrings(a.address, b.address) ||
    a.port - b.port
  );
  const groups = new Map<string, { locality: Locality; hosts: LbHost[] }>();
  const seen = new Set<string>();
  for (const h of sorted) {
    const hostKey = JSON.stringify([h.address, h.port]);
    if (seen.has(hostKey)) continue;
    seen.add(hostKey);
    const key = JSON.stringify([h.locality.region, h.locality.zone]);
    const group = groups.get(key);
    if (group) group.hosts.push(h);
    else groups.set(key, { locality: h.locality, hosts: [h] });
  }
  if (groups.size === 0) return { cluster_name: clusterName };
  return {
    cluster_name: clusterName,
    endpoints: [...groups.values()].map((g) => {
      const priority = priorityOf(g.locality);
      return {
        locality: {
          ...(g.locality.region ? { region: g.locality.region } : {}),
          ...(g.locality.zone ? { zone: g.locality.zone } : {}),
        },
        lb_endpoints: g.hosts.map((h) => ({
          endpoint: { address: socketAddress(h.address, h.port) },
          health_status: "HEALTHY",
        })),
        load_balancing_weight: g.hosts.length,
        ...(priority > 0 ? { priority } : {}),
      };
    }),
  };
}

/**
 * `ROOTCA`: the trust bundle as a validation context. The workload
 * certificate `default` is not built here: the agent on the host serves it
 * from its local key, which never leaves the host.
 */
export function rootCaSecret(trustBundlePem: string): JsonObject {
  return {
    name: ROOT_CA_SECRET,
    validation_context: { trusted_ca: { inline_string: trustBundlePem } },
  };
}
