/**
 * Small fragments of Envoy configuration that the resource builders share:
 * protobuf type names, config sources, filters and TLS contexts. Every object
 * is snake_case JSON as Envoy's protobufs define it.
 */
import { typeUrl } from "../../core/xds_type_urls.ts";
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
  fault: "envoy.extensions.filters.http.fault.v3.HTTPFault",
  httpRbac: "envoy.extensions.filters.http.rbac.v3.RBAC",
  localRateLimit: "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
  tcpProxy: "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
  networkRbac: "envoy.extensions.filters.network.rbac.v3.RBAC",
  tlsInspector: "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
  downstreamTlsContext: "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
  upstreamTlsContext: "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
  httpProtocolOptions: "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
  previousHosts: "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
} as const;

// The type URL helpers live in core/ beside the resource type URLs, so the agent shares them.
export { TYPE_URL_PREFIX, typeUrl } from "../../core/xds_type_urls.ts";

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

/** The fault filter's name: routes configure it under this key of `typed_per_filter_config`. */
export const FAULT_FILTER = "envoy.filters.http.fault";

/**
 * The fault filter with no fault of its own: routes switch faults on. It
 * sits in every outbound HttpConnectionManager, used or not, because adding
 * or removing a filter changes the listener, and Envoy drains a changed
 * listener's connections; grpc-js-xds knows this filter.
 */
export function faultFilter(): JsonObject {
  return { name: FAULT_FILTER, typed_config: anyOf(TYPE.fault, {}) };
}

/** Where an HttpConnectionManager gets its routes. */
export type RouteSource =
  /** RDS over ADS, by name. */
  | { rds: string }
  /** A route configuration written into the listener. */
  | { inline: JsonObject };

/** Options of {@link httpConnectionManager}. */
export interface ConnectionManagerOptions {
  /** HTTP filters, in order, before the router. Default: none. */
  httpFilters?: readonly JsonObject[];
  /**
   * More HttpConnectionManager fields: how a sidecar treats requests (path
   * normalization, upgrades, timeouts). Default: none, Envoy's defaults.
   */
  settings?: JsonObject;
}

/** The HttpConnectionManager message (no Any wrapper): `httpFilters`, then the router. */
export function httpConnectionManager(
  statPrefix: string,
  routes: RouteSource,
  options: ConnectionManagerOptions = {},
): JsonObject {
  const routeSpecifier: JsonObject = "rds" in routes
    ? { rds: { route_config_name: routes.rds, config_source: adsConfigSource() } }
    : { route_config: routes.inline };
  return {
    stat_prefix: statPrefix,
    ...routeSpecifier,
    ...options.settings,
    http_filters: [...options.httpFilters ?? [], routerFilter()],
  };
}

/** A listener network filter running an HttpConnectionManager. */
export function httpConnectionManagerFilter(
  statPrefix: string,
  routes: RouteSource,
  options: ConnectionManagerOptions = {},
): JsonObject {
  return {
    name: "envoy.filters.network.http_connection_manager",
    typed_config: anyOf(
      TYPE.httpConnectionManager,
      httpConnectionManager(statPrefix, routes, options),
    ),
  };
}

/**
 * A listener network filter proxying TCP to one cluster; `hashPolicy` feeds
 * a hashing load balancer (default: none).
 */
