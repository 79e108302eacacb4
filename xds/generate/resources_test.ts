import assert from "node:assert/strict";
import { canonicalJson, contentVersion } from "./canonical.ts";
import { duration, escapeRegex, fractionalPercent, upstreamMtls } from "./envoy.ts";
import { matchesSelector } from "./generators.ts";
import type { JsonObject } from "./model.ts";
import { clusterLoadAssignment, edsCluster, routeConfiguration } from "./resources.ts";

Deno.test("duration() writes protobuf JSON durations", () => {
  assert.equal(duration(0), "0s");
  assert.equal(duration(5_000), "5s");
  assert.equal(duration(250), "0.250s");
  assert.equal(duration(1_005), "1.005s");
  assert.throws(() => duration(-1), /Invalid duration -1ms/);
  assert.throws(() => duration(1.5), /Invalid duration 1.5ms/);
});

Deno.test("canonicalJson() sorts keys at every level and keeps array order", () => {
  assert.equal(
    canonicalJson({ b: [2, 1], a: { d: null, c: "x" } }),
    '{"a":{"c":"x","d":null},"b":[2,1]}',
  );
  assert.equal(contentVersion({ a: 1, b: 2 }), contentVersion({ b: 2, a: 1 }));
  assert.match(contentVersion({}), /^[0-9a-f]{16}$/);
});

const EU_A = { region: "eu", zone: "eu-a" };
const EU_B = { region: "eu", zone: "eu-b" };

Deno.test("clusterLoadAssignment() groups by locality, weighs by count and drops repeated hosts", () => {
  const cla = clusterLoadAssignment("c", [
    { address: "10.0.0.3", port: 80, locality: EU_B },
    { address: "10.0.0.1", port: 80, locality: EU_A },
    { address: "10.0.0.2", port: 80, locality: EU_B },
    { address: "10.0.0.1", port: 80, locality: EU_A },
    { address: "10.0.0.9", port: 80, locality: { region: "", zone: "" } },
  ]);
  const localities = cla["endpoints"] as JsonObject[];
  assert.deepEqual(localities.map((l) => [l["locality"], l["load_balancing_weight"]]), [
    [{}, 1],
    [EU_A, 1],
    [EU_B, 2],
  ]);
  const hosts = (localities[2]!["lb_endpoints"] as JsonObject[]).map((e) =>
    ((e["endpoint"] as JsonObject)["address"] as JsonObject)["socket_address"]
  );
  assert.deepEqual(hosts, [
    { address: "10.0.0.2", port_value: 80 },
    { address: "10.0.0.3", port_value: 80 },
  ]);
});

Deno.test("clusterLoadAssignment() orders localities by priority and writes non-zero ones", () => {
  const US = { region: "us", zone: "us-a" };
  const cla = clusterLoadAssignment("c", [
    { address: "10.0.0.1", port: 80, locality: EU_A },
    { address: "10.0.0.2", port: 80, locality: US },
    { address: "10.0.0.3", port: 80, locality: EU_B },
  ], (l) => l === US ? 0 : l === EU_B ? 1 : 2);
  const localities = cla["endpoints"] as JsonObject[];
  assert.deepEqual(localities.map((l) => [l["locality"], l["priority"]]), [
    [US, undefined],
    [EU_B, 1],
    [EU_A, 2],
  ]);
});

Deno.test("fractionalPercent() takes the smallest denominator that holds the percentage", () => {
  assert.deepEqual(fractionalPercent(100), { numerator: 100 });
  assert.deepEqual(fractionalPercent(0), {});
  assert.deepEqual(fractionalPercent(12.5), { numerator: 1250, denominator: "TEN_THOUSAND" });
  assert.deepEqual(fractionalPercent(0.07), { numerator: 7, denominator: "TEN_THOUSAND" });
  assert.deepEqual(fractionalPercent(0.0005), { numerator: 5, denominator: "MILLION" });
  assert.deepEqual(fractionalPercent(1 / 3), { numerator: 3333, denominator: "MILLION" });
});

Deno.test("escapeRegex() escapes every RE2 metacharacter", () => {
  const special = "a.b*c+d?e(f)g[h]i{j}k|l^m$n\\o";
  assert.ok(new RegExp(`^${escapeRegex(special)}$`).test(special));
  assert.equal(escapeRegex("x-y_z"), "x-y_z");
});

Deno.test("clusterLoadAssignment() with no hosts names the cluster and nothing else", () => {
  assert.deepEqual(clusterLoadAssignment("c", []), { cluster_name: "c" });
});

Deno.test("upstreamMtls() never leaves the SAN list empty", () => {
  const tls = JSON.stringify(upstreamMtls("td", []));
  assert.match(tls, /"exact":"spiffe:\/\/td\/no-endpoints"/);
  assert.doesNotMatch(tls, /"prefix"/);
});

Deno.test("upstreamMtls() lets the client side speak TLS 1.3", () => {
  // Envoy's client default maximum is TLS 1.2 (TlsParameters,
  // api/envoy/extensions/transport_sockets/tls/v3/common.proto).
  const tls = upstreamMtls("td", ["spiffe://td/ns/a/sa/b"])["typed_config"] as JsonObject;
  const common = tls["common_tls_context"] as JsonObject;
  assert.deepEqual(common["tls_params"], { tls_maximum_protocol_version: "TLSv1_3" });
});

Deno.test("matchesSelector() needs every label of the selector", () => {
  assert.ok(matchesSelector({ version: "v1", tier: "web" }, {}));
  assert.ok(matchesSelector({ version: "v1", tier: "web" }, { version: "v1" }));
  assert.ok(!matchesSelector({ version: "v1" }, { version: "v2" }));
  assert.ok(!matchesSelector({}, { version: "v1" }));
});

Deno.test("routeConfiguration() and edsCluster() take their options", () => {
  const routes = [{ match: { prefix: "" }, route: { cluster: "c", timeout: "0s" } }];
  const route = routeConfiguration("r", ["a", "b"], routes);
  assert.deepEqual(route["virtual_hosts"], [{ name: "r", domains: ["a", "b"], routes }]);
  const plain = edsCluster("c", { connectTimeoutMs: 1_000 });
  assert.ok(!("transport_socket" in plain) && !("typed_extension_protocol_options" in plain));
  const h2 = edsCluster("c", {
    connectTimeoutMs: 1_000,
    http2: true,
    transportSocket: { name: "t" },
  });
  assert.deepEqual(h2["transport_socket"], { name: "t" });
  assert.ok("typed_extension_protocol_options" in h2);
});
