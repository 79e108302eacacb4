import assert from "node:assert/strict";
import { GRPC_CERTIFICATE_PROVIDER, serverListenerName } from "../../core/grpc_bootstrap.ts";
import { policySet } from "../../core/policy/model.ts";
import {
  assertEnvoyValid,
  bodyOf,
  grpcJsXdsError,
  loadCodec,
  type PolicyText,
  readScenario,
  type Scenario,
  storedPolicies,
} from "./_testing.ts";
import { TYPE_URL_PREFIX } from "./envoy.ts";
import { generateProxy } from "./generate.ts";
import type { JsonObject, ProxySnapshot } from "./model.ts";

const base = await readScenario("proxyless");
const codec = await loadCodec();

function scenario(options: { mtls: boolean; policies?: PolicyText[] }): Scenario {
  return {
    view: { ...base.view, policies: policySet(storedPolicies(options.policies ?? [])) },
    request: { ...base.request, ...(options.mtls ? { mtls: true } : {}) } as Scenario["request"],
  };
}

function generate(s: Scenario): ProxySnapshot {
  return generateProxy(s.view, s.request);
}

const PERMISSIVE: PolicyText = {
  kind: "MeshConfig",
  metadata: { name: "mesh" },
  spec: { mtls: { mode: "PERMISSIVE" } },
};

function denyVm1(): PolicyText {
  return {
    kind: "AuthorizationPolicy",
    metadata: { name: "no-vm-1", namespace: "shop" },
    spec: {
      service: "echo",
      action: "DENY",
      rules: [{
        from: [{ identities: ["spiffe://ironmesh.local/ns/shop/sa/vm-1"] }],
        to: [{ paths: ["/ironmesh.test.Echo/*"] }],
      }],
    },
  };
}

const SERVER_NAMES = ["10.0.1.2", "0.0.0.0", "::"].map((host) =>
  serverListenerName("vm-2", { host, port: 50051 })
).concat(
  ["10.0.2.3", "0.0.0.0", "::"].map((host) => serverListenerName("vm-3", { host, port: 50051 })),
).sort();

function serverListeners(snapshot: ProxySnapshot) {
  return snapshot.listeners.filter((l) => l.name.startsWith("ironmesh.io/inbound/"));
}

function chainOf(listener: JsonObject): JsonObject {
  return (listener["filter_chains"] as JsonObject[])[0]!;
}

function httpFilterNames(listener: JsonObject): string[] {
  const hcm = (chainOf(listener)["filters"] as JsonObject[])[0]!["typed_config"] as JsonObject;
  return (hcm["http_filters"] as JsonObject[]).map((f) => f["name"] as string);
}

Deno.test("serverListeners() gives an mTLS client in STRICT mode a Listener per gRPC instance and bind address", () => {
  const snapshot = generate(scenario({ mtls: true }));
  const listeners = serverListeners(snapshot);
  assert.deepEqual(listeners.map((l) => l.name).sort(), SERVER_NAMES);
  const l = bodyOf(snapshot, "listeners", serverListenerName("vm-2", { host: "::", port: 50051 }));
  assert.deepEqual(l["address"], { socket_address: { address: "::", port_value: 50051 } });
  const tls = (chainOf(l)["transport_socket"] as JsonObject)["typed_config"] as JsonObject;
  assert.equal(tls["require_client_certificate"], true);
  const common = tls["common_tls_context"] as JsonObject;
  assert.deepEqual(common["tls_certificate_provider_instance"], {
    instance_name: GRPC_CERTIFICATE_PROVIDER,
  });
  assert.deepEqual(
    (common["validation_context"] as JsonObject)["ca_certificate_provider_instance"],
    { instance_name: GRPC_CERTIFICATE_PROVIDER },
  );
  // Without a policy, a DENY filter that denies nothing: RBAC support is a condition of serving.
  assert.deepEqual(httpFilterNames(l), [
    "envoy.filters.http.rbac.deny",
    "envoy.filters.http.router",
  ]);
});

