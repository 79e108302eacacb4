import assert from "node:assert/strict";
import { policySet } from "../../core/policy/model.ts";
import {
  bodyOf,
  type PolicyText,
  readScenario,
  routeNamed,
  routesOf,
  type Scenario,
  storedPolicies,
} from "./_testing.ts";
import { generateProxy } from "./generate.ts";
import type { JsonObject, ProxySnapshot } from "./model.ts";
import { buildPushContext } from "./push_context.ts";
import { routeMatch, routePlan } from "./route_rules.ts";

const outbound = await readScenario("policy-outbound");
const proxyless = await readScenario("policy-proxyless");

function generate(s: Scenario): ProxySnapshot {
  return generateProxy(s.view, s.request);
}

/** `s` with its policies replaced by `policies`. */
function withPolicies(s: Scenario, policies: PolicyText[]): Scenario {
  return { ...s, view: { ...s.view, policies: policySet(storedPolicies(policies)) } };
}

function action(route: JsonObject): JsonObject {
  return route["route"] as JsonObject;
}

const apiRoutes = bodyOf(generate(outbound), "routes", "api.shop:8080");
const echoRoutes = bodyOf(generate(proxyless), "routes", "echo.shop:50051");

Deno.test("routePlan() splits 90/10 between subsets with weighted_clusters", () => {
  assert.deepEqual(action(routeNamed(apiRoutes, "checkout"))["weighted_clusters"], {
    clusters: [
      { name: "outbound|8080|v1|api.shop", weight: 90 },
      { name: "outbound|8080|v2|api.shop", weight: 10 },
    ],
  });
  // A split to one destination is a plain cluster.
  assert.equal(
    action(routeNamed(apiRoutes, "canary-header"))["cluster"],
    "outbound|8080|v2|api.shop",
  );
});

Deno.test("routePlan() joins retry conditions into retry_on and keeps the rule's timeout", () => {
  const checkout = action(routeNamed(apiRoutes, "checkout"));
  assert.deepEqual(checkout["retry_policy"], {
    retry_on: "5xx,reset,unavailable",
    num_retries: 3,
    per_try_timeout: "2s",
    // A retry goes to another host, as in Istio; with RING_HASH (api's balancer) it would
    // otherwise hash back to the host that failed (RetryPolicy.retry_host_predicate,
    // api/envoy/config/route/v3/route_components.proto).
    retry_host_predicate: [{
      name: "envoy.retry_host_predicates.previous_hosts",
      typed_config: {
        "@type":
          "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
      },
    }],
    host_selection_retry_max_attempts: 5,
  });
  assert.equal(checkout["timeout"], "10s");
});

Deno.test("routePlan() gives routes without their own timeout and retries MeshConfig's", () => {
  const search = action(routeNamed(apiRoutes, "search"));
  assert.equal(search["timeout"], "30s");
  assert.deepEqual(search["retry_policy"], {
    retry_on: "connect-failure,refused-stream,unavailable,cancelled,5xx",
    num_retries: 2,
    retry_host_predicate: [{
      name: "envoy.retry_host_predicates.previous_hosts",
      typed_config: {
        "@type":
          "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
      },
    }],
    host_selection_retry_max_attempts: 5,
  });
  // `timeout: 0s` turns the timeout off; `attempts: 0` turns retries off, defaults or not.
  const next = action(routeNamed(apiRoutes, "next"));
  assert.equal(next["timeout"], "0s");
  assert.ok(!("retry_policy" in next));
});

// A gRPC call may be a stream: Envoy's route timeout would end it (Istio's gRPC routes default to
// timeout 0); the caller's grpc-timeout is honoured up to the rule's timeout
// (RouteAction.MaxStreamDuration.grpc_timeout_header_max, api/envoy/config/route/v3/route_components.proto).
Deno.test("routePlan() gives gRPC routes no MeshConfig default timeout and honours grpc-timeout", () => {
  // policy-outbound's MeshConfig sets a 30s default; echo is a gRPC service without a TrafficRoute.
  const [echo] = routesOf(bodyOf(generate(outbound), "routes", "echo.shop:50051"));
  assert.equal(action(echo!)["timeout"], "0s");
  assert.deepEqual(action(echo!)["max_stream_duration"], { grpc_timeout_header_max: "0s" });
  // An HTTP route keeps the default, and has no gRPC cap.
  const search = action(routeNamed(apiRoutes, "search"));
  assert.equal(search["timeout"], "30s");
  assert.equal(search["max_stream_duration"], undefined);
  // A rule's own timeout still holds on a gRPC route, and caps the caller's deadline.
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "echo", namespace: "shop" },
    spec: { service: "echo", rules: [{ timeout: "5s" }] },
  }]);
  const [timed] = routesOf(bodyOf(generate(s), "routes", "echo.shop:50051"));
  assert.equal(action(timed!)["timeout"], "5s");
  assert.deepEqual(action(timed!)["max_stream_duration"], { grpc_timeout_header_max: "5s" });
});

