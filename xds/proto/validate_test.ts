import assert from "node:assert/strict";
import { parse } from "yaml";
import rulesJson from "./envoy_rules.json" with { type: "json" };
import { resourceViolations, violations } from "./validate.ts";

const GOLDENS = new URL("../generate/testdata/", import.meta.url);

Deno.test("every resource of every generator golden keeps Envoy's validation rules", async () => {
  let checked = 0;
  for await (const entry of Deno.readDir(GOLDENS)) {
    if (!entry.name.endsWith(".golden.yaml")) continue;
    const doc = parse(await Deno.readTextFile(new URL(entry.name, GOLDENS))) as Record<
      string,
      { name: string; typeUrl: string; body: unknown }[] | null
    >;
    for (const [kind, resources] of Object.entries(doc)) {
      for (const r of resources ?? []) {
        const typeName = r.typeUrl.slice(r.typeUrl.indexOf("/") + 1);
        assert.deepEqual(
          resourceViolations(typeName, r.body),
          [],
          `${entry.name} ${kind} ${r.name}`,
        );
        checked++;
      }
    }
  }
  // The goldens hold listeners, routes, clusters, endpoints and secrets: a few dozen at least.
  assert.ok(checked > 50, `only ${checked} golden resources found`);
});

/** One deliberately broken (or, for `ok`, deliberately borderline) message. */
interface Case {
  /** What it shows. */
  title: string;
  /** The PGV rule keys it exercises, as `envoy_rules.json` spells them (see `ruleKeys`). */
  covers: string[];
  typeName: string;
  /** Canonical form (`decodeStrict`'s); `encode: true` sends it through the codec first. */
  message: Record<string, unknown>;
  encode?: boolean;
  /** The violations expected, as `path [rule]`; empty for a valid message. */
  expect: string[];
}

const LISTENER = "envoy.config.listener.v3.Listener";
const HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const HCM_URL = `type.googleapis.com/${HCM}`;
const ROUTER_URL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const RBAC_URL = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/** A minimal valid listener around one HTTP connection manager, with `hcm` merged in. */
function listenerWith(hcm: Record<string, unknown>): Record<string, unknown> {
  return {
    name: "in",
    address: { socket_address: { address: "0.0.0.0", port_value: 15006 } },
    filter_chains: [{
      filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: {
          "@type": HCM_URL,
          stat_prefix: "in",
          rds: { route_config_name: "in", config_source: { ads: {}, resource_api_version: "V3" } },
          http_filters: [{
            name: "envoy.filters.http.router",
            typed_config: { "@type": ROUTER_URL },
          }],
          ...hcm,
        },
      }],
    }],
  };
}

