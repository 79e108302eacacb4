import assert from "node:assert/strict";
import { type MeshConfigSpec, policySet } from "../../core/policy/model.ts";
import { readScenario, type Scenario, storedPolicies } from "./_testing.ts";
import { pathNormalizationFields } from "./connection_manager.ts";
import { TYPE, typeUrl } from "./envoy.ts";
import { generateProxy } from "./generate.ts";
import type { JsonObject, JsonValue, ProxySnapshot } from "./model.ts";

const HCM = typeUrl(TYPE.httpConnectionManager);

/** Every HttpConnectionManager of a snapshot's listeners, by listener and filter chain. */
function connectionManagers(snapshot: ProxySnapshot): [string, JsonObject][] {
  const out: [string, JsonObject][] = [];
  const visit = (where: string, value: JsonValue) => {
    if (Array.isArray(value)) value.forEach((v) => visit(where, v));
    else if (value !== null && typeof value === "object") {
      if (value["@type"] === HCM) out.push([where, value]);
      for (const child of Object.values(value)) visit(where, child);
    }
  };
  for (const l of snapshot.listeners) visit(l.name, l.body);
  return out;
}

function generate(s: Scenario): ProxySnapshot {
  return generateProxy(s.view, s.request);
}

function withMesh(s: Scenario, spec: MeshConfigSpec): Scenario {
  const policies = storedPolicies([{ kind: "MeshConfig", metadata: { name: "mesh" }, spec }]);
  return { ...s, view: { ...s.view, policies: policySet(policies) } };
}

// Envoy: normalize_path, merge_slashes and path_with_escaped_slashes_action default to off
// (api/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto);
// source/common/http/conn_manager_utility.cc maybeNormalizePath() unescapes %2F/%5C first, then
// normalizes (RFC 3986, PathUtil::canonicalPath), then merges slashes, all before any HTTP filter
// (RBAC) or route sees the path.
Deno.test("every sidecar HttpConnectionManager normalizes paths, merges slashes and refuses escaped slashes", async () => {
  // sidecar: one inbound and two outbound HTTP listeners; policy-inbound: two PERMISSIVE inbound
  // HTTP listeners of two filter chains each; policy-outbound: two outbound HTTP listeners.
  const counts = { "sidecar": 3, "policy-inbound": 4, "policy-outbound": 2 };
  for (const [name, count] of Object.entries(counts)) {
    const managers = connectionManagers(generate(await readScenario(name)));
    assert.equal(managers.length, count, name);
    for (const [listener, hcm] of managers) {
      assert.equal(hcm["normalize_path"], true, `${name} ${listener}`);
      assert.equal(hcm["merge_slashes"], true, `${name} ${listener}`);
      assert.equal(
        hcm["path_with_escaped_slashes_action"],
        "REJECT_REQUEST",
        `${name} ${listener}`,
      );
    }
  }
});

Deno.test("every HttpConnectionManager of a PERMISSIVE inbound listener normalizes, plaintext chain too", async () => {
  const managers = connectionManagers(generate(await readScenario("policy-inbound")));
  const web = managers.filter(([l]) => l === "inbound|15001");
  assert.equal(web.length, 2);
  for (const [, hcm] of web) assert.equal(hcm["normalize_path"], true);
});

Deno.test("MeshConfig pathNormalization sets the three fields of every sidecar HttpConnectionManager", async () => {
  const sidecar = await readScenario("sidecar");
  const cases: [MeshConfigSpec["pathNormalization"], JsonObject][] = [
    [undefined, {
      normalize_path: true,
      merge_slashes: true,
      path_with_escaped_slashes_action: "REJECT_REQUEST",
    }],
    [{ normalization: "BASE" }, {
      normalize_path: true,
      path_with_escaped_slashes_action: "REJECT_REQUEST",
    }],
    [{ normalization: "NONE", escapedSlashes: "KEEP" }, {
      normalize_path: false,
      path_with_escaped_slashes_action: "KEEP_UNCHANGED",
    }],
    [{ escapedSlashes: "REDIRECT" }, {
      normalize_path: true,
      merge_slashes: true,
      path_with_escaped_slashes_action: "UNESCAPE_AND_REDIRECT",
    }],
    // Istio's DECODE_AND_MERGE_SLASHES.
    [{ normalization: "MERGE_SLASHES", escapedSlashes: "DECODE" }, {
      normalize_path: true,
      merge_slashes: true,
      path_with_escaped_slashes_action: "UNESCAPE_AND_FORWARD",
    }],
  ];
  for (const [setting, expected] of cases) {
    const spec: MeshConfigSpec = setting ? { pathNormalization: setting } : {};
    assert.deepEqual(pathNormalizationFields(spec), expected);
    for (const [listener, hcm] of connectionManagers(generate(withMesh(sidecar, spec)))) {
      const actual = {
        normalize_path: hcm["normalize_path"],
        ...(hcm["merge_slashes"] !== undefined ? { merge_slashes: hcm["merge_slashes"] } : {}),
        path_with_escaped_slashes_action: hcm["path_with_escaped_slashes_action"],
      };
      assert.deepEqual(actual, expected, `${JSON.stringify(setting)} ${listener}`);
    }
  }
});

Deno.test("proxyless API listeners carry no path normalization: grpc-js-xds ignores it", async () => {
  const managers = connectionManagers(generate(await readScenario("proxyless")));
  assert.ok(managers.length > 0);
  for (const [listener, hcm] of managers) {
    assert.equal(hcm["normalize_path"], undefined, listener);
    assert.equal(hcm["path_with_escaped_slashes_action"], undefined, listener);
  }
});

// Envoy's server_header_transformation (default OVERWRITE) sets `server: envoy` as the response
// is encoded, after the route's response_headers_to_remove: only PASS_THROUGH lets a removal stand
// (api/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto).
Deno.test("an outbound HttpConnectionManager passes the server header through when a route removes it", async () => {
  const managers = new Map(connectionManagers(generate(await readScenario("policy-outbound"))));
  // api's "search" rule removes `server`; echo's routes do not.
  assert.equal(managers.get("outbound|9001")!["server_header_transformation"], "PASS_THROUGH");
  assert.equal(managers.get("outbound|9002")!["server_header_transformation"], undefined);
});

// Envoy refuses an Upgrade with 403 unless the connection manager lists it in upgrade_configs
// (HttpConnectionManager.UpgradeConfig); Istio allows websocket on every HTTP connection manager.
Deno.test("every sidecar HttpConnectionManager lets WebSocket upgrades through", async () => {
  for (const name of ["sidecar", "policy-inbound", "policy-outbound"]) {
    for (const [listener, hcm] of connectionManagers(generate(await readScenario(name)))) {
      assert.deepEqual(hcm["upgrade_configs"], [{ upgrade_type: "websocket" }], listener);
    }
  }
});

// Envoy's stream_idle_timeout (default 300s) ends a stream with no frame either way: a quiet
// gRPC watch stream (HttpConnectionManager.stream_idle_timeout).
Deno.test("gRPC HttpConnectionManagers keep quiet streams open and ping their peers", async () => {
  const managers = new Map(connectionManagers(generate(await readScenario("policy-outbound"))));
  const echo = managers.get("outbound|9002")!; // echo is a gRPC service
  assert.equal(echo["stream_idle_timeout"], "0s");
  assert.deepEqual(echo["http2_protocol_options"], {
    connection_keepalive: { interval: "60s", timeout: "20s" },
  });
  const api = managers.get("outbound|9001")!; // api is HTTP
  assert.equal(api["stream_idle_timeout"], undefined);
});