Deno.test("serverListeners() carries the sidecar's RBAC compilation of the service's policies", () => {
  const s = scenario({ mtls: true, policies: [denyVm1()] });
  const snapshot = generate(s);
  const l = bodyOf(
    snapshot,
    "listeners",
    serverListenerName("vm-3", { host: "0.0.0.0", port: 50051 }),
  );
  const hcm = (chainOf(l)["filters"] as JsonObject[])[0]!["typed_config"] as JsonObject;
  const deny = (hcm["http_filters"] as JsonObject[])[0]!["typed_config"] as JsonObject;
  assert.deepEqual(deny["rules"], {
    action: "DENY",
    policies: {
      "shop/no-vm-1": {
        permissions: [{ url_path: { path: { prefix: "/ironmesh.test.Echo/" } } }],
        principals: [{
          authenticated: { principal_name: { exact: "spiffe://ironmesh.local/ns/shop/sa/vm-1" } },
        }],
      },
    },
  });
});

Deno.test("proxyless clusters carry the certificate provider and the peers' SPIFFE IDs over mTLS only", () => {
  const secure = generate(scenario({ mtls: true }));
  const echo = bodyOf(secure, "clusters", "outbound|50051||echo.shop");
  const tls = (echo["transport_socket"] as JsonObject)["typed_config"] as JsonObject;
  assert.deepEqual(tls, {
    "@type": `${TYPE_URL_PREFIX}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
    common_tls_context: {
      tls_certificate_provider_instance: { instance_name: GRPC_CERTIFICATE_PROVIDER },
      validation_context: {
        ca_certificate_provider_instance: { instance_name: GRPC_CERTIFICATE_PROVIDER },
        match_subject_alt_names: [
          { exact: "spiffe://ironmesh.local/ns/shop/sa/vm-2" },
          { exact: "spiffe://ironmesh.local/ns/shop/sa/vm-3" },
        ],
      },
    },
  });
  // vm-2's echo runs behind a sidecar: over mTLS it is reached at the sidecar's inbound port.
  const ports = JSON.stringify(bodyOf(secure, "endpoints", "outbound|50051||echo.shop"));
  assert.match(ports, /"port_value":15002/);
  assert.match(ports, /"port_value":50051/);

  // A client without the provider, or a PERMISSIVE mesh: plaintext to the app ports, as before.
  for (const s of [scenario({ mtls: false }), scenario({ mtls: true, policies: [PERMISSIVE] })]) {
    const snapshot = generate(s);
    assert.ok(!("transport_socket" in bodyOf(snapshot, "clusters", "outbound|50051||echo.shop")));
    assert.doesNotMatch(
      JSON.stringify(bodyOf(snapshot, "endpoints", "outbound|50051||echo.shop")),
      /15002/,
    );
  }
});

Deno.test("serverListeners(): none for a client without the provider in STRICT mode, plaintext in PERMISSIVE", () => {
  assert.deepEqual(serverListeners(generate(scenario({ mtls: false }))), []);
  for (const mtls of [false, true]) {
    const listeners = serverListeners(generate(scenario({ mtls, policies: [PERMISSIVE] })));
    assert.deepEqual(listeners.map((l) => l.name).sort(), SERVER_NAMES);
    for (const l of listeners) assert.ok(!("transport_socket" in chainOf(l.body)), l.name);
  }
});

Deno.test({
  name: "proxyless mTLS resources pass Envoy's strict decoding and grpc-js-xds's own validation",
  ignore: codec === undefined,
  fn: async () => {
    for (const s of [scenario({ mtls: true, policies: [denyVm1()] }), scenario({ mtls: true })]) {
      const snapshot = generate(s);
      for (const kind of ["listeners", "clusters", "endpoints", "routes"] as const) {
        for (const r of snapshot[kind]) {
          const bytes = await assertEnvoyValid(r.typeUrl.slice(TYPE_URL_PREFIX.length), r.body);
          assert.equal(await grpcJsXdsError(r.typeUrl, bytes!), undefined, r.name);
        }
      }
    }
  },
});
