import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import protobuf from "protobufjs";
import { EDS_TYPE_URL, typeUrl } from "../../core/xds_type_urls.ts";
import {
  decodeStrict,
  encodeStrict,
  lookupType,
  packAny,
  type ProtoJson,
  ProtoSchemaError,
} from "./codec.ts";

const LISTENER = "envoy.config.listener.v3.Listener";
const CLUSTER = "envoy.config.cluster.v3.Cluster";
const CLA = "envoy.config.endpoint.v3.ClusterLoadAssignment";
const ROUTE = "envoy.config.route.v3.RouteConfiguration";
const SECRET = "envoy.extensions.transport_sockets.tls.v3.Secret";
const HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TLS = "envoy.extensions.transport_sockets.tls.v3";
const ADS = { ads: {}, resource_api_version: "V3" };

/** An outbound HTTP listener as the generators will build it. */
const listener: ProtoJson = {
  name: "outbound|web|8080",
  address: { socket_address: { address: "127.0.0.1", port_value: 15001 } },
  filter_chains: [{
    filter_chain_match: { server_names: ["web.mesh"], transport_protocol: "tls" },
    filters: [{
      name: "envoy.filters.network.http_connection_manager",
      typed_config: {
        "@type": typeUrl(HCM),
        stat_prefix: "outbound_web",
        rds: { config_source: ADS, route_config_name: "web" },
        http_filters: [
          {
            name: "envoy.filters.http.fault",
            typed_config: { "@type": typeUrl("envoy.extensions.filters.http.fault.v3.HTTPFault") },
          },
          {
            name: "envoy.filters.http.router",
            typed_config: {
              "@type": typeUrl("envoy.extensions.filters.http.router.v3.Router"),
              suppress_envoy_headers: true,
            },
          },
        ],
        stream_idle_timeout: "0.250s",
        common_http_protocol_options: { idle_timeout: "3600s" },
        use_remote_address: false,
        access_log: [{
          name: "envoy.access_loggers.stdout",
          typed_config: {
            "@type": typeUrl("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"),
          },
        }],
      },
    }],
  }],
  listener_filters: [{
    name: "envoy.filters.listener.tls_inspector",
    typed_config: {
      "@type": typeUrl("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"),
    },
  }],
  traffic_direction: "OUTBOUND",
  per_connection_buffer_limit_bytes: 32768,
};

const sdsSecret = (name: string) => ({ name, sds_config: ADS });

/** An EDS cluster with mTLS whose certificates come over SDS. */
const cluster: ProtoJson = {
  name: "outbound|web|8080",
  type: "EDS",
  eds_cluster_config: { eds_config: ADS, service_name: "web" },
  connect_timeout: "5s",
  lb_policy: "LEAST_REQUEST",
  transport_socket: {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": typeUrl(`${TLS}.UpstreamTlsContext`),
      common_tls_context: {
        tls_certificate_sds_secret_configs: [sdsSecret("default")],
        combined_validation_context: {
          default_validation_context: {
            match_typed_subject_alt_names: [{
              san_type: "URI",
              matcher: { exact: "spiffe://mesh.local/ns/default/sa/web" },
            }],
          },
          validation_context_sds_secret_config: sdsSecret("ROOTCA"),
        },
        alpn_protocols: ["h2", "http/1.1"],
      },
      sni: "web.mesh",
    },
  },
  circuit_breakers: { thresholds: [{ max_connections: 1024, max_retries: 0 }] },
  typed_extension_protocol_options: {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
      "@type": typeUrl("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"),
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
  common_lb_config: { healthy_panic_threshold: { value: 50 } },
  load_balancing_policy: {
    policies: [{
      typed_extension_config: {
        name: "envoy.load_balancing_policies.ring_hash",
        typed_config: {
          "@type": typeUrl("envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash"),
          minimum_ring_size: 1024,
          maximum_ring_size: "9007199254740993",
        },
      },
    }],
  },
  metadata: {
    filter_metadata: {
      ironmesh: { service: "web", weight: 3.5, tags: ["a", "b"], extra: { on: true, off: null } },
    },
  },
};

