import assert from "node:assert/strict";
import { policySet } from "../../core/policy/model.ts";
import {
  bodyOf,
  connectionManager,
  type PolicyText,
  readScenario,
  type Scenario,
  storedPolicies,
} from "./_testing.ts";
import { generateProxy } from "./generate.ts";
import type { JsonObject } from "./model.ts";

const inbound = await readScenario("policy-inbound");

function withPolicies(s: Scenario, policies: PolicyText[]): Scenario {
  return { ...s, view: { ...s.view, policies: policySet(storedPolicies(policies)) } };
}

function listener(s: Scenario, name: string): JsonObject {
  return bodyOf(generateProxy(s.view, s.request), "listeners", name);
}

/** The filters of the first filter chain, as `[name, typed_config]`. */
function networkFilters(l: JsonObject): [string, JsonObject][] {
  const [chain] = l["filter_chains"] as JsonObject[];
  return (chain!["filters"] as JsonObject[]).map((f) => [
    f["name"] as string,
    f["typed_config"] as JsonObject,
  ]);
}

function httpFilters(l: JsonObject): [string, JsonObject][] {
  return (connectionManager(l)["http_filters"] as JsonObject[]).map((f) => [
    f["name"] as string,
    f["typed_config"] as JsonObject,
  ]);
}

/** The RBAC `rules` of the filter named `name`. */
function rules(filters: [string, JsonObject][], name: string): JsonObject {
  const found = filters.find(([n]) => n === name);
  assert.ok(found, `filter ${name}`);
  return found[1]["rules"] as JsonObject;
}

function policies(filters: [string, JsonObject][], name: string): JsonObject {
  return rules(filters, name)["policies"] as JsonObject;
}

const web = listener(inbound, "inbound|15001");
const echo = listener(inbound, "inbound|15002");
const cache = listener(inbound, "inbound|15003");

Deno.test("rbacFilters() runs the DENY filter before the ALLOW filter, both before the router", () => {
  assert.deepEqual(httpFilters(web).map(([name]) => name), [
    "envoy.filters.http.rbac.deny",
    "envoy.filters.http.rbac.allow",
    "envoy.filters.http.local_ratelimit",
    "envoy.filters.http.router",
  ]);
  const deny = rules(httpFilters(web), "envoy.filters.http.rbac.deny");
  assert.equal(deny["action"], "DENY");
  // The namespace-wide policy applies to web beside web's own.
  assert.deepEqual(Object.keys(deny["policies"] as JsonObject), [
    "shop/block-scanners",
    "shop/web-no-admin",
    "shop/web-outsiders",
  ]);
  assert.ok(!("action" in rules(httpFilters(web), "envoy.filters.http.rbac.allow")), "ALLOW");
});

Deno.test("rbacFilters() writes sources as principals: SPIFFE IDs, namespaces, address blocks", () => {
  const allow = policies(httpFilters(web), "envoy.filters.http.rbac.allow");
  assert.deepEqual((allow["shop/web-allow[1]"] as JsonObject)["principals"], [
    { authenticated: { principal_name: { exact: "spiffe://ironmesh.local/ns/ops/sa/admin-1" } } },
    {
      and_ids: {
        ids: [
          { authenticated: { principal_name: { prefix: "spiffe://ironmesh.local/ns/ops/sa/" } } },
          { direct_remote_ip: { address_prefix: "10.8.0.0", prefix_len: 16 } },
        ],
      },
    },
  ]);
  const deny = policies(httpFilters(web), "envoy.filters.http.rbac.deny");
  assert.deepEqual((deny["shop/block-scanners"] as JsonObject)["principals"], [{
    or_ids: {
      ids: [
        { direct_remote_ip: { address_prefix: "192.0.2.0", prefix_len: 24 } },
        { direct_remote_ip: { address_prefix: "198.51.100.7", prefix_len: 32 } },
      ],
    },
  }]);
});

Deno.test("rbacFilters() writes operations as permissions: methods, paths, the listener's port", () => {
  const allow = policies(httpFilters(web), "envoy.filters.http.rbac.allow");
  assert.deepEqual((allow["shop/web-allow[0]"] as JsonObject)["permissions"], [{
    and_rules: {
      rules: [
        {
          header: {
            name: ":method",
            string_match: { safe_regex: { google_re2: {}, regex: "GET|HEAD" } },
          },
        },
        {
          or_rules: {
            rules: [
              { url_path: { path: { prefix: "/public/" } } },
              { url_path: { path: { suffix: ".css" } } },
              { url_path: { path: { exact: "/healthz" } } },
            ],
          },
        },
      ],
    },
  }]);
  // Port 8080 is web's, reached through inbound port 15001; port 9999 is not, and never matches.
  assert.deepEqual((allow["shop/web-allow[2]"] as JsonObject)["permissions"], [
    { destination_port: 15001 },
    { not_rule: { any: true } },
  ]);
});