Deno.test("routePlan() keeps the sidecar's route timeout off without a policy", () => {
  const plain = withPolicies(outbound, []);
  assert.deepEqual(routesOf(bodyOf(generate(plain), "routes", "api.shop:8080")), [
    { match: { prefix: "/" }, route: { cluster: "outbound|8080||api.shop", timeout: "0s" } },
  ]);
});

Deno.test("routePlan() ends with a catch-all to the whole service only when no rule is one", () => {
  const routes = routesOf(apiRoutes);
  assert.deepEqual(routes.at(-1)!["match"], { prefix: "/" });
  assert.equal(action(routes.at(-1)!)["cluster"], "outbound|8080||api.shop");
  assert.ok(!("name" in routes.at(-1)!), "the catch-all is not a rule");

  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: {
      service: "api",
      rules: [
        { name: "all-to-v1", split: [{ subset: "v1", weight: 100 }] },
        { name: "unreachable", match: { path: { prefix: "/x" } } },
      ],
    },
  }]);
  const names = routesOf(bodyOf(generate(s), "routes", "api.shop:8080")).map((r) => r["name"]);
  assert.deepEqual(names, ["all-to-v1", "unreachable"]);
});

Deno.test("routePlan() applies a TrafficRoute only to the port it names", () => {
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: { service: "api", port: 9999, rules: [{ name: "elsewhere", timeout: "1s" }] },
  }]);
  const push = buildPushContext(s.view);
  const api = push.serviceByKey.get("shop/api")!;
  assert.deepEqual(routePlan(push, api, api.ports[0]!, "sidecar").routes, [
    { match: { prefix: "/" }, route: { cluster: "outbound|8080||api.shop", timeout: "0s" } },
  ]);
});

Deno.test("routePlan() emits clusters for split and mirror destinations, known or not", () => {
  const snapshot = generate(outbound);
  const clusters = snapshot.clusters.map((c) => c.name);
  for (
    const name of [
      "outbound|8080||api-next.staging",
      "outbound|8080||ghost.shop",
      "outbound|9090||audit.shop",
    ]
  ) {
    assert.ok(clusters.includes(name), name);
    assert.ok(snapshot.endpoints.some((e) => e.name === name), name);
  }
  // ghost is not in the registry: its cluster has no endpoints, so its share fails fast.
  assert.deepEqual(bodyOf(snapshot, "endpoints", "outbound|8080||ghost.shop"), {
    cluster_name: "outbound|8080||ghost.shop",
  });
  const mirror = action(routeNamed(apiRoutes, "search"))["request_mirror_policies"];
  assert.deepEqual(mirror, [{
    cluster: "outbound|9090||audit.shop",
    runtime_fraction: { default_value: { numerator: 5 } },
  }]);
});

Deno.test("routePlan() turns faults into the fault filter's per-route config", () => {
  const fault = (routeNamed(apiRoutes, "search")["typed_per_filter_config"] as JsonObject)[
    "envoy.filters.http.fault"
  ];
  assert.deepEqual(fault, {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    delay: { fixed_delay: "0.500s", percentage: { numerator: 1250, denominator: "TEN_THOUSAND" } },
    abort: { http_status: 503, percentage: { numerator: 5, denominator: "MILLION" } },
  });
});

Deno.test("routePlan() writes redirects, header changes and rewrites for sidecars", () => {
  const moved = routeNamed(apiRoutes, "moved");
  assert.deepEqual(moved["redirect"], {
    scheme_redirect: "https",
    host_redirect: "api.example.com",
    port_redirect: 8443,
    path_redirect: "/new",
    response_code: "PERMANENT_REDIRECT",
  });
  assert.ok(!("route" in moved));
  const search = routeNamed(apiRoutes, "search");
  // Envoy reads values to add as format strings: "%%" is a literal "%", and a lone one NACKs
  // the route table (configuration/http/http_conn_man/headers, "Custom request/response headers").
  assert.deepEqual(search["request_headers_to_add"], [{
    header: { key: "x-route", value: "search 100%%" },
    append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
  }, {
    header: { key: "x-peer", value: "%%DOWNSTREAM_PEER_URI_SAN%%" },
    append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
  }]);
  assert.deepEqual(search["response_headers_to_remove"], ["server"]);
  // After a regex match Envoy's prefix_rewrite would swap only the prefix the matcher reports,
  // turning /search/abc into /v2/search (RouteAction.prefix_rewrite,
  // api/envoy/config/route/v3/route_components.proto): the whole matched path is rewritten.
  assert.equal(action(search)["prefix_rewrite"], undefined);
  assert.deepEqual(action(search)["regex_rewrite"], {
    pattern: { google_re2: {}, regex: "^(?:/search/[a-z]+)$" },
    substitution: "/v2/search",
  });
  assert.equal(action(search)["host_rewrite_literal"], "search.internal");
});

