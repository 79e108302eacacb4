import assert from "node:assert/strict";
import { indexPolicies } from "./match.ts";
import { type AnyPolicy, API_VERSION, type PolicyKind, policySet, SPEC_SCHEMAS } from "./model.ts";
import { proxylessGaps } from "./proxyless_gaps.ts";

function stored(kind: PolicyKind, name: string, spec: unknown): AnyPolicy {
  return {
    apiVersion: API_VERSION,
    kind,
    metadata: {
      name,
      namespace: kind === "MeshConfig" ? "" : "shop",
      labels: {},
      revision: 1,
      createdAt: "2026-12-07T00:00:00Z",
      updatedAt: "2026-12-07T00:00:00Z",
      updatedBy: "test",
    },
    spec: SPEC_SCHEMAS[kind].parse(spec),
  } as AnyPolicy;
}

const echo = { namespace: "shop", service: "echo" };

Deno.test("proxylessGaps() names each field a proxyless proxy cannot honour, and what happens instead", () => {
  const index = indexPolicies(policySet([
    stored("MeshConfig", "mesh", { mtls: { mode: "PERMISSIVE" } }),
    stored("TrafficRoute", "echo", {
      service: "echo",
      rules: [{
        mirror: { service: "echo" },
        retries: { attempts: 2, perTryTimeout: "1s", on: ["retriable-4xx", "5xx"] },
      }],
    }),
    stored("DestinationPolicy", "echo", {
      service: "echo",
      loadBalancer: { algorithm: "LEAST_REQUEST" },
      connectionPool: { maxRequests: 10, maxConnections: 5 },
    }),
    stored("RateLimit", "echo", { service: "echo", limit: { requests: 10, per: "1s" } }),
    stored("AuthorizationPolicy", "echo", {
      service: "echo",
      action: "ALLOW",
      rules: [{ from: [{ namespaces: ["shop"] }] }],
    }),
  ]));
  const gaps = proxylessGaps(index, { outbound: [echo], inbound: [echo] });
  assert.deepEqual(gaps.map((g) => `${g.kind} ${g.field}`), [
    "MeshConfig /mtls/mode",
    "TrafficRoute /rules/0/mirror",
    "TrafficRoute /rules/0/retries/perTryTimeout",
    "TrafficRoute /rules/0/retries/on",
    "DestinationPolicy /loadBalancer/algorithm",
    "DestinationPolicy /connectionPool/maxConnections",
    "RateLimit ",
    "AuthorizationPolicy /rules",
  ]);
  assert.match(gaps.find((g) => g.kind === "RateLimit")!.effect, /not enforced/);
});

Deno.test("proxylessGaps() finds nothing in policies gRPC honours in full", () => {
  const index = indexPolicies(policySet([
    stored("TrafficRoute", "echo", {
      service: "echo",
      rules: [{ split: [{ service: "echo", weight: 100 }], timeout: "2s" }],
    }),
    stored("AuthorizationPolicy", "echo", {
      service: "echo",
      action: "DENY",
      rules: [{ from: [{ identities: ["spiffe://ironmesh.local/ns/shop/sa/x"] }] }],
    }),
  ]));
  assert.deepEqual(proxylessGaps(index, { outbound: [echo], inbound: [echo] }), []);
});