const CASES: Case[] = [
  {
    title: "an empty cluster name",
    covers: ["string.min_len"],
    typeName: "envoy.config.cluster.v3.Cluster",
    message: {
      name: "",
      type: "EDS",
      connect_timeout: "1s",
      eds_cluster_config: { eds_config: { ads: {} } },
    },
    expect: ["name [string.min_len]"],
  },
  {
    title: "an omitted string counts as empty, as in PGV",
    covers: ["string.min_len"],
    typeName: "envoy.config.core.v3.HeaderValue",
    message: { value: "v" },
    expect: ["key [string.min_len]"],
  },
  {
    title: "a zero connect timeout",
    covers: ["duration.gt"],
    typeName: "envoy.config.cluster.v3.Cluster",
    message: { name: "c", connect_timeout: "0s" },
    expect: ["connect_timeout [duration.gt]"],
  },
  {
    title: "a negative stats flush interval",
    covers: ["duration.gte", "duration.lt"],
    typeName: "envoy.config.bootstrap.v3.Bootstrap",
    message: { stats_flush_interval: "-1s" },
    expect: ["stats_flush_interval [duration.gte]"],
  },
  {
    title: "a stats flush interval of 300 s",
    covers: ["duration.lt"],
    typeName: "envoy.config.bootstrap.v3.Bootstrap",
    message: { stats_flush_interval: "300s" },
    expect: ["stats_flush_interval [duration.lt]"],
  },
  {
    title: "a QUIC idle timeout over its limit",
    covers: ["duration.lte", "duration.gte"],
    typeName: "envoy.config.core.v3.QuicProtocolOptions",
    message: { idle_network_timeout: "601s" },
    expect: ["idle_network_timeout [duration.lte]"],
  },
  {
    title: "crossed bounds mean outside the range: a keepalive of 0 or at least 1 s, not 0.5 s",
    covers: ["duration.lte", "duration.gte"],
    typeName: "envoy.config.core.v3.QuicKeepAliveSettings",
    message: { initial_interval: "0s", max_interval: "0.500s" },
    expect: ["max_interval [duration.gte]"],
  },
  {
    title: "a health check without its required interval",
    covers: ["duration.required", "oneof.required"],
    typeName: "envoy.config.core.v3.HealthCheck",
    message: { timeout: "1s", unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} },
    expect: ["interval [duration.required]"],
  },
  {
    title: "a route without an action",
    covers: ["oneof.required"],
    typeName: "envoy.config.route.v3.RouteConfiguration",
    message: {
      name: "r",
      virtual_hosts: [{ name: "v", domains: ["*"], routes: [{ match: { prefix: "/" } }] }],
    },
    encode: true,
    expect: ["virtual_hosts[0].routes[0].action [oneof.required]"],
  },
  {
    title: "a route without a match",
    covers: ["message.required"],
    typeName: "envoy.config.route.v3.Route",
    message: { route: { cluster: "c" } },
    expect: ["match [message.required]"],
  },
  {
    title: "a virtual host without domains",
    covers: ["repeated.min_items"],
    typeName: "envoy.config.route.v3.VirtualHost",
    message: { name: "v", domains: [] },
    expect: ["domains [repeated.min_items]"],
  },
  {
    title: "a domain with a line feed; a header name with a space is fine when strict is false",
    covers: ["items.string.well_known_regex", "items.string.strict", "string.strict"],
    typeName: "envoy.config.route.v3.VirtualHost",
    message: { name: "v", domains: ["a.example\nb"], request_headers_to_remove: ["x bad"] },
    expect: ["domains[0] [repeated.items.string.well_known_regex]"],
  },
  {
    title: "a header to add whose name has a NUL, inside a listener's typed config (Any)",
    covers: ["string.well_known_regex"],
    typeName: LISTENER,
    message: listenerWith({
      route_config: {
        name: "in",
        request_headers_to_add: [{ header: { key: "x-a\u0000", value: "v" } }],
      },
      rds: undefined,
    }),
    encode: true,
    expect: [
      "filter_chains[0].filters[0].typed_config.route_config.request_headers_to_add[0].header.key [string.well_known_regex]",
    ],
  },
  {
    title: "a connection manager with an empty stat prefix, inside an Any",
    covers: ["string.min_len"],
    typeName: LISTENER,
    message: listenerWith({ stat_prefix: "" }),
    encode: true,
    expect: ["filter_chains[0].filters[0].typed_config.stat_prefix [string.min_len]"],
  },
  {
    title: "a connection manager with neither rds nor route_config",
    covers: ["oneof.required"],
    typeName: LISTENER,
    message: listenerWith({ rds: undefined }),
    encode: true,
    expect: ["filter_chains[0].filters[0].typed_config.route_specifier [oneof.required]"],
  },
  {
    title: "an RBAC policy that names no permission",
    covers: ["repeated.min_items"],
    typeName: LISTENER,
    message: listenerWith({
      http_filters: [
        {
          name: "envoy.filters.http.rbac",
          typed_config: {
            "@type": RBAC_URL,
            rules: { policies: { deny: { permissions: [], principals: [{ any: true }] } } },
          },
        },
        { name: "envoy.filters.http.router", typed_config: { "@type": ROUTER_URL } },
      ],
    }),
    encode: true,
    expect: [
      `filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.rules.policies["deny"].permissions [repeated.min_items]`,
    ],
  },
  {
    title: "an RBAC principal `any: false`",
    covers: ["bool.const"],
    typeName: "envoy.config.rbac.v3.Principal",
    message: { any: false },
    expect: ["any [bool.const]"],
  },
  {
    title: "an endpoint weight of zero (a wrapper field)",
    covers: ["uint32.gte"],
    typeName: "envoy.config.endpoint.v3.ClusterLoadAssignment",
    message: {
      cluster_name: "c",
      endpoints: [{
        lb_endpoints: [{
          endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: 80 } } },
          load_balancing_weight: 0,
        }],
      }],
    },
    encode: true,
    expect: ["endpoints[0].lb_endpoints[0].load_balancing_weight [uint32.gte]"],
  },
  {
    title: "an unset wrapper is not checked",
    covers: ["uint32.gte"],
    typeName: "envoy.config.endpoint.v3.LbEndpoint",
    message: { endpoint: {} },
    expect: [],
  },
  {
    title: "a connection manager's header limit of zero and one over 8192",
    covers: ["uint32.gt", "uint32.lte"],
    typeName: HCM,
    message: {
      stat_prefix: "s",
      rds: { route_config_name: "r", config_source: { ads: {} } },
      max_request_headers_kb: 8193,
    },
    expect: ["max_request_headers_kb [uint32.lte]"],
  },
  {
    title: "a listener accepting zero connections per socket event",
    covers: ["uint32.gt"],
    typeName: LISTENER,
    message: { name: "l", max_connections_to_accept_per_socket_event: 0 },
    expect: ["max_connections_to_accept_per_socket_event [uint32.gt]"],
  },
  {
    title: "a fault abort status outside 200..599",
    covers: ["uint32.lt", "uint32.gte"],
    typeName: "envoy.extensions.filters.http.fault.v3.FaultAbort",
    message: { http_status: 600 },
    expect: ["http_status [uint32.lt]"],
  },
  {
    title: "a ring hash table size over its limit and a minimum ring of zero",
    covers: ["uint64.lte", "uint64.gte"],
    typeName: "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
    message: { minimum_ring_size: "0", maximum_ring_size: "8388609" },
    expect: ["minimum_ring_size [uint64.gte]", "maximum_ring_size [uint64.lte]"],
  },
  {
    title: "a UDP datagram size of zero and of 65536",
    covers: ["uint64.gt", "uint64.lt"],
    typeName: "envoy.config.core.v3.UdpSocketConfig",
    message: { max_rx_datagram_size: 65536 },
    expect: ["max_rx_datagram_size [uint64.lt]"],
  },
  {
    title: "a percentage over 100",
    covers: ["double.lte", "double.gte"],
    typeName: "envoy.type.v3.Percent",
    message: { value: 100.5 },
    expect: ["value [double.lte]"],
  },
  {
    title: "a negative preconnect ratio",
    covers: ["double.gte"],
    typeName: "envoy.config.cluster.v3.Cluster.PreconnectPolicy",
    message: { per_upstream_preconnect_ratio: 0.5 },
    expect: ["per_upstream_preconnect_ratio [double.gte]"],
  },
  {
    title: "a zero fill rate",
    covers: ["double.gt"],
    typeName: "envoy.config.core.v3.RateLimitSettings",
    message: { fill_rate: 0 },
    expect: ["fill_rate [double.gt]"],
  },
  {
    title: "a negative weighted round-robin error penalty",
    covers: ["float.gte"],
    typeName:
      "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
    message: { error_utilization_penalty: -1 },
    expect: ["error_utilization_penalty [float.gte]"],
  },
  {
    title: "an enum value the descriptor does not name",
    covers: ["enum.defined_only"],
    typeName: "envoy.config.cluster.v3.Cluster",
    message: { name: "c", type: 42, connect_timeout: "1s" },
    expect: ["type [enum.defined_only]"],
  },
  {
    title: "an unspecified SAN type (the omitted default)",
    covers: ["enum.not_in", "enum.defined_only"],
    typeName: "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher",
    message: { matcher: { exact: "spiffe://x/ns/a/sa/b" } },
    expect: ["san_type [enum.not_in]"],
  },
  {
    title: "an undefined gRPC status in an access log filter",
    covers: ["items.enum.defined_only"],
    typeName: "envoy.config.accesslog.v3.GrpcStatusFilter",
    message: { statuses: ["OK", 99] },
    expect: ["statuses[1] [repeated.items.enum.defined_only]"],
  },
  {
    title: "a header to remove that is empty",
    covers: ["items.string.min_len"],
    typeName: "envoy.config.route.v3.Route",
    message: { match: { prefix: "/" }, route: { cluster: "c" }, request_headers_to_remove: [""] },
    expect: ["request_headers_to_remove[0] [repeated.items.string.min_len]"],
  },
  {
    title: "a router strict-check header outside its list",
    covers: ["items.string.in"],
    typeName: "envoy.extensions.filters.http.router.v3.Router",
    message: { strict_check_headers: ["x-envoy-max-retries", "x-other"] },
    expect: ["strict_check_headers[1] [repeated.items.string.in]"],
  },
  {
    title: "a scheme to overwrite other than http or https",
    covers: ["string.in"],
    typeName: "envoy.config.core.v3.SchemeHeaderTransformation",
    message: { scheme_to_overwrite: "ftp" },
    expect: ["scheme_to_overwrite [string.in]"],
  },
  {
    title: "a certificate hash too long and an SPKI too short",
    covers: ["items.string.max_bytes", "items.string.min_len"],
    typeName: "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
    message: { verify_certificate_hash: ["a".repeat(96)], verify_certificate_spki: ["short"] },
    expect: [
      "verify_certificate_hash[0] [repeated.items.string.max_bytes]",
      "verify_certificate_spki[0] [repeated.items.string.min_len]",
    ],
  },
  {
    title: "a header value over 16 KiB",
    covers: ["string.max_bytes"],
    typeName: "envoy.config.core.v3.HeaderValue",
    message: { key: "x", value: "v".repeat(16385) },
    expect: ["value [string.max_bytes]"],
  },
  {
    title: "a raw header value over 16 KiB",
    covers: ["bytes.max_len", "bytes.min_len"],
    typeName: "envoy.config.core.v3.HeaderValue",
    message: { key: "x", raw_value: btoa("v".repeat(16385)) },
    expect: ["raw_value [bytes.max_len]"],
  },
  {
    title: "a path-separated prefix ending in a slash",
    covers: ["string.pattern"],
    typeName: "envoy.config.route.v3.RouteMatch",
    message: { path_separated_prefix: "/api/" },
    expect: ["path_separated_prefix [string.pattern]"],
  },
  {
    title: "an empty hostname passes an ignore_empty rule",
    covers: ["string.ignore_empty"],
    typeName: "envoy.config.core.v3.UpstreamHttpProtocolOptions",
    message: { override_auto_sni_header: "" },
    expect: [],
  },
  {
    title: "a header with a line feed fails the same ignore_empty rule",
    covers: ["string.ignore_empty", "string.well_known_regex"],
    typeName: "envoy.config.core.v3.UpstreamHttpProtocolOptions",
    message: { override_auto_sni_header: "x\ny" },
    expect: ["override_auto_sni_header [string.well_known_regex]"],
  },
  {
    title: "too many request headers to add",
    covers: ["repeated.max_items"],
    typeName: "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    message: {
      stat_prefix: "rl",
      response_headers_to_add: Array.from(
        { length: 11 },
        (_, i) => ({ header: { key: `x-${i}`, value: "v" } }),
      ),
    },
    expect: ["response_headers_to_add [repeated.max_items]"],
  },
  {
    title: "histogram buckets repeated and not positive",
    covers: ["repeated.unique", "items.double.gt"],
    typeName: "envoy.config.metrics.v3.HistogramBucketSettings",
    message: { match: { exact: "x" }, buckets: [1, 1, 0] },
    expect: ["buckets [repeated.unique]", "buckets[2] [repeated.items.double.gt]"],
  },
  {
    title: "a source port of zero in a filter chain match, and one over 65535",
    covers: ["items.uint32.gte", "items.uint32.lte"],
    typeName: "envoy.config.listener.v3.FilterChainMatch",
    message: { source_ports: [0, 65536] },
    expect: [
      "source_ports[0] [repeated.items.uint32.gte]",
      "source_ports[1] [repeated.items.uint32.lte]",
    ],
  },
  {
    title: "a proxy-protocol TLV type over 255",
    covers: ["items.uint32.lt"],
    typeName: "envoy.config.core.v3.ProxyProtocolPassThroughTLVs",
    message: { tlv_type: [256] },
    expect: ["tlv_type[0] [repeated.items.uint32.lt]"],
  },
  {
    title: "metadata under an empty filter name",
    covers: ["keys.string.min_len"],
    typeName: "envoy.config.core.v3.Metadata",
    message: { filter_metadata: { "": { a: 1 } } },
    expect: [`filter_metadata[""] [map.keys.string.min_len]`],
  },
  {
    title: "a matcher map with no entries",
    covers: ["map.min_pairs"],
    typeName: "xds.type.matcher.v3.Matcher.MatcherTree.MatchMap",
    message: { map: {} },
    expect: ["map [map.min_pairs]"],
  },
  {
    title: "a typed extension config without its config",
    covers: ["any.required"],
    typeName: "envoy.config.core.v3.TypedExtensionConfig",
    message: { name: "x" },
    expect: ["typed_config [any.required]"],
  },
  {
    title: "a bootstrap that turns off stats flushing on admin",
    covers: ["bool.const"],
    typeName: "envoy.config.bootstrap.v3.Bootstrap",
    message: { stats_flush_on_admin: false },
    expect: ["stats_flush_on_admin [bool.const]"],
  },
];

