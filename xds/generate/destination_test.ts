import assert from "node:assert/strict";
import { policySet } from "../../core/policy/model.ts";
import {
  assertEnvoyValid,
  bodyOf,
  grpcJsXdsError,
  loadCodec,
  type PolicyText,
  readScenario,
  routeNamed,
  routesOf,
  type Scenario,
  storedPolicies,
} from "./_testing.ts";
import {
  clusterTrafficFields,
  hashPolicies,
  localityPriorities,
  trafficSettings,
} from "./destination.ts";
import { TYPE_URL_PREFIX } from "./envoy.ts";
import { generateProxy } from "./generate.ts";
import type { JsonObject, Locality, ProxySnapshot, SidecarRequest } from "./model.ts";
import { buildPushContext } from "./push_context.ts";

const codec = await loadCodec();
const outbound = await readScenario("policy-outbound");
const proxyless = await readScenario("policy-proxyless");

function generate(s: Scenario): ProxySnapshot {
  return generateProxy(s.view, s.request);
}

function withPolicies(s: Scenario, policies: PolicyText[]): Scenario {
  return { ...s, view: { ...s.view, policies: policySet(storedPolicies(policies)) } };
}

function destinationPolicy(namespace: string, spec: unknown): PolicyText {
  return { kind: "DestinationPolicy", metadata: { name: "p", namespace }, spec };
}

Deno.test("trafficSettings() overrides the service's settings by port, then by subset, field by field", () => {
  const push = buildPushContext(outbound.view);
  const whole = trafficSettings(push, "shop", "api", 8080, "");
  assert.equal(whole.loadBalancer?.algorithm, "RING_HASH");
  assert.equal(whole.outlierDetection?.consecutiveErrors, 7, "the port's outlier detection");
  assert.equal(whole.connectionPool?.maxConnections, 100, "the service's pool");
  const v2 = trafficSettings(push, "shop", "api", 8080, "v2");
  assert.equal(v2.loadBalancer?.algorithm, "LEAST_REQUEST");
  assert.deepEqual(v2.outlierDetection, { consecutiveGatewayErrors: 3 }, "replaced, not merged");
  assert.equal(v2.connectionPool?.maxConnections, 100);
  assert.deepEqual(trafficSettings(push, "shop", "audit", 9090, ""), {});
});

Deno.test("DestinationPolicy subsets become clusters whose endpoints carry the subset's labels", () => {
  const snapshot = generate(outbound);
  const hosts = (name: string) =>
    (bodyOf(snapshot, "endpoints", name)["endpoints"] as JsonObject[]).flatMap((l) =>
      (l["lb_endpoints"] as JsonObject[]).map((e) =>
        (((e["endpoint"] as JsonObject)["address"] as JsonObject)["socket_address"] as JsonObject)[
          "address"
        ]
      )
    ).sort();
  assert.deepEqual(hosts("outbound|8080|v1|api.shop"), ["10.0.1.2", "10.0.2.3", "10.1.0.1"]);
  assert.deepEqual(hosts("outbound|8080|v2|api.shop"), ["10.0.2.4", "10.2.0.1"]);
  assert.deepEqual(hosts("outbound|5432|replica|pg.data"), ["10.0.9.2"]);
  assert.equal(
    bodyOf(snapshot, "clusters", "outbound|5432|replica|pg.data")["lb_policy"],
    "RANDOM",
  );
});

Deno.test("a route to a subset no DestinationPolicy defines reaches no endpoint", () => {
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: { service: "api", rules: [{ split: [{ subset: "v9", weight: 100 }] }] },
  }]);
  const snapshot = generate(s);
  assert.deepEqual(bodyOf(snapshot, "endpoints", "outbound|8080|v9|api.shop"), {
    cluster_name: "outbound|8080|v9|api.shop",
  });
});

Deno.test("ring hash: RING_HASH with minimum_ring_size on the cluster, the hash_policy on the route", () => {
  const snapshot = generate(outbound);
  const cluster = bodyOf(snapshot, "clusters", "outbound|8080||api.shop");
  assert.equal(cluster["lb_policy"], "RING_HASH");
  assert.deepEqual(cluster["ring_hash_lb_config"], { minimum_ring_size: 2048 });
  const routes = bodyOf(snapshot, "routes", "api.shop:8080");
  const catchAll = routesOf(routes).at(-1)!["route"] as JsonObject;
  assert.deepEqual(catchAll["hash_policy"], [{ header: { header_name: "x-user" } }]);
  // The v2 subset balances by LEAST_REQUEST: a route only to it has no hash.
  const v2 = routeNamed(routes, "canary-header")["route"] as JsonObject;
  assert.ok(!("hash_policy" in v2));
  const echo = routesOf(bodyOf(snapshot, "routes", "echo.shop:50051"))[0]!["route"] as JsonObject;
  assert.deepEqual(echo["hash_policy"], [{ connection_properties: { source_ip: true } }]);
});