Deno.test("routePlan() rewrites a prefix match's prefix and an exact match's path", () => {
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: {
      service: "api",
      rules: [{
        name: "both",
        match: [{ path: { prefix: "/old/" } }, { path: { exact: "/legacy" } }, {
          path: { regex: "/v1/(.*)" },
        }],
        rewrite: { prefix: "/new/\\1" },
      }],
    },
  }]);
  const routes = routesOf(bodyOf(generate(s), "routes", "api.shop:8080"));
  assert.deepEqual(
    routes.slice(0, 3).map((r) => {
      const a = action(r);
      return a["prefix_rewrite"] ?? a["regex_rewrite"];
    }),
    [
      "/new/\\1",
      "/new/\\1",
      { pattern: { google_re2: {}, regex: "^(?:/v1/(.*))$" }, substitution: "/new/\\1" },
    ],
  );
});

Deno.test("routeMatch() matches methods, headers and query parameters", () => {
  const match = routeNamed(apiRoutes, "search")["match"] as JsonObject;
  const headers = match["headers"] as JsonObject[];
  assert.deepEqual(headers[0], { name: ":method", string_match: { exact: "GET" } });
  assert.deepEqual(headers.find((h) => h["name"] === "x-test"), {
    name: "x-test",
    present_match: true,
    invert_match: true,
  });
  assert.deepEqual(match["query_parameters"], [
    { name: "q", present_match: true },
    { name: "lang", string_match: { exact: "en" } },
  ]);
  const checkout = routeNamed(apiRoutes, "checkout")["match"] as JsonObject;
  assert.deepEqual(checkout["headers"], [{
    name: ":method",
    string_match: { safe_regex: { google_re2: {}, regex: "POST|PUT" } },
  }]);
});

Deno.test("routeMatch() asks for an absent query parameter on the whole :path", () => {
  const match = routeMatch({ query: { "a.b": { present: false } } }, "sidecar")!;
  const [header] = match["headers"] as JsonObject[];
  assert.equal(header!["invert_match"], true);
  const regex = ((header!["string_match"] as JsonObject)["safe_regex"] as JsonObject)["regex"];
  // Envoy matches the whole value; the header matches when the parameter is there.
  const present = new RegExp(`^(?:${regex})$`);
  for (const path of ["/x?a.b", "/x?a.b=1", "/x?c=2&a.b=1&d=3", "/x?c&a.b"]) {
    assert.ok(present.test(path), path);
  }
  for (const path of ["/x", "/x?a.bc=1", "/x?ca.b=1", "/x?aXb=1", "/x?c=a.b"]) {
    assert.ok(!present.test(path), path);
  }
});

Deno.test("routePlan() gives proxyless clients the timeout and retries grpc-js-xds reads", () => {
  const canary = action(routeNamed(echoRoutes, "canary"));
  assert.deepEqual(canary["max_stream_duration"], { max_stream_duration: "5s" });
  assert.ok(!("timeout" in canary), "grpc-js-xds ignores the route timeout");
  // 5xx reaches a gRPC client as UNAVAILABLE; retriable-4xx has no gRPC form; no per-try timeout.
  assert.deepEqual(canary["retry_policy"], {
    retry_on: "deadline-exceeded,unavailable",
    num_retries: 3,
  });
  const slow = action(routeNamed(echoRoutes, "slow"));
  assert.ok(!("retry_policy" in slow), "no gRPC condition, no retries");
  assert.deepEqual(slow["max_stream_duration"], { max_stream_duration: "0s" });
  const last = action(routesOf(echoRoutes).at(-1)!);
  assert.deepEqual(last["retry_policy"], { retry_on: "cancelled,unavailable", num_retries: 2 });
});

