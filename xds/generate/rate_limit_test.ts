import assert from "node:assert/strict";
import { policySet } from "../../core/policy/model.ts";
import {
  bodyOf,
  connectionManager,
  type PolicyText,
  readScenario,
  routesOf,
  type Scenario,
  storedPolicies,
} from "./_testing.ts";
import { generateProxy } from "./generate.ts";
import type { JsonObject } from "./model.ts";

const inbound = await readScenario("policy-inbound");

function webRoutes(s: Scenario): JsonObject[] {
  return routesOf(bodyOf(generateProxy(s.view, s.request), "routes", "inbound|15001"));
}

function bucketOf(route: JsonObject): JsonObject | undefined {
  const perFilter = route["typed_per_filter_config"] as JsonObject | undefined;
  return perFilter?.["envoy.filters.http.local_ratelimit"] as JsonObject | undefined;
}

function rateLimit(spec: unknown): Scenario {
  const policy: PolicyText = {
    kind: "RateLimit",
    metadata: { name: "web", namespace: "shop" },
    spec,
  };
  return { ...inbound, view: { ...inbound.view, policies: policySet(storedPolicies([policy])) } };
}

Deno.test("inboundRateLimit() gives each RateLimit route its bucket, the catch-all the service's", () => {
  const routes = webRoutes(inbound);
  assert.deepEqual(routes.map((r) => [r["name"], r["match"]]), [
    ["login", { path: "/login", headers: [{ name: ":method", string_match: { exact: "POST" } }] }],
    ["api", { prefix: "/api/" }],
    [undefined, { prefix: "/" }],
  ]);
  for (const r of routes) {
    assert.deepEqual(r["route"], { cluster: "inbound|8080", timeout: "0s" });
  }
  assert.deepEqual(bucketOf(routes[0]!), {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    // Envoy counts each per-route configuration under its own stat_prefix
    // (source/extensions/filters/http/local_ratelimit/local_ratelimit.cc, FilterConfig).
    stat_prefix: "inbound_15001_rate_limit_login",
    status: { code: "ServiceUnavailable" },
    token_bucket: { max_tokens: 5, tokens_per_fill: 5, fill_interval: "60s" },
    filter_enabled: { default_value: { numerator: 100 } },
    filter_enforced: { default_value: { numerator: 100 } },
    // A format string to Envoy, as a route's headers are: "%" is escaped.
    response_headers_to_add: [{
      header: { key: "retry-after", value: "60" },
      append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
    }, {
      header: { key: "x-limit", value: "5 per minute, 100%% enforced" },
      append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
    }],
  });
  assert.equal(bucketOf(routes[1]!)!["stat_prefix"], "inbound_15001_rate_limit_api");
  assert.equal(bucketOf(routes[2]!)!["stat_prefix"], "inbound_15001_rate_limit_service");
  // The service-wide bucket, with its burst.
  assert.deepEqual(bucketOf(routes[2]!)!["token_bucket"], {
    max_tokens: 200,
    tokens_per_fill: 100,
    fill_interval: "1s",
  });
});

Deno.test("inboundRateLimit() stretches a refill under 50 ms, keeping the rate", () => {
  const api = webRoutes(inbound)[1]!;
  // 20 per 10 ms is 100 per 50 ms, the shortest interval Envoy takes.
  assert.deepEqual(bucketOf(api)!["token_bucket"], {
    max_tokens: 100,
    tokens_per_fill: 100,
    fill_interval: "0.050s",
  });
});

Deno.test("inboundRateLimit() limits nothing on the catch-all without a service-wide bucket", () => {
  const routes = webRoutes(rateLimit({
    service: "web",
    routes: [{ match: { path: { prefix: "/a" } }, limit: { requests: 1, per: "1s" } }],
  }));
  assert.equal(routes.length, 2);
  assert.ok(bucketOf(routes[0]!));
  assert.equal(bucketOf(routes[1]!), undefined);
});

Deno.test("inboundRateLimit() answers 429, Envoy's default, for a status Envoy cannot send", () => {
  const [route] = webRoutes(rateLimit({
    service: "web",
    limit: { requests: 1, per: "1s" },
    response: { status: 418 },
  }));
  assert.ok(!("status" in bucketOf(route!)!));
  const [tooMany] = webRoutes(rateLimit({
    service: "web",
    limit: { requests: 1, per: "1s" },
    response: { status: 429 },
  }));
  assert.deepEqual(bucketOf(tooMany!)!["status"], { code: "TooManyRequests" });
});

Deno.test("inboundRateLimit() leaves TCP listeners and other services alone", () => {
  const snapshot = generateProxy(inbound.view, inbound.request);
  const echo = connectionManager(bodyOf(snapshot, "listeners", "inbound|15002"));
  assert.ok(
    !(echo["http_filters"] as JsonObject[]).some((f) =>
      f["name"] === "envoy.filters.http.local_ratelimit"
    ),
  );
  assert.deepEqual(routesOf(bodyOf(snapshot, "routes", "inbound|15002")), [
    { match: { prefix: "/" }, route: { cluster: "inbound|50051", timeout: "0s" } },
  ]);
});

// Envoy keeps a local rate limit's token bucket in the route table's per-route filter
// configuration, and builds one route table per RDS name and config source however many
// connection managers name it (RouteConfigProviderManager, source/common/router/rds_impl.cc):
// with inline route tables each filter chain of a PERMISSIVE listener had its own buckets (twice
// the limit), and any listener change refilled them.
Deno.test("both filter chains of a PERMISSIVE listener use one route table over RDS: one bucket per route", () => {
  const snapshot = generateProxy(inbound.view, inbound.request);
  const listener = bodyOf(snapshot, "listeners", "inbound|15001");
  const chains = listener["filter_chains"] as JsonObject[];
  assert.equal(chains.length, 2);
  for (const chain of chains) {
    const hcm = ((chain["filters"] as JsonObject[])[0]!["typed_config"]) as JsonObject;
    assert.deepEqual(hcm["rds"], {
      route_config_name: "inbound|15001",
      config_source: { ads: {}, resource_api_version: "V3" },
    });
    assert.equal(hcm["route_config"], undefined);
  }
  // The buckets are in the one route table.
  assert.ok(bucketOf(webRoutes(inbound)[0]!));
});