Deno.test("hashPolicies() gives gRPC what it hashes: headers, and its channel id for the source", () => {
  const ring = (hash: JsonObject) => ({ algorithm: "RING_HASH" as const, hash });
  assert.deepEqual(hashPolicies(ring({ sourceIp: true }), "proxyless"), [
    { filter_state: { key: "io.grpc.channel_id" } },
  ]);
  assert.deepEqual(hashPolicies(ring({ cookie: { name: "s", ttl: "1h", path: "/" } }), "sidecar"), [
    { cookie: { name: "s", ttl: "3600s", path: "/" } },
  ]);
  assert.deepEqual(hashPolicies(ring({ cookie: { name: "s" } }), "proxyless"), []);
  assert.deepEqual(
    hashPolicies({ algorithm: "ROUND_ROBIN", hash: { header: "x" } }, "sidecar"),
    [],
  );
});

Deno.test("clusterTrafficFields() writes connection pools as circuit breakers", () => {
  const snapshot = generate(outbound);
  const cluster = bodyOf(snapshot, "clusters", "outbound|8080||api.shop");
  assert.deepEqual(cluster["circuit_breakers"], {
    thresholds: [{
      max_connections: 100,
      max_pending_requests: 50,
      max_requests: 200,
      max_retries: 3,
    }],
  });
  assert.equal(cluster["connect_timeout"], "2s", "the pool's connect timeout beats the server's");
  assert.equal(bodyOf(snapshot, "clusters", "outbound|9090||audit.shop")["connect_timeout"], "5s");
});

Deno.test("clusterTrafficFields() writes outlier detection as Envoy counts errors", () => {
  assert.deepEqual(
    clusterTrafficFields({
      outlierDetection: {
        consecutiveErrors: 7,
        interval: "5s",
        baseEjectionTime: "1m",
        maxEjectionPercent: 50,
      },
    }, "sidecar")["outlier_detection"],
    {
      consecutive_5xx: 7,
      interval: "5s",
      base_ejection_time: "60s",
      max_ejection_percent: 50,
      enforcing_success_rate: 0,
    },
  );
  // Naming only gateway errors turns Envoy's default 5xx counting off and gateway counting on.
  assert.deepEqual(
    clusterTrafficFields({ outlierDetection: { consecutiveGatewayErrors: 3 } }, "sidecar")[
      "outlier_detection"
    ],
    {
      enforcing_consecutive_5xx: 0,
      consecutive_gateway_failure: 3,
      enforcing_consecutive_gateway_failure: 100,
      enforcing_success_rate: 0,
    },
  );
});

Deno.test("clusterTrafficFields() gives gRPC consecutive errors as failure percentage", () => {
  const fields = clusterTrafficFields({
    outlierDetection: { consecutiveErrors: 3, consecutiveGatewayErrors: 2, interval: "10s" },
  }, "proxyless");
  assert.deepEqual(fields["outlier_detection"], {
    interval: "10s",
    enforcing_success_rate: 0,
    failure_percentage_threshold: 99,
    enforcing_failure_percentage: 100,
    failure_percentage_minimum_hosts: 1,
    failure_percentage_request_volume: 2,
  });
  assert.deepEqual(
    (clusterTrafficFields(
      { outlierDetection: {} },
      "proxyless",
    )["outlier_detection"] as JsonObject)[
      "failure_percentage_request_volume"
    ],
    5,
    "Envoy's default count",
  );
});

Deno.test({
  name: "grpc-js-xds takes RING_HASH and outlier detection, and NACKs LEAST_REQUEST as intended",
  ignore: codec === undefined,
  fn: async () => {
    const nack = withPolicies(proxyless, [
      destinationPolicy("shop", {
        service: "echo",
        loadBalancer: { algorithm: "LEAST_REQUEST" },
        outlierDetection: { consecutiveErrors: 2 },
      }),
    ]);
    const errors = new Map<string, string | undefined>();
    for (const s of [proxyless, nack]) {
      for (const c of generate(s).clusters) {
        const bytes = await assertEnvoyValid(c.typeUrl.slice(TYPE_URL_PREFIX.length), c.body);
        errors.set(
          `${s === nack ? "nack" : "ok"} ${c.name}`,
          await grpcJsXdsError(c.typeUrl, bytes!),
        );
      }
    }
    assert.equal(errors.get("ok outbound|50051||echo.shop"), undefined);
    assert.match(
      errors.get("nack outbound|50051||echo.shop") ?? "",
      /unsupported lb_policy: LEAST_REQUEST/,
    );
    assert.equal(errors.get("nack outbound|50052||greeter.hello"), undefined);
  },
});

const EU_A = { region: "eu-west-1", zone: "eu-west-1a" };
const EU_B = { region: "eu-west-1", zone: "eu-west-1b" };
const US = { region: "us-east-1", zone: "us-east-1a" };
const AP = { region: "ap-south-1", zone: "ap-south-1a" };