/** Every rule key in the rules file, as `kind.key`, with `items.` / `keys.` for element rules. */
function ruleKeys(): Set<string> {
  const keys = new Set<string>();
  const walk = (rules: Record<string, Record<string, unknown>>, prefix: string) => {
    for (const [kind, body] of Object.entries(rules)) {
      for (const [key, value] of Object.entries(body)) {
        if (kind === "repeated" && key === "items") walk(value as typeof rules, "items.");
        else if (kind === "map" && (key === "keys" || key === "values")) {
          walk(value as typeof rules, `${key}.`);
        } else keys.add(`${prefix}${kind}.${key}`);
      }
    }
  };
  for (
    const type of Object.values(
      rulesJson as unknown as Record<
        string,
        { fields?: Record<string, never>; required_oneofs?: string[] }
      >,
    )
  ) {
    for (const rules of Object.values(type.fields ?? {})) walk(rules, "");
    if (type.required_oneofs !== undefined) keys.add("oneof.required");
  }
  return keys;
}

Deno.test("each rule kind Envoy's protos use is caught, at the field, with the rule named", async (t) => {
  for (const c of CASES) {
    await t.step(c.title, () => {
      const found = c.encode
        ? resourceViolations(c.typeName, c.message)
        : violations(c.typeName, c.message);
      assert.deepEqual(found.map((v) => `${v.path} [${v.rule}]`), c.expect);
      for (const v of found) assert.ok(v.message.length > 0);
    });
  }
});

Deno.test("the table covers every rule key in envoy_rules.json", () => {
  const covered = new Set(CASES.flatMap((c) => c.covers));
  const missing = [...ruleKeys()].filter((k) => !covered.has(k)).sort();
  assert.deepEqual(missing, [], "rule keys without a case in this table");
});

Deno.test("a violation message says what is wrong in words", () => {
  const [v] = violations("envoy.config.cluster.v3.Cluster", {
    name: "c",
    connect_timeout: "1s",
    dns_refresh_rate: "0.000500s",
  });
  assert.deepEqual(v, {
    path: "dns_refresh_rate",
    rule: "duration.gt",
    message: "must be > 0.001s, got 0.0005s",
  });
});