Deno.test("rbacFilters() writes negated sources as not_id around the OR of their entries", () => {
  const deny = policies(httpFilters(web), "envoy.filters.http.rbac.deny");
  assert.deepEqual((deny["shop/web-outsiders"] as JsonObject)["principals"], [{
    and_ids: {
      ids: [
        {
          not_id: {
            or_ids: {
              ids: [
                {
                  authenticated: {
                    principal_name: { prefix: "spiffe://ironmesh.local/ns/shop/sa/" },
                  },
                },
                {
                  authenticated: {
                    principal_name: { prefix: "spiffe://ironmesh.local/ns/ops/sa/" },
                  },
                },
              ],
            },
          },
        },
        { not_id: { direct_remote_ip: { address_prefix: "10.0.0.0", prefix_len: 8 } } },
      ],
    },
  }]);
  // A positive and a negated field of one source: both must hold.
  const allow = policies(httpFilters(web), "envoy.filters.http.rbac.allow");
  assert.deepEqual((allow["shop/web-ops"] as JsonObject)["principals"], [{
    and_ids: {
      ids: [
        {
          not_id: {
            authenticated: {
              principal_name: { exact: "spiffe://ironmesh.local/ns/ops/sa/intern" },
            },
          },
        },
        { authenticated: { principal_name: { prefix: "spiffe://ironmesh.local/ns/ops/sa/" } } },
      ],
    },
  }]);
});

Deno.test("rbacFilters() writes negated operations as not_rule: methods, paths, ports", () => {
  const deny = policies(httpFilters(web), "envoy.filters.http.rbac.deny");
  assert.deepEqual((deny["shop/web-outsiders"] as JsonObject)["permissions"], [{
    and_rules: {
      rules: [
        {
          not_rule: {
            header: {
              name: ":method",
              string_match: { safe_regex: { google_re2: {}, regex: "GET|HEAD" } },
            },
          },
        },
        {
          not_rule: {
            or_rules: {
              rules: [
                { url_path: { path: { prefix: "/public/" } } },
                { url_path: { path: { exact: "/healthz" } } },
              ],
            },
          },
        },
      ],
    },
  }]);
  // Not port 9999, which web does not have: always true; not port 8080, web's: never on this listener.
  const allow = policies(httpFilters(web), "envoy.filters.http.rbac.allow");
  assert.deepEqual((allow["shop/web-ops"] as JsonObject)["permissions"], [
    { any: true },
    { not_rule: { destination_port: 15001 } },
  ]);
});

Deno.test("rbacFilters() lets nothing through a service without ALLOW policy when the mesh denies", () => {
  const filters = httpFilters(echo);
  assert.deepEqual(filters.map(([name]) => name), [
    "envoy.filters.http.rbac.deny",
    "envoy.filters.http.rbac.allow",
    "envoy.filters.http.router",
  ]);
  assert.deepEqual(rules(filters, "envoy.filters.http.rbac.allow"), {});
});

Deno.test("rbacFilters() adds nothing when no policy guards the service and the mesh allows", () => {
  const s = withPolicies(inbound, []);
  assert.deepEqual(httpFilters(listener(s, "inbound|15001")).map(([name]) => name), [
    "envoy.filters.http.router",
  ]);
  assert.deepEqual(networkFilters(listener(s, "inbound|15003")).map(([name]) => name), [
    "envoy.filters.network.tcp_proxy",
  ]);
});

Deno.test("rbacFilters() reads a policy without rules as Istio does: it matches nothing", () => {
  const s = withPolicies(inbound, [
    {
      kind: "AuthorizationPolicy",
      metadata: { name: "nobody", namespace: "shop" },
      spec: { service: "web", action: "ALLOW" },
    },
    {
      kind: "AuthorizationPolicy",
      metadata: { name: "no-one-denied", namespace: "shop" },
      spec: { service: "cache", action: "DENY", rules: [] },
    },
    {
      kind: "AuthorizationPolicy",
      metadata: { name: "everyone", namespace: "shop" },
      spec: { service: "cache", action: "DENY", rules: [{}] },
    },
  ]);
  // ALLOW without rules matches nothing: the ALLOW filter exists and lets nothing through.
  assert.deepEqual(
    rules(httpFilters(listener(s, "inbound|15001")), "envoy.filters.http.rbac.allow"),
    {},
  );
  // DENY without rules denies no one; a rule `{}` matches every request.
  assert.deepEqual(
    policies(networkFilters(listener(s, "inbound|15003")), "envoy.filters.network.rbac.deny"),
    { "shop/everyone": { permissions: [{ any: true }], principals: [{ any: true }] } },
  );
});