Deno.test("routePlan() leaves out for proxyless clients what gRPC cannot match or ignores", () => {
  const names = routesOf(echoRoutes).map((r) => r["name"]);
  assert.deepEqual(names, [
    "legacy",
    "canary",
    "slow",
    "split-away",
    "either",
    "either",
    undefined,
  ]);
  const canary = routeNamed(echoRoutes, "canary");
  // The POST method and the absent query parameter always hold for gRPC.
  assert.deepEqual((canary["match"] as JsonObject)["headers"], [
    { name: "x-canary", string_match: { exact: "1" } },
    { name: "x-session", present_match: true },
  ]);
  assert.ok(!("query_parameters" in (canary["match"] as JsonObject)));
  for (const key of ["request_mirror_policies", "prefix_rewrite"]) {
    assert.ok(!(key in action(canary)), key);
  }
  assert.ok(!("request_headers_to_add" in canary));
});

Deno.test("routePlan() compiles a match list into one route per entry, in order, each with the rule's action", () => {
  const routes = routesOf(apiRoutes);
  const at = routes.findIndex((r) => r["name"] === "docs");
  const [first, second, next] = routes.slice(at, at + 3);
  assert.deepEqual(first!["match"], { prefix: "/docs/" });
  assert.deepEqual(second!["match"], {
    path: "/help",
    headers: [
      { name: ":method", string_match: { exact: "GET" } },
      { name: "x-docs", present_match: true },
    ],
  });
  assert.equal(second!["name"], "docs");
  assert.deepEqual(action(first!), action(second!));
  assert.equal(action(first!)["cluster"], "outbound|8080|v1|api.shop");
  assert.equal(action(first!)["timeout"], "3s");
  // Then the catch-all: neither entry matches everything.
  assert.deepEqual(next, routes.at(-1));
  assert.deepEqual(next!["match"], { prefix: "/" });
});

Deno.test("routePlan() lets a match list entry that matches everything end the routes", () => {
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: {
      service: "api",
      rules: [{ name: "v1", match: [{ path: { prefix: "/v1/" } }, {}], timeout: "1s" }],
    },
  }]);
  const routes = routesOf(bodyOf(generate(s), "routes", "api.shop:8080"));
  assert.deepEqual(routes.map((r) => [r["name"], r["match"]]), [
    ["v1", { prefix: "/v1/" }],
    ["v1", { prefix: "/" }],
  ]);
});

Deno.test("routePlan() leaves out for proxyless clients the match list entries gRPC cannot match", () => {
  const either = routesOf(echoRoutes).filter((r) => r["name"] === "either");
  // The GET-only entry is left out; the POST entry's method always holds.
  assert.deepEqual(either.map((r) => r["match"]), [
    { prefix: "/echo.Echo/Either" },
    { prefix: "", headers: [{ name: "x-either", string_match: { exact: "1" } }] },
  ]);
  assert.equal(action(either[0]!)["cluster"], "outbound|50051|v2|echo.shop");
  // Every entry of never-grpc is left out, and so is the rule.
  assert.ok(!routesOf(echoRoutes).some((r) => r["name"] === "never-grpc"));
});

Deno.test("routePlan() turns a redirect into an abort with its status for proxyless clients", () => {
  const legacy = routeNamed(echoRoutes, "legacy");
  assert.ok(!("redirect" in legacy), "grpc-js-xds NACKs a redirect action");
  assert.deepEqual(action(legacy), { cluster: "outbound|50051||echo.shop" });
  const fault = (legacy["typed_per_filter_config"] as JsonObject)["envoy.filters.http.fault"];
  assert.deepEqual((fault as JsonObject)["abort"], {
    http_status: 302,
    percentage: { numerator: 100 },
  });
});

Deno.test("routePlan() lets a rewrite beside a redirect say where it leads", () => {
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: {
      service: "api",
      rules: [{
        name: "moved",
        match: { path: { prefix: "/v1/" } },
        redirect: { code: 301 },
        rewrite: { prefix: "/v2/", host: "new.example.com" },
      }],
    },
  }]);
  const moved = routeNamed(bodyOf(generate(s), "routes", "api.shop:8080"), "moved");
  // 301 is the enum's zero value, MOVED_PERMANENTLY, which the wire leaves out.
  assert.deepEqual(moved["redirect"], { host_redirect: "new.example.com", prefix_rewrite: "/v2/" });
});

Deno.test("routePlan() refuses an abort without a status (validation must never let one through)", () => {
  const s = withPolicies(outbound, [{
    kind: "TrafficRoute",
    metadata: { name: "api", namespace: "shop" },
    spec: { service: "api", rules: [{ fault: { abort: { percent: 10 } } }] },
  }]);
  assert.throws(() => generate(s), /Invalid fault: an abort needs httpStatus or grpcStatus/);
});