/** Two localities, one of them a failover priority. */
const loadAssignment: ProtoJson = {
  cluster_name: "outbound|web|8080",
  endpoints: [
    {
      locality: { region: "eu", zone: "eu-1a" },
      lb_endpoints: [{
        endpoint: {
          address: { socket_address: { address: "10.0.0.5", port_value: 8080 } },
          health_check_config: { port_value: 8081 },
        },
        health_status: "HEALTHY",
        load_balancing_weight: 10,
      }],
      load_balancing_weight: 100,
    },
    {
      locality: { region: "eu", zone: "eu-1b" },
      lb_endpoints: [{
        endpoint: { address: { socket_address: { address: "10.0.1.5", port_value: 8080 } } },
        health_status: "DRAINING",
      }],
      load_balancing_weight: 1,
      priority: 1,
    },
  ],
  policy: { overprovisioning_factor: 140 },
};

/** A route table splitting traffic 90/10, with a fault injected on one route. */
const routes: ProtoJson = {
  name: "web",
  virtual_hosts: [{
    name: "web",
    domains: ["web.mesh", "web.mesh:8080"],
    routes: [
      {
        name: "canary",
        match: { prefix: "/" },
        route: {
          weighted_clusters: {
            clusters: [{ name: "web-v1", weight: 90 }, { name: "web-v2", weight: 10 }],
          },
          timeout: "15s",
          retry_policy: { retry_on: "5xx", num_retries: 3, per_try_timeout: "0.500s" },
        },
        typed_per_filter_config: {
          "envoy.filters.http.fault": {
            "@type": typeUrl("envoy.extensions.filters.http.fault.v3.HTTPFault"),
            abort: { http_status: 503, percentage: { numerator: 5 } },
          },
        },
      },
      {
        match: {
          safe_regex: { regex: "^/api/.*" },
          headers: [{ name: ":method", string_match: { exact: "GET" } }],
        },
        route: { cluster: "web-v1", timeout: "0s" },
      },
    ],
  }],
  validate_clusters: false,
};

const secret: ProtoJson = {
  name: "default",
  tls_certificate: {
    certificate_chain: { inline_string: "-----BEGIN CERTIFICATE-----\n…" },
    private_key: { inline_bytes: "AAEC/f7/" },
  },
};

function roundTrip(typeName: string, value: ProtoJson): ProtoJson {
  return decodeStrict(typeName, encodeStrict(typeName, value));
}

