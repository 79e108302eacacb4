/**
 * Small fragments of Envoy configuration that the resource builders share:
 * protobuf type names, config sources, filters and TLS contexts. Every object
 * is snake_case JSON as Envoy's protobufs define it.
 */
import type { JsonObject } from "./model.ts";
import { ROOT_CA_SECRET, WORKLOAD_CERT_SECRET } from "./names.ts";

/** Full protobuf type names of everything the generators emit. */
export const TYPE = {
  listener: "envoy.config.listener.v3.Listener",
  routeConfiguration: "envoy.config.route.v3.RouteConfiguration",
  cluster: "envoy.config.cluster.v3.Cluster",
  clusterLoadAssignment: "envoy.config.endpoint.v3.ClusterLoadAssignment",
  secret: "envoy.extensions.transport_sockets.tls.v3.Secret",
  httpConnectionManager:
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  router: "envoy.extensions.filters.http.router.v3.Router",
  tcpProxy: "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
  downstreamTlsContext: "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
  upstreamTlsContext: "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
  httpProtocolOptions: "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
} as const;

/** The prefix of every type URL. */
export const TYPE_URL_PREFIX = "type.googleapis.com/";

/** `type.googleapis.com/<typeName>`. */
export function typeUrl(typeName: string): string {
  return TYPE_URL_PREFIX + typeName;
}

/** A `google.protobuf.Any` in JSON form: the message's fields next to its `@type`. */
export function anyOf(typeName: string, fields: JsonObject): JsonObject {
  return { "@type": typeUrl(typeName), ...fields };
}

/** Milliseconds as a protobuf JSON Duration (`"5s"`, `"0.250s"`). */
export function duration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) {
    throw new RangeError(`Invalid duration ${ms}ms: must be a whole number of milliseconds >= 0`);
  }
  const seconds = Math.floor(ms / 1000);
  const rest = ms % 1000;
  return rest === 0 ? `${seconds}s` : `${seconds}.${String(rest).padStart(3, "0")}s`;
}

/** The resource comes over the same ADS stream that asked for it. */
export function adsConfigSource(): JsonObject {
  return { ads: {}, resource_api_version: "V3" };
}

/** An IP and port. */
export function socketAddress(address: string, port: number): JsonObject {
  return { socket_address: { address, port_value: port } };
}

/** A secret fetched by name over ADS. */
export function sdsSecretConfig(name: string): JsonObject {
  return { name, sds_config: adsConfigSource() };
}

/** The router, which must be the last HTTP filter (grpc-js-xds refuses anything else). */
export function routerFilter(): JsonObject {
  return { name: "envoy.filters.http.router", typed_config: anyOf(TYPE.router, {}) };
}

/** Where an HttpConnectionManager gets its routes. */
export type RouteSource =
  /** RDS over ADS, by name. */
  | { rds: string }
  /** A route configuration written into the listener. */
  | { inline: JsonObject };

/** The HttpConnectionManager message (no Any wrapper) with only the router filter. */
export function httpConnectionManager(statPrefix: string, routes: RouteSource): JsonObject {
  const routeSpecifier: JsonObject = "rds" in routes
    ? { rds: { route_config_name: routes.rds, config_source: adsConfigSource() } }
    : { route_config: routes.inline };
  return {
    stat_prefix: statPrefix,
    ...routeSpecifier,
    http_filters: [routerFilter()],
  };
}

/** A listener network filter running an HttpConnectionManager. */
export function httpConnectionManagerFilter(statPrefix: string, routes: RouteSource): JsonObject {
  return {
    name: "envoy.filters.network.http_connection_manager",
    typed_config: anyOf(TYPE.httpConnectionManager, httpConnectionManager(statPrefix, routes)),
  };
}

/** A listener network filter proxying TCP to one cluster. */
export function tcpProxyFilter(statPrefix: string, cluster: string): JsonObject {
  return {
    name: "envoy.filters.network.tcp_proxy",
    typed_config: anyOf(TYPE.tcpProxy, { stat_prefix: statPrefix, cluster }),
  };
}

/** A URI SAN matcher. */
function uriSan(matcher: JsonObject): JsonObject {
  return { san_type: "URI", matcher };
}

/**
 * Our certificate from the agent (`default`) and the trust bundle (`ROOTCA`)
 * over SDS, plus SAN rules that Envoy applies after the chain verifies.
 */
function commonTlsContext(sanMatchers: JsonObject[]): JsonObject {
  return {
    tls_certificate_sds_secret_configs: [sdsSecretConfig(WORKLOAD_CERT_SECRET)],
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: sanMatchers },
      validation_context_sds_secret_config: sdsSecretConfig(ROOT_CA_SECRET),
    },
  };
}

/**
 * The server side of mesh mTLS: a client certificate is required and must
 * chain to the bundle and carry a SPIFFE ID of our trust domain. Which
 * identities may call which service is authorisation, a later filter's job.
 */
export function downstreamMtls(trustDomain: string): JsonObject {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: anyOf(TYPE.downstreamTlsContext, {
      common_tls_context: commonTlsContext([uriSan({ prefix: `spiffe://${trustDomain}/` })]),
      require_client_certificate: true,
    }),
  };
}

/**
 * The client side of mesh mTLS: the peer must present one of `peerIdentities`
 * exactly. With no known identity nothing may match (fail closed), so the
 * list is never empty: an empty list would accept any certificate of the mesh.
 */
export function upstreamMtls(trustDomain: string, peerIdentities: readonly string[]): JsonObject {
  const sans = peerIdentities.length > 0
    ? peerIdentities.map((id) => uriSan({ exact: id }))
    : [uriSan({ exact: `spiffe://${trustDomain}/no-endpoints` })];
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: anyOf(TYPE.upstreamTlsContext, { common_tls_context: commonTlsContext(sans) }),
  };
}

/** Cluster options that make Envoy speak HTTP/2 (prior knowledge) to the upstream. */
export function http2ProtocolOptions(): JsonObject {
  return {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anyOf(TYPE.httpProtocolOptions, {
      explicit_http_config: { http2_protocol_options: {} },
    }),
  };
}