Deno.test("rbacFilters() fails closed on TCP ports, which cannot see methods and paths", () => {
  const filters = networkFilters(cache);
  assert.deepEqual(filters.map(([name]) => name), [
    "envoy.filters.network.rbac.deny",
    "envoy.filters.network.rbac.allow",
    "envoy.filters.network.tcp_proxy",
  ]);
  // ALLOW needing a method: never matches.
  const allow = policies(filters, "envoy.filters.network.rbac.allow");
  assert.deepEqual((allow["shop/cache-allow[1]"] as JsonObject)["permissions"], [
    { not_rule: { any: true } },
  ]);
  assert.deepEqual((allow["shop/cache-allow[0]"] as JsonObject)["permissions"], [
    { destination_port: 15003 },
  ]);
  // DENY naming a path: denies the whole port to its sources.
  const deny = policies(filters, "envoy.filters.network.rbac.deny");
  assert.deepEqual(deny["shop/cache-no-flush"], {
    permissions: [{ any: true }],
    principals: [{ direct_remote_ip: { address_prefix: "10.9.0.0", prefix_len: 16 } }],
  });
  assert.equal(filters[0]![1]["stat_prefix"], "deny_");
});

Deno.test("rbacFilters() fails closed on TCP ports for notMethods and notPaths too", () => {
  const filters = networkFilters(cache);
  // ALLOW needing notPaths: never matches, though /flush is the only path it excludes.
  const allow = policies(filters, "envoy.filters.network.rbac.allow");
  assert.deepEqual(allow["shop/cache-ops"], {
    permissions: [{ not_rule: { any: true } }],
    principals: [
      { authenticated: { principal_name: { prefix: "spiffe://ironmesh.local/ns/ops/sa/" } } },
    ],
  });
  // DENY naming notMethods: denies the whole port to callers outside shop.
  const deny = policies(filters, "envoy.filters.network.rbac.deny");
  assert.deepEqual(deny["shop/cache-outsiders"], {
    permissions: [{ any: true }],
    principals: [{
      not_id: {
        authenticated: { principal_name: { prefix: "spiffe://ironmesh.local/ns/shop/sa/" } },
      },
    }],
  });
});

Deno.test("PERMISSIVE mTLS adds a TLS inspector and a plaintext filter chain with the same filters", () => {
  assert.deepEqual(web["listener_filters"], [{
    name: "envoy.filters.listener.tls_inspector",
    typed_config: {
      "@type":
        "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    },
  }]);
  const [tls, plain] = web["filter_chains"] as JsonObject[];
  assert.deepEqual(tls!["filter_chain_match"], { transport_protocol: "tls" });
  assert.ok("transport_socket" in tls!);
  assert.deepEqual(plain!["filter_chain_match"], { transport_protocol: "raw_buffer" });
  assert.ok(!("transport_socket" in plain!));
  assert.deepEqual(plain!["filters"], tls!["filters"]);
});

// A plaintext client of a server-speaks-first protocol sends nothing until the greeting: the TLS
// inspector would wait listener_filters_timeout (15s by default) and then close the connection
// (Listener.continue_on_listener_filters_timeout, api/envoy/config/listener/v3/listener.proto).
Deno.test("a PERMISSIVE TCP listener takes a silent client for plaintext after 1s", () => {
  assert.equal(cache["listener_filters_timeout"], "1s");
  assert.equal(cache["continue_on_listener_filters_timeout"], true);
  // HTTP clients speak first: HTTP listeners keep Envoy's default.
  assert.equal(web["listener_filters_timeout"], undefined);
  assert.equal(web["continue_on_listener_filters_timeout"], undefined);
});

// Network RBAC decides on the connection's first bytes (onData in
// source/extensions/filters/network/rbac/rbac_filter.cc), tcp_proxy connects upstream when the
// connection opens, and the TcpProxy of the Envoy API we build against has no way to wait: the RBAC
// filters come first, so no byte of a denied client reaches the app (docs/policies.md says what a
// TCP service's AuthorizationPolicy guarantees).
Deno.test("a TCP listener runs its RBAC filters before tcp_proxy", () => {
  assert.deepEqual(
    networkFilters(cache).map(([name]) => name).at(-1),
    "envoy.filters.network.tcp_proxy",
  );
  assert.ok(
    networkFilters(cache).slice(0, -1).every(([name]) =>
      name.startsWith("envoy.filters.network.rbac.")
    ),
  );
  assert.ok(networkFilters(cache).length > 1);
});

Deno.test("STRICT mTLS (the default) keeps one mTLS filter chain and no listener filter", () => {
  const s = withPolicies(inbound, [{
    kind: "MeshConfig",
    metadata: { name: "mesh" },
    spec: { mtls: { mode: "STRICT" } },
  }]);
  for (const name of ["inbound|15001", "inbound|15003"]) {
    const l = listener(s, name);
    assert.ok(!("listener_filters" in l), name);
    const chains = l["filter_chains"] as JsonObject[];
    assert.equal(chains.length, 1, name);
    assert.ok(!("filter_chain_match" in chains[0]!) && "transport_socket" in chains[0]!, name);
  }
});