Deno.test("lookupType() finds every resource type and ADS message, and rejects others", () => {
  for (
    const name of [
      LISTENER,
      CLUSTER,
      CLA,
      ROUTE,
      SECRET,
      "envoy.service.discovery.v3.DiscoveryRequest",
      "envoy.service.discovery.v3.DeltaDiscoveryResponse",
      "envoy.config.bootstrap.v3.Bootstrap",
      "envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality",
      "envoy.admin.v3.ConfigDump",
    ]
  ) {
    assert.equal(lookupType(name).fullName, `.${name}`);
  }
  assert.throws(() => lookupType("envoy.config.core.v3"), /Unknown message type "envoy\.config/);
  assert.throws(() => lookupType("nope.Nope"), /Unknown message type "nope\.Nope"/);
});

Deno.test("encodeStrict() and decodeStrict() round-trip a listener with an HTTP connection manager", () => {
  assert.deepEqual(roundTrip(LISTENER, listener), listener);
});

Deno.test("encodeStrict() and decodeStrict() round-trip an EDS cluster with SDS-fed mTLS", () => {
  assert.deepEqual(roundTrip(CLUSTER, cluster), cluster);
});

Deno.test("encodeStrict() and decodeStrict() round-trip a ClusterLoadAssignment", () => {
  assert.deepEqual(roundTrip(CLA, loadAssignment), loadAssignment);
});

Deno.test("encodeStrict() and decodeStrict() round-trip a RouteConfiguration with weighted clusters", () => {
  assert.deepEqual(roundTrip(ROUTE, routes), routes);
});

Deno.test("encodeStrict() and decodeStrict() round-trip a Secret with inline bytes", () => {
  assert.deepEqual(roundTrip(SECRET, secret), secret);
});

Deno.test("encodeStrict() packs DiscoveryResponse resources given as @type objects or packAny()", () => {
  const packed = packAny(CLA, encodeStrict(CLA, loadAssignment));
  assert.equal(packed.type_url, EDS_TYPE_URL);
  const response = {
    version_info: "v7",
    type_url: EDS_TYPE_URL,
    nonce: "3",
    resources: [packed, { "@type": EDS_TYPE_URL, ...loadAssignment, cluster_name: "other" }],
  };
  const bytes = encodeStrict("envoy.service.discovery.v3.DiscoveryResponse", response);
  assert.deepEqual(decodeStrict("envoy.service.discovery.v3.DiscoveryResponse", bytes), {
    ...response,
    resources: [
      { "@type": EDS_TYPE_URL, ...loadAssignment },
      { "@type": EDS_TYPE_URL, ...loadAssignment, cluster_name: "other" },
    ],
  });
  assert.throws(() => packAny("nope.Nope", new Uint8Array()), /Unknown message type "nope\.Nope"/);
});

Deno.test("encodeStrict() with reuse encodes a shared Any once and gives the same bytes", () => {
  // Two listeners sharing one filter chain object, as a service port's server Listeners do.
  const chain = (listener.filter_chains as ProtoJson[])[0]!;
  const hcm = (chain.filters as ProtoJson[])[0]!.typed_config as ProtoJson;
  const a = { ...listener, name: "a", filter_chains: [chain] };
  const b = { ...listener, name: "b", filter_chains: [chain] };
  const reuse = new WeakMap<object, ProtoJson | null>();
  assert.deepEqual(encodeStrict(LISTENER, a, { reuse }), encodeStrict(LISTENER, a));
  assert.equal(reuse.get(hcm), null, "met once: only marked, no bytes kept");
  const fresh = encodeStrict(LISTENER, b);
  assert.deepEqual(encodeStrict(LISTENER, b, { reuse }), fresh);
  assert.ok(reuse.get(hcm), "met twice: its bytes are kept");
  // Kept bytes are used as they are: the Any is not walked again (bodies never change once built).
  const statPrefix = hcm.stat_prefix;
  hcm.stat_prefix = "changed";
  try {
    assert.deepEqual(encodeStrict(LISTENER, b, { reuse }), fresh);
    assert.notDeepEqual(encodeStrict(LISTENER, b), fresh);
  } finally {
    hcm.stat_prefix = statPrefix;
  }
});

Deno.test("decodeStrict() returns the canonical form", () => {
  const canonical = roundTrip(CLUSTER, {
    name: "",
    type: "STATIC",
    lb_policy: "ROUND_ROBIN",
    connect_timeout: { seconds: 1, nanos: 500_000_000 },
    per_connection_buffer_limit_bytes: 0,
    dns_refresh_rate: "0.1s",
    cleanup_interval: "-1.5s",
    dns_failure_refresh_rate: { base_interval: "0.000001s", max_interval: "0.000000001s" },
    alt_stat_name: undefined,
    ignore_health_on_host_removal: false,
    outlier_detection: { consecutive_5xx: 0 },
    upstream_bind_config: { source_address: { address: "::", port_value: 0 }, freebind: true },
    health_checks: [],
    metadata: { filter_metadata: {} },
    load_balancing_policy: {
      policies: [{
        typed_extension_config: {
          name: "cswrr",
          typed_config: {
            "@type": typeUrl(
              "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
            ),
            error_utilization_penalty: 0.1,
          },
        },
      }],
    },
  });
  assert.deepEqual(canonical, {
    type: "STATIC", // a oneof member keeps its zero value
    connect_timeout: "1.500s",
    dns_refresh_rate: "0.100s",
    cleanup_interval: "-1.500s",
    dns_failure_refresh_rate: { base_interval: "0.000001s", max_interval: "0.000000001s" },
    per_connection_buffer_limit_bytes: 0, // a wrapper is present even when zero
    outlier_detection: { consecutive_5xx: 0 },
    metadata: {}, // a message is present even when empty
    upstream_bind_config: { source_address: { address: "::", port_value: 0 }, freebind: true },
    load_balancing_policy: {
      policies: [{
        typed_extension_config: {
          name: "cswrr",
          typed_config: {
            "@type": typeUrl(
              "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
            ),
            error_utilization_penalty: 0.1, // float32, printed at its shortest
          },
        },
      }],
    },
  });
});

Deno.test("encodeStrict() takes well-known types in their JSON forms", () => {
  const values = [null, 1.5, "s", true, [1, "two", { three: [] }], { nested: { deep: false } }];
  const node = {
    id: "sidecar~10.0.0.5~web-1~mesh.local",
    metadata: { list: values, empty: {}, ...JSON.parse('{"__proto__": "kept as a key"}') },
  };
  assert.deepEqual(roundTrip("envoy.config.core.v3.Node", node), node);
  const any = { "@type": typeUrl("google.protobuf.Duration"), value: "2s" };
  const extension = { name: "d", typed_config: any };
  assert.deepEqual(roundTrip("envoy.config.core.v3.TypedExtensionConfig", extension), extension);
  const unknownAny = { name: "x", typed_config: { type_url: "example.com/x.Y", value: "AQI=" } };
  assert.deepEqual(roundTrip("envoy.config.core.v3.TypedExtensionConfig", unknownAny), unknownAny);
  const failure = { last_update_attempt: "2024-05-01T12:00:00.120Z" };
  assert.deepEqual(roundTrip("envoy.admin.v3.UpdateFailureState", failure), failure);
  assert.deepEqual(
    roundTrip("envoy.admin.v3.UpdateFailureState", {
      last_update_attempt: "2024-05-01T14:00:00+02:00",
    }),
    { last_update_attempt: "2024-05-01T12:00:00Z" },
  );
  const bytes = { inline_bytes: new Uint8Array([0, 1, 2, 253, 254, 255]) };
  assert.deepEqual(roundTrip("envoy.config.core.v3.DataSource", bytes), {
    inline_bytes: "AAEC/f7/",
  });
  assert.deepEqual(roundTrip("envoy.config.core.v3.DataSource", { inline_bytes: "AAEC_f7_" }), {
    inline_bytes: "AAEC/f7/",
  });
});

Deno.test("encodeStrict() takes 64-bit integers as numbers or decimal strings", () => {
  const ringHash = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
  const max = { minimum_ring_size: "18446744073709551615", maximum_ring_size: 5 };
  assert.deepEqual(roundTrip(ringHash, max), max);
  assert.deepEqual(roundTrip(ringHash, { minimum_ring_size: "42" }), { minimum_ring_size: 42 });
  assert.throws(
    () => encodeStrict(ringHash, { minimum_ring_size: "18446744073709551616" }),
    {
      message: 'Invalid value for field "minimum_ring_size" at / (' + ringHash +
        '): expected uint64 (a safe integer or a decimal string), got "18446744073709551616"',
    },
  );
  assert.throws(() => encodeStrict(ringHash, { minimum_ring_size: 2 ** 60 }), /expected uint64/);
  assert.throws(() => encodeStrict(ringHash, { minimum_ring_size: -1 }), /expected uint64/);
});

/** Asserts that encoding `value` fails with exactly `message`. */
function rejects(typeName: string, value: unknown, message: string): void {
  assert.throws(() => encodeStrict(typeName, value), (error: unknown) => {
    assert.ok(error instanceof ProtoSchemaError);
    assert.equal(error.message, message);
    return true;
  });
}

const socket = (socketAddress: ProtoJson) => ({ address: { socket_address: socketAddress } });
const SOCKET_AT = "at /address/socket_address (envoy.config.core.v3.SocketAddress)";

Deno.test("encodeStrict() rejects an unknown field with its path", () => {
  rejects(LISTENER, socket({ prot_value: 1 }), `Unknown field "prot_value" ${SOCKET_AT}`);
  rejects(LISTENER, { nmae: "x" }, `Unknown field "nmae" at / (${LISTENER})`);
  const typo = structuredClone(listener) as { filter_chains: { filters: ProtoJson[] }[] };
  (typo.filter_chains[0]!.filters[0]!.typed_config as ProtoJson).stat_prefx = "x";
  rejects(
    LISTENER,
    typo,
    `Unknown field "stat_prefx" at /filter_chains/0/filters/0/typed_config (${HCM})`,
  );
  rejects(
    ROUTE,
    {
      virtual_hosts: [{
        routes: [{
          typed_per_filter_config: {
            "fault/a~b": {
              "@type": typeUrl("envoy.extensions.filters.http.fault.v3.HTTPFault"),
              bogus: 1,
            },
          },
        }],
      }],
    },
    'Unknown field "bogus" at /virtual_hosts/0/routes/0/typed_per_filter_config/fault~1a~0b ' +
      "(envoy.extensions.filters.http.fault.v3.HTTPFault)",
  );
  rejects(
    CLUSTER,
    { metadata: { typed_filter_metadata: { x: {} } } },
    'Invalid value for field "typed_filter_metadata["x"]" at /metadata ' +
      '(envoy.config.core.v3.Metadata): expected an Any with "@type" (or "type_url" and "value")',
  );
});

Deno.test("encodeStrict() rejects a value of the wrong type", () => {
  rejects(
    LISTENER,
    socket({ port_value: "80" }),
    `Invalid value for field "port_value" ${SOCKET_AT}: expected uint32, got "80"`,
  );
  rejects(
    LISTENER,
    socket({ port_value: 65536.5 }),
    `Invalid value for field "port_value" ${SOCKET_AT}: expected uint32, got 65536.5`,
  );
  rejects(
    LISTENER,
    socket({ address: null }),
    `Invalid value for field "address" ${SOCKET_AT}: expected string, got null`,
  );
  rejects(
    LISTENER,
    { address: "0.0.0.0:80" },
    `Invalid value for field "address" at / (${LISTENER}): expected an object, got "0.0.0.0:80"`,
  );
  rejects(
    LISTENER,
    { filter_chains: [{ filter_chain_match: { server_names: ["a", 3] } }] },
    'Invalid value for field "server_names[1]" at /filter_chains/0/filter_chain_match ' +
      "(envoy.config.listener.v3.FilterChainMatch): expected string, got 3",
  );
  rejects(
    CLUSTER,
    { connect_timeout: "5" },
    `Invalid value for field "connect_timeout" at / (${CLUSTER}): ` +
      'expected a duration such as "5s" or "0.250s", got "5"',
  );
  rejects(
    CLUSTER,
    { connect_timeout: { seconds: 1, nanos: -1 } },
    `Invalid value for field "connect_timeout" at / (${CLUSTER}): ` +
      "seconds and nanos must have the same sign",
  );
  rejects(
    CLUSTER,
    { per_connection_buffer_limit_bytes: { value: 5 } },
    `Invalid value for field "per_connection_buffer_limit_bytes" at / (${CLUSTER}): ` +
      "expected uint32, got an object",
  );
  rejects(
    SECRET,
    { tls_certificate: { private_key: { inline_bytes: "not base64!" } } },
    'Invalid value for field "inline_bytes" at /tls_certificate/private_key ' +
      "(envoy.config.core.v3.DataSource): expected bytes (a Uint8Array or a base64 string), " +
      'got "not base64!"',
  );
  rejects(
    "envoy.config.core.v3.Node",
    { metadata: { when: new Date(0) } },
    'Invalid value for field "metadata" at / (envoy.config.core.v3.Node): ' +
      'expected a JSON value at "/when", got an object',
  );
});

Deno.test("encodeStrict() rejects a value outside its enum", () => {
  rejects(
    LISTENER,
    socket({ protocol: "SCTP" }),
    `Invalid value for field "protocol" ${SOCKET_AT}: ` +
      '"SCTP" is not a value of enum envoy.config.core.v3.SocketAddress.Protocol',
  );
  rejects(
    LISTENER,
    socket({ protocol: 7 }),
    `Invalid value for field "protocol" ${SOCKET_AT}: ` +
      "7 is not a value of enum envoy.config.core.v3.SocketAddress.Protocol",
  );
  assert.deepEqual(roundTrip(LISTENER, socket({ protocol: 1 })), socket({ protocol: "UDP" }));
});

Deno.test("encodeStrict() rejects a oneof with two members set", () => {
  rejects(
    LISTENER,
    socket({ port_value: 80, named_port: "http" }),
    `Oneof "port_specifier" has more than one member set ${SOCKET_AT}: "port_value", "named_port"`,
  );
  assert.deepEqual(
    roundTrip(LISTENER, socket({ port_value: 80, named_port: undefined })),
    socket({ port_value: 80 }),
  );
});

Deno.test("encodeStrict() rejects a repeated field given something other than an array", () => {
  rejects(
    LISTENER,
    { filter_chains: { filters: [] } },
    `Invalid value for field "filter_chains" at / (${LISTENER}): expected an array, got an object`,
  );
  rejects(
    ROUTE,
    { virtual_hosts: [{ domains: "*" }] },
    'Invalid value for field "domains" at /virtual_hosts/0 (envoy.config.route.v3.VirtualHost): ' +
      'expected an array, got "*"',
  );
});

Deno.test("encodeStrict() rejects an Any of a type outside the descriptor", () => {
  rejects(
    LISTENER,
    { filter_chains: [{ filters: [{ name: "x", typed_config: { "@type": "example.com/x.Y" } }] }] },
    'Invalid value for field "typed_config" at /filter_chains/0/filters/0 ' +
      '(envoy.config.listener.v3.Filter): unknown type "example.com/x.Y" in "@type"',
  );
  rejects(
    "envoy.config.core.v3.TypedExtensionConfig",
    { typed_config: { "@type": typeUrl("google.protobuf.Duration"), seconds: 1 } },
    'Unknown field "seconds" at /typed_config (google.protobuf.Duration): ' +
      'an Any holding google.protobuf.Duration takes its JSON form in "value"',
  );
});

Deno.test("decodeStrict() keeps the last oneof member on the wire, as protobuf does", () => {
  const writer = protobuf.Writer.create();
  writer.uint32((3 << 3) | 0).uint32(80); // port_value
  writer.uint32((4 << 3) | 2).string("http"); // named_port
  const socketAddress = writer.finish();
  assert.deepEqual(decodeStrict("envoy.config.core.v3.SocketAddress", socketAddress), {
    named_port: "http",
  });
});

// ---------------------------------------------------------------------------
// Independent checks: protobufjs reading Envoy's own .proto files, not our descriptor.

function envoyRoot(): protobuf.Root {
  const require = createRequire(import.meta.url);
  const deps = join(require.resolve("@grpc/grpc-js-xds/package.json"), "..", "deps");
  const dirs = ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(deps, d));
  dirs.push(join(require.resolve("protobufjs/package.json"), ".."));
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of dirs) {
      try {
        Deno.statSync(join(dir, target));
        return join(dir, target);
      } catch {
        // Not in this folder; try the next.
      }
    }
    return target;
  };
  root.loadSync([
    "envoy/service/discovery/v3/ads.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto",
  ], { keepCase: true });
  return root;
}