Deno.test("localityPriorities() ranks the zone, the region, the failover regions, then the rest", () => {
  const settings = { enabled: true, failover: [{ from: "eu-west-1", to: "us-east-1" }] };
  const all = [EU_A, EU_B, US, AP];
  const rank = localityPriorities(settings, EU_A, all);
  assert.deepEqual(all.map(rank), [0, 1, 2, 3]);
  // Priorities have no gaps: without the caller's zone and the failover region, the rest move up.
  const few = localityPriorities(settings, EU_A, [EU_B, AP]);
  assert.deepEqual([EU_B, AP].map(few), [0, 1]);
  // Failover applies to callers of its `from` region only.
  assert.deepEqual(all.map(localityPriorities(settings, US, all)), [1, 1, 0, 1]);
  // A caller of unknown locality prefers nothing.
  assert.deepEqual(all.map(localityPriorities(settings, { region: "", zone: "" }, all)), [
    0,
    0,
    0,
    0,
  ]);
});

function priorities(snapshot: ProxySnapshot, cluster: string): [Locality, number][] {
  return (bodyOf(snapshot, "endpoints", cluster)["endpoints"] as JsonObject[]).map((l) => [
    l["locality"] as unknown as Locality,
    (l["priority"] as number | undefined) ?? 0,
  ]);
}

Deno.test("locality-aware endpoints follow the caller's locality in one shared push", () => {
  const push = buildPushContext(outbound.view);
  const sidecar = outbound.request as SidecarRequest;
  const fromA = generateProxy(push, sidecar);
  const fromUs = generateProxy(push, { ...sidecar, node: "us-9", locality: US });
  assert.deepEqual(priorities(fromA, "outbound|8080||api.shop"), [
    [EU_A, 0],
    [EU_B, 1],
    [US, 2],
    [AP, 3],
  ]);
  assert.deepEqual(priorities(fromUs, "outbound|8080||api.shop"), [
    [US, 0],
    [AP, 1],
    [EU_A, 1],
    [EU_B, 1],
  ]);
  // Another caller in the same zone shares the body; services without locality share it with all.
  const alsoA = generateProxy(push, { ...sidecar, node: "vm-9" });
  const body = (s: ProxySnapshot, name: string) => s.endpoints.find((r) => r.name === name)!.body;
  assert.equal(body(alsoA, "outbound|8080||api.shop"), body(fromA, "outbound|8080||api.shop"));
  assert.equal(body(fromUs, "outbound|5432||pg.data"), body(fromA, "outbound|5432||pg.data"));
  assert.ok(!JSON.stringify(body(fromA, "outbound|5432||pg.data")).includes("priority"));
});

Deno.test("locality-aware endpoints reach proxyless clients with priorities too", () => {
  assert.deepEqual(priorities(generate(proxyless), "outbound|50051|v1|echo.shop"), [
    [EU_A, 0],
    [US, 1],
  ]);
});

// Envoy's tcp_proxy gives the load balancer no hash unless told how (TcpProxy.hash_policy,
// api/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto): a RING_HASH or MAGLEV TCP
// service balanced at random.
Deno.test("a TCP upstream of a hashing load balancer hashes connections on the source IP", async () => {
  const tcpProxy = (s: Scenario) => {
    const listener = bodyOf(generate(s), "listeners", "outbound|9003");
    const chain = (listener["filter_chains"] as JsonObject[])[0]!;
    return (chain["filters"] as JsonObject[])[0]!["typed_config"] as JsonObject;
  };
  // pg balances RANDOM in the scenario: no hash.
  assert.equal(tcpProxy(outbound)["hash_policy"], undefined);
  const others = (outbound.view.policies?.destinationPolicies ?? []).filter((p) =>
    p.spec.service !== "pg"
  ).map((p) => ({ kind: "DestinationPolicy", metadata: p.metadata, spec: p.spec }) as PolicyText);
  for (const algorithm of ["MAGLEV", "RING_HASH"]) {
    const s = withPolicies(outbound, [
      ...others,
      destinationPolicy("data", {
        service: "pg",
        loadBalancer: { algorithm, hash: { sourceIp: true } },
      }),
    ]);
    const proxy = tcpProxy(s);
    assert.deepEqual(proxy["hash_policy"], [{ source_ip: {} }], algorithm);
    const listener = bodyOf(generate(s), "listeners", "outbound|9003");
    await assertEnvoyValid("envoy.config.listener.v3.Listener", listener);
  }
});

// Envoy lets 3 retries per cluster run at once and drops the rest (CircuitBreakers.Thresholds
// max_retries, api/envoy/config/cluster/v3/circuit_breaker.proto); Istio lifts it to uint32's max.
Deno.test("sidecar clusters allow as many concurrent retries as routes ask, unless the policy bounds them", () => {
  const snapshot = generate(outbound);
  const thresholds = (name: string) =>
    ((bodyOf(snapshot, "clusters", name)["circuit_breakers"] as JsonObject)[
      "thresholds"
    ] as JsonObject[])[0]!;
  assert.equal(thresholds("outbound|50051||echo.shop")["max_retries"], 4_294_967_295);
  // api's connection pool sets maxRetries: 3.
  assert.equal(thresholds("outbound|8080||api.shop")["max_retries"], 3);
  // grpc-js-xds reads only max_requests: proxyless clusters get no retry threshold.
  const echo = bodyOf(generate(proxyless), "clusters", "outbound|50051||echo.shop");
  assert.deepEqual(echo["circuit_breakers"], { thresholds: [{ max_requests: 64 }] });
});