export function tcpProxyFilter(
  statPrefix: string,
  cluster: string,
  hashPolicy: readonly JsonObject[] = [],
): JsonObject {
  return {
    name: "envoy.filters.network.tcp_proxy",
    typed_config: anyOf(TYPE.tcpProxy, {
      stat_prefix: statPrefix,
      cluster,
      ...(hashPolicy.length > 0 ? { hash_policy: [...hashPolicy] } : {}),
    }),
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
    typed_config: anyOf(TYPE.upstreamTlsContext, {
      common_tls_context: {
        ...commonTlsContext(sans),
        // Envoy's client side stops at TLS 1.2 unless told otherwise ("By default, it's
        // TLSv1_2 for clients and TLSv1_3 for servers": TlsParameters in
        // api/envoy/extensions/transport_sockets/tls/v3/common.proto); our servers speak 1.3.
        tls_params: { tls_maximum_protocol_version: "TLSv1_3" },
      },
    }),
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

/** Sniffs TLS on a listener, so that filter chains can match `transport_protocol`. */
export function tlsInspectorFilter(): JsonObject {
  return {
    name: "envoy.filters.listener.tls_inspector",
    typed_config: anyOf(TYPE.tlsInspector, {}),
  };
}

function scaledExactly(percent: number, scale: number): number | undefined {
  const scaled = percent * scale;
  const rounded = Math.round(scaled);
  return Math.abs(scaled - rounded) < 1e-6 ? rounded : undefined;
}

/**
 * A percentage (0–100, fractions allowed) as a FractionalPercent, with the
 * smallest denominator that holds it exactly (down to a millionth). Fields
 * at their default (numerator 0, denominator HUNDRED) are left out, as the
 * wire leaves them out.
 */
export function fractionalPercent(percent: number): JsonObject {
  const hundredths = scaledExactly(percent, 1);
  const tenThousandths = scaledExactly(percent, 100);
  const [numerator, denominator] = hundredths !== undefined
    ? [hundredths, undefined]
    : tenThousandths !== undefined
    ? [tenThousandths, "TEN_THOUSAND"]
    : [Math.round(percent * 10_000), "MILLION"];
  return {
    ...(numerator !== 0 ? { numerator } : {}),
    ...(denominator !== undefined ? { denominator } : {}),
  };
}

/** An RE2 regex, matched against the whole value as Envoy and grpc-js-xds do. */
export function regexMatcher(regex: string): JsonObject {
  return { google_re2: {}, regex };
}

/** `text` with RE2's special characters escaped. */
export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]/g, "\\$&");
}

/** A policy's string match (exactly one of `exact`, `prefix`, `regex`) as an Envoy StringMatcher. */
export function stringMatcher(
  match: { exact?: string | undefined; prefix?: string | undefined; regex?: string | undefined },
): JsonObject {
  if (match.exact !== undefined) return { exact: match.exact };
  if (match.prefix !== undefined) return { prefix: match.prefix };
  if (match.regex !== undefined) return { safe_regex: regexMatcher(match.regex) };
  throw new Error("Invalid string match: it needs one of exact, prefix, regex");
}

/** A header matcher for the `:method` pseudo-header: any of `methods`. */
export function methodMatcher(methods: readonly string[]): JsonObject {
  return {
    name: ":method",
    string_match: methods.length === 1
      ? { exact: methods[0]! }
      : { safe_regex: regexMatcher(methods.join("|")) },
  };
}

/**
 * A header to set, replacing any value it had (a HeaderValueOption), to
 * the literal `value` the operator wrote. Envoy reads header values to add
 * as format strings ("Custom request/response headers" in Envoy's HTTP
 * connection manager docs, `configuration/http/http_conn_man/headers`):
 * `%VAR%` is expanded (`%DOWNSTREAM_PEER_URI_SAN%` would leak the caller's
 * identity) and a lone `%` NACKs the route table, so every `%` is doubled,
 * which Envoy reads back as one literal `%`.
 */
export function headerToSet(key: string, value: string): JsonObject {
  return {
    header: { key, value: value.replaceAll("%", "%%") },
    append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
  };
}

/**
 * Envoy's `envoy.type.v3.StatusCode` names of the 4xx and 5xx codes: an
 * HttpStatus message takes only these (the enum is `defined_only`).
 */
const STATUS_CODE_NAMES: Readonly<Record<number, string>> = {
  400: "BadRequest",
  401: "Unauthorized",
  402: "PaymentRequired",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  407: "ProxyAuthenticationRequired",
  408: "RequestTimeout",
  409: "Conflict",
  410: "Gone",
  411: "LengthRequired",
  412: "PreconditionFailed",
  413: "PayloadTooLarge",
  414: "URITooLong",
  415: "UnsupportedMediaType",
  416: "RangeNotSatisfiable",
  417: "ExpectationFailed",
  421: "MisdirectedRequest",
  422: "UnprocessableEntity",
  423: "Locked",
  424: "FailedDependency",
  426: "UpgradeRequired",
  428: "PreconditionRequired",
  429: "TooManyRequests",
  431: "RequestHeaderFieldsTooLarge",
  500: "InternalServerError",
  501: "NotImplemented",
  502: "BadGateway",
  503: "ServiceUnavailable",
  504: "GatewayTimeout",
  505: "HTTPVersionNotSupported",
  506: "VariantAlsoNegotiates",
  507: "InsufficientStorage",
  508: "LoopDetected",
  510: "NotExtended",
  511: "NetworkAuthenticationRequired",
};

/** The StatusCode enum name of an HTTP error status, or `undefined` when Envoy's enum lacks it. */
export function statusCodeName(code: number): string | undefined {
  return STATUS_CODE_NAMES[code];
}