const independent = envoyRoot();
const TO_OBJECT = { longs: String, enums: String, bytes: String } as const;

function independentDecode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const type = independent.lookupType(typeName);
  return type.toObject(type.decode(bytes), TO_OBJECT);
}

function unpack(any: unknown): Record<string, unknown> {
  const { type_url, value } = any as { type_url: string; value: string };
  const bytes = protobuf.util.base64.length(value);
  const buffer = new Uint8Array(bytes);
  protobuf.util.base64.decode(value, buffer, 0);
  return { type_url, ...independentDecode(type_url.slice(type_url.lastIndexOf("/") + 1), buffer) };
}

Deno.test("decodeStrict() reads a DiscoveryRequest encoded by protobufjs from Envoy's .proto files", () => {
  const type = independent.lookupType("envoy.service.discovery.v3.DiscoveryRequest");
  const request = type.fromObject({
    version_info: "v6",
    node: {
      id: "sidecar~10.0.0.5~web-1",
      cluster: "web",
      // protobufjs' bundled Struct has camelCase fields: Envoy sends the same bytes.
      metadata: { fields: { ISTIO_VERSION: { stringValue: "1.0" }, n: { numberValue: 2 } } },
      locality: { region: "eu", zone: "eu-1a" },
      user_agent_name: "envoy",
      user_agent_build_version: { version: { major_number: 1, minor_number: 31 } },
      client_features: ["envoy.lb.does_not_support_overprovisioning"],
    },
    resource_names: ["outbound|web|8080"],
    type_url: EDS_TYPE_URL,
    response_nonce: "5",
    error_detail: { code: 3, message: "rejected" },
  });
  const bytes = type.encode(request).finish();
  assert.deepEqual(decodeStrict("envoy.service.discovery.v3.DiscoveryRequest", bytes), {
    version_info: "v6",
    node: {
      id: "sidecar~10.0.0.5~web-1",
      cluster: "web",
      metadata: { ISTIO_VERSION: "1.0", n: 2 },
      locality: { region: "eu", zone: "eu-1a" },
      user_agent_name: "envoy",
      user_agent_build_version: { version: { major_number: 1, minor_number: 31 } },
      client_features: ["envoy.lb.does_not_support_overprovisioning"],
    },
    resource_names: ["outbound|web|8080"],
    type_url: EDS_TYPE_URL,
    response_nonce: "5",
    error_detail: { code: 3, message: "rejected" },
  });
});

Deno.test("encodeStrict() bytes mean the same to protobufjs reading Envoy's .proto files", () => {
  const l = independentDecode(LISTENER, encodeStrict(LISTENER, listener));
  assert.deepEqual(l.address, {
    socket_address: { address: "127.0.0.1", port_value: 15001 },
  });
  assert.equal(l.traffic_direction, "OUTBOUND");
  assert.deepEqual(l.per_connection_buffer_limit_bytes, { value: 32768 });
  const filter = (l.filter_chains as { filters: { typed_config: unknown }[] }[])[0]!.filters[0]!;
  const hcm = unpack(filter.typed_config);
  assert.equal(hcm.type_url, typeUrl(HCM));
  assert.deepEqual(hcm.rds, {
    config_source: { ads: {}, resource_api_version: "V3" },
    route_config_name: "web",
  });
  assert.deepEqual(hcm.stream_idle_timeout, { nanos: 250_000_000 });
  assert.deepEqual(hcm.use_remote_address, {});
  const router = unpack((hcm.http_filters as { typed_config: unknown }[])[1]!.typed_config);
  assert.deepEqual(router, {
    type_url: typeUrl("envoy.extensions.filters.http.router.v3.Router"),
    suppress_envoy_headers: true,
  });

  const c = independentDecode(CLUSTER, encodeStrict(CLUSTER, cluster));
  assert.equal(c.type, "EDS");
  assert.equal(c.lb_policy, "LEAST_REQUEST");
  assert.deepEqual(c.connect_timeout, { seconds: "5" });
  assert.deepEqual(c.eds_cluster_config, {
    eds_config: { ads: {}, resource_api_version: "V3" },
    service_name: "web",
  });
  assert.deepEqual(c.metadata, {
    filter_metadata: {
      ironmesh: {
        fields: {
          service: { stringValue: "web" },
          weight: { numberValue: 3.5 },
          tags: { listValue: { values: [{ stringValue: "a" }, { stringValue: "b" }] } },
          extra: {
            structValue: {
              fields: { on: { boolValue: true }, off: { nullValue: "NULL_VALUE" } },
            },
          },
        },
      },
    },
  });
  const tls = unpack((c.transport_socket as { typed_config: unknown }).typed_config);
  const common = tls.common_tls_context as Record<string, unknown>;
  const validation = common.combined_validation_context as Record<string, unknown>;
  assert.deepEqual(validation.validation_context_sds_secret_config, {
    name: "ROOTCA",
    sds_config: { ads: {}, resource_api_version: "V3" },
  });
  assert.deepEqual(validation.default_validation_context, {
    match_typed_subject_alt_names: [{
      san_type: "URI",
      matcher: { exact: "spiffe://mesh.local/ns/default/sa/web" },
    }],
  });
  const ringHash = unpack(
    (c.load_balancing_policy as {
      policies: { typed_extension_config: { typed_config: unknown } }[];
    })
      .policies[0]!.typed_extension_config.typed_config,
  );
  assert.deepEqual(ringHash.minimum_ring_size, { value: "1024" });
  assert.deepEqual(ringHash.maximum_ring_size, { value: "9007199254740993" });

  const e = independentDecode(CLA, encodeStrict(CLA, loadAssignment));
  const [first, second] = e.endpoints as Record<string, unknown>[];
  assert.deepEqual(first!.load_balancing_weight, { value: 100 });
  assert.deepEqual(first!.locality, { region: "eu", zone: "eu-1a" });
  assert.equal(second!.priority, 1);
  assert.deepEqual(
    (second!.lb_endpoints as Record<string, unknown>[])[0]!.health_status,
    "DRAINING",
  );
});
