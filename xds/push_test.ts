import assert from "node:assert/strict";
import { meshChange } from "../core/mesh_change.ts";
import { type CertificateRecord, nodeRegistrationSchema } from "../core/model.ts";
import { type AnyPolicy, policyKey, policySet } from "../core/policy/model.ts";
import { type Actor, Registry } from "../registry/registry.ts";
import type { Store } from "../store/store.ts";
import type { AdsServer, ProxyPeer } from "./ads_server.ts";
import { assertEnvoyValid, goldenText, loadCodec, snapshotYaml } from "./generate/_testing.ts";
import { TYPE_URL_PREFIX } from "./generate/envoy.ts";
import { consistent } from "./generate/generate.ts";
import { type JsonObject, type Resource, RESOURCE_KINDS } from "./generate/model.ts";
import { openPushFixture } from "./_push_testing.ts";
import type { PushPipeline } from "./push.ts";

const TRUST_DOMAIN = "ironmesh.test";
const BUNDLE =
  "-----BEGIN CERTIFICATE-----\nMIIBfakeROOTforPUSHtestsONLY\n-----END CERTIFICATE-----\n";
const agent: Actor = { tokenId: "agent-1", role: "agent", node: null };
const codec = await loadCodec();

const identityOf = (node: string, namespace = "shop") =>
  `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${node}`;

function certificate(node: string, namespace: string): CertificateRecord {
  return {
    serial: `${node}-serial`,
    node,
    identity: identityOf(node, namespace),
    tokenId: null,
    root: "00",
    kind: "enrol",
    notBefore: "2020-01-01T00:00:00.000Z",
    notAfter: "2999-01-01T00:00:00.000Z",
    issuedAt: "2020-01-01T00:00:00.000Z",
    supersededAt: null,
    revokedAt: null,
    revokeReason: null,
  };
}

/** The sidecar host of the scenario: two services behind inbound listeners, one without, two upstreams. */
const VM1 = {
  hostname: "vm-1",
  addresses: ["10.0.1.1", "192.168.0.1"],
  labels: { region: "eu-west-1", zone: "eu-west-1a" },
  agentVersion: "test",
  heartbeatInterval: "5s",
  instances: [
    { id: "web", namespace: "shop", service: "web", port: 8080, inboundPort: 15001 },
    {
      id: "cache",
      namespace: "shop",
      service: "cache",
      port: 6379,
      inboundPort: 15002,
      protocol: "tcp",
    },
    // Reached directly (a proxyless client, say): no inbound listener.
    { id: "metrics", namespace: "shop", service: "metrics", port: 9100 },
  ],
  upstreams: [
    { service: "api", namespace: "shop", localPort: 9001 },
    { service: "pg", namespace: "data", localPort: 9002 },
  ],
};

/** A registry on a real SQLite file with the scenario registered, and a started push pipeline. */
async function withMesh(
  fn: (ctx: {
    registry: Registry;
    store: Store;
    push: PushPipeline;
    pushes: () => number;
  }) => Promise<void>,
): Promise<void> {
  let pushes = 0;
  // A stand-in for the stream server: it counts pushes and has no proxy connected.
  const server = {
    push: () => Promise.resolve(void pushes++),
    status: () => [],
  } as unknown as AdsServer;
  const mesh = await openPushFixture({
    trust: () => ({ trustDomain: TRUST_DOMAIN, bundlePem: BUNDLE }),
    debounceMs: 1,
    maxDelayMs: 10,
    // Every snapshot these tests see has kept Envoy's validation rules, or it would not be served.
    envoyRules: true,
  });
  const { registry, store, push } = mesh;
  const register = (name: string, body: unknown) =>
    registry.register(name, nodeRegistrationSchema.parse(body), agent);
  const host = (address: string, instances: unknown[]) => ({
    hostname: "h",
    addresses: [address],
    agentVersion: "test",
    heartbeatInterval: "5s",
    instances,
  });
  try {
    await register("vm-1", VM1);
    await register(
      "vm-2",
      host("10.0.1.2", [{
        id: "api",
        namespace: "shop",
        service: "api",
        port: 8080,
        inboundPort: 15001,
      }]),
    );
    // An api instance without a sidecar: sidecars cannot reach it with mTLS.
    await register(
      "vm-3",
      host("10.0.2.3", [{ id: "api", namespace: "shop", service: "api", port: 8080 }]),
    );
    await register(
      "db-1",
      host("10.0.9.1", [{
        id: "pg",
        namespace: "data",
        service: "pg",
        port: 5432,
        inboundPort: 15432,
        protocol: "tcp",
      }]),
    );
    for (
      const [node, namespace] of [["vm-1", "shop"], ["vm-2", "shop"], ["vm-3", "shop"], [
        "db-1",
        "data",
      ]] as const
    ) {
      await store.recordIssuance(certificate(node, namespace));
    }
    await push.start([server]);
    mesh.follow();
    await fn({ registry, store, push, pushes: () => pushes });
  } finally {
    await mesh.close();
  }
}

const sidecar = (node: string): ProxyPeer => ({
  node,
  identity: identityOf(node),
  kind: "sidecar",
});

const names = (resources: readonly Resource[]) => resources.map((r) => r.name);

function socketAddress(body: JsonObject): unknown {
  return (body["address"] as JsonObject)["socket_address"];
}

function lbHosts(body: JsonObject): unknown[] {
  const endpoints = (body["endpoints"] ?? []) as JsonObject[];
  return endpoints.flatMap((e) =>
    (e["lb_endpoints"] as JsonObject[]).map((lb) =>
      ((lb["endpoint"] as JsonObject)["address"] as JsonObject)["socket_address"]
    )
  );
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("PushPipeline gives a registered sidecar its inbound listeners, upstreams and endpoints", () =>
  withMesh(async ({ push }) => {
    const snapshot = push.snapshotFor(sidecar("vm-1"));
    // Inbound on the node's first address for the two services with an inbound port; the
    // third (no inboundPort) gets nothing. Outbound on loopback for the two upstreams.
    assert.deepEqual(names(snapshot.listeners), [
      "inbound|15001",
      "inbound|15002",
      "outbound|9001",
      "outbound|9002",
    ]);
    const listener = (name: string) => snapshot.listeners.find((l) => l.name === name)!.body;
    // Inbound listeners take every address of the host; peers may dial any of them.
    assert.deepEqual(socketAddress(listener("inbound|15001")), {
      address: "0.0.0.0",
      port_value: 15001,
    });
    assert.deepEqual(socketAddress(listener("inbound|15002")), {
      address: "0.0.0.0",
      port_value: 15002,
    });
    assert.deepEqual(socketAddress(listener("outbound|9002")), {
      address: "127.0.0.1",
      port_value: 9002,
    });
    assert.deepEqual(names(snapshot.clusters), [
      "inbound|6379",
      "inbound|8080",
      "outbound|5432||pg.data",
      "outbound|8080||api.shop",
    ]);
    // Peers at their sidecar's inbound port; vm-3's api has no sidecar and is left out.
    const endpoints = (name: string) =>
      lbHosts(snapshot.endpoints.find((e) => e.name === name)!.body);
    assert.deepEqual(endpoints("outbound|8080||api.shop"), [
      { address: "10.0.1.2", port_value: 15001 },
    ]);
    assert.deepEqual(endpoints("outbound|5432||pg.data"), [
      { address: "10.0.9.1", port_value: 15432 },
    ]);
    // HTTP upstream routes via RDS; TCP does not.
    // The upstream's routes, and the HTTP inbound listener's over RDS.
    assert.deepEqual(names(snapshot.routes), ["api.shop:8080", "inbound|15001"]);
    // The server sends the bundle only; the agent serves `default`.
    assert.deepEqual(names(snapshot.secrets), ["ROOTCA"]);
    // The mTLS cluster accepts exactly the api instances' identities.
    const apiCluster = JSON.stringify(
      snapshot.clusters.find((c) => c.name === "outbound|8080||api.shop")!.body,
    );
    assert.ok(apiCluster.includes(identityOf("vm-2")) && apiCluster.includes(identityOf("vm-3")));

    assert.deepEqual(consistent(snapshot), []);
    const actual = snapshotYaml(snapshot);
    assert.equal(actual, await goldenText("push-sidecar", actual));

    // One snapshot per node per push.
    assert.equal(push.snapshotFor(sidecar("vm-1")), snapshot);
  }));

Deno.test({
  name: "PushPipeline's sidecar snapshot passes strict protobuf decoding",
  ignore: codec === undefined,
  fn: () =>
    withMesh(async ({ push }) => {
      const snapshot = push.snapshotFor(sidecar("vm-1"));
      let count = 0;
      for (const kind of RESOURCE_KINDS) {
        for (const r of snapshot[kind]) {
          assert.ok(r.typeUrl.startsWith(TYPE_URL_PREFIX));
          assert.ok(await assertEnvoyValid(r.typeUrl.slice(TYPE_URL_PREFIX.length), r.body));
          count++;
        }
      }
      assert.equal(count, 4 + 4 + 2 + 2 + 1);
    }),
});

Deno.test("PushPipeline: a sidecar change in a registration bumps the revision and is pushed", () =>
  withMesh(async ({ registry, push, pushes }) => {
    const before = push.snapshotFor(sidecar("vm-1"));
    const revision = registry.feed.revision;

    // The same registration again: no revision, no push.
    await registry.register("vm-1", nodeRegistrationSchema.parse(VM1), agent);
    assert.equal(registry.feed.revision, revision);

    // A new inbound port and one upstream less.
    const changed = {
      ...VM1,
      instances: VM1.instances.map((i) => i.id === "web" ? { ...i, inboundPort: 15005 } : i),
      upstreams: VM1.upstreams.slice(0, 1),
    };
    const { node, instances } = await registry.register(
      "vm-1",
      nodeRegistrationSchema.parse(changed),
      agent,
    );
    assert.ok(registry.feed.revision > revision);
    assert.deepEqual(node.upstreams, [{ service: "api", namespace: "shop", localPort: 9001 }]);
    assert.deepEqual(instances.map((i) => [i.id, i.inboundPort]), [
      ["web@vm-1", 15005],
      ["cache@vm-1", 15002],
      ["metrics@vm-1", null],
    ]);
    await waitFor(() => pushes() > 0, "a push");
    const after = push.snapshotFor(sidecar("vm-1"));
    assert.notEqual(after, before);
    assert.deepEqual(names(after.listeners), ["inbound|15002", "inbound|15005", "outbound|9001"]);
    assert.deepEqual(names(after.clusters), [
      "inbound|6379",
      "inbound|8080",
      "outbound|8080||api.shop",
    ]);
  }));

Deno.test("PushPipeline: peers see a new inbound port in EDS; an unknown node gets no listeners", () =>
  withMesh(async ({ registry, push, pushes }) => {
    await registry.register(
      "vm-3",
      nodeRegistrationSchema.parse({
        hostname: "h",
        addresses: ["10.0.2.3"],
        agentVersion: "test",
        heartbeatInterval: "5s",
        instances: [{
          id: "api",
          namespace: "shop",
          service: "api",
          port: 8080,
          inboundPort: 15001,
        }],
      }),
      agent,
    );
    await waitFor(() => pushes() > 0, "a push");
    const api = push.snapshotFor(sidecar("vm-1")).endpoints.find((e) =>
      e.name === "outbound|8080||api.shop"
    )!;
    assert.deepEqual(lbHosts(api.body).length, 2);

    const stranger = push.snapshotFor(sidecar("vm-9"));
    assert.deepEqual(names(stranger.listeners), []);
    assert.deepEqual(names(stranger.clusters), []);
    assert.deepEqual(names(stranger.secrets), ["ROOTCA"]);
  }));

/** Stores `policy` as `actor` would through the API, and tells the pipeline. */
async function writePolicy(store: Store, push: PushPipeline, policy: AnyPolicy): Promise<void> {
  await store.writePolicies({
    writes: [{ op: "put", policy }],
    actor: "test",
    at: "2026-01-01T00:00:00.000Z",
  });
  push.changed(
    meshChange({
      policies: [policyKey(policy.kind, policy.metadata.namespace, policy.metadata.name)],
    }),
  );
}

function policy<K extends AnyPolicy["kind"]>(
  kind: K,
  namespace: string,
  spec: Extract<AnyPolicy, { kind: K }>["spec"],
): AnyPolicy {
  return {
    apiVersion: "ironmesh.io/v1",
    kind,
    metadata: {
      name: "p",
      namespace,
      labels: {},
      revision: 0,
      createdAt: "2026-01-01T00:00:00.000Z",
      updatedAt: "2026-01-01T00:00:00.000Z",
      updatedBy: "test",
    },
    spec,
  } as AnyPolicy;
}

Deno.test("PushPipeline: a policy write recomputes only the proxies it affects", () =>
  withMesh(async ({ store, push, pushes }) => {
    const vm1 = push.snapshotFor(sidecar("vm-1"));
    const vm2 = push.snapshotFor(sidecar("vm-2"));
    const db1 = push.snapshotFor(sidecar("db-1"));

    // A TrafficRoute of api.shop: vm-1 sends to api; vm-2 serves it; db-1 has nothing to do with it.
    await writePolicy(
      store,
      push,
      policy("TrafficRoute", "shop", { service: "api", rules: [{ timeout: "3s" }] }),
    );
    await waitFor(() => pushes() === 1, "the TrafficRoute push");
    const vm1Route = push.snapshotFor(sidecar("vm-1"));
    assert.notEqual(vm1Route, vm1, "vm-1 sends to api: recomputed");
    assert.notDeepEqual(vm1Route.routes, vm1.routes);
    assert.equal(push.snapshotFor(sidecar("vm-2")), vm2, "a route is client-side: vm-2 kept");
    assert.equal(push.snapshotFor(sidecar("db-1")), db1, "db-1 kept");

    // An AuthorizationPolicy of pg.data changes what db-1 accepts, and nothing vm-1 sends.
    await writePolicy(
      store,
      push,
      policy("AuthorizationPolicy", "data", {
        service: "pg",
        action: "DENY",
        rules: [{ from: [{ namespaces: ["shop"] }] }],
      }),
    );
    await waitFor(() => pushes() === 2, "the AuthorizationPolicy push");
    assert.notEqual(push.snapshotFor(sidecar("db-1")), db1, "db-1 serves pg: recomputed");
    assert.equal(push.snapshotFor(sidecar("vm-1")), vm1Route, "vm-1 only sends to pg: kept");
    assert.equal(push.snapshotFor(sidecar("vm-2")), vm2);

    // MeshConfig reaches everyone.
    await writePolicy(store, push, {
      ...policy("MeshConfig", "", { mtls: { mode: "PERMISSIVE" } }),
      metadata: { ...policy("MeshConfig", "", {}).metadata, name: "mesh" },
    } as AnyPolicy);
    await waitFor(() => pushes() === 3, "the MeshConfig push");
    assert.notEqual(push.snapshotFor(sidecar("vm-2")), vm2);
  }));

Deno.test("PushPipeline: a dry run lists the proxies a policy would change, with diffs, and stores nothing", () =>
  withMesh(({ push }) => {
    const before = push.snapshotFor(sidecar("vm-1"));
    const route = policy("TrafficRoute", "shop", { service: "api", rules: [{ timeout: "3s" }] });
    const changes = push.preview(policySet([route]));
    assert.deepEqual(changes.map((c) => `${c.kind} ${c.target}`), ["sidecar vm-1"]);
    const routeChange = changes[0]!.changes.find((c) => c.type === "routes");
    assert.equal(routeChange?.op, "changed");
    assert.ok(
      routeChange?.diff?.some((d) => d.pointer.endsWith("/route/timeout") && d.after === "3s"),
      JSON.stringify(routeChange?.diff),
    );
    assert.equal(push.snapshotFor(sidecar("vm-1")), before, "nothing served changed");
    assert.deepEqual(push.preview(policySet([])), [], "the current policies change nothing");
    return Promise.resolve();
  }));

Deno.test("PushPipeline: MeshConfig's push settings replace the server's debounce", () =>
  withMesh(async ({ store, registry, push, pushes }) => {
    await writePolicy(store, push, {
      ...policy("MeshConfig", "", { push: { debounce: "60s", maxDelay: "60s" } }),
      metadata: { ...policy("MeshConfig", "", {}).metadata, name: "mesh" },
    } as AnyPolicy);
    // The write itself is pushed on the server's 1 ms debounce; later changes wait a minute.
    await waitFor(() => pushes() === 1, "the MeshConfig push");
    assert.equal(push.meshConfig()?.spec.push?.debounce, "60s");
    await registry.drainNode("vm-2", true, {});
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(pushes(), 1, "the registry change waits for MeshConfig's debounce");
  }));

Deno.test("PushPipeline: a stored policy no generator can compile leaves proxies on their last configuration", () =>
  withMesh(async ({ store, push, pushes }) => {
    const before = push.snapshotFor(sidecar("vm-1"));
    // Stored around validation, which refuses an abort with no status; the generator throws on it.
    await writePolicy(
      store,
      push,
      policy("TrafficRoute", "shop", {
        service: "api",
        rules: [{ fault: { abort: { percent: 100 } } }],
      }),
    );
    await waitFor(() => pushes() === 1, "the push");
    assert.equal(push.snapshotFor(sidecar("vm-1")), before, "vm-1 keeps its last configuration");
  }));

Deno.test("PushPipeline: an inconsistent snapshot is not served; the proxy keeps its last", async () => {
  // A stand-in for a generator bug: once broken, every snapshot names a cluster it lacks.
  let broken = false;
  const mesh = await openPushFixture({
    trust: () => ({ trustDomain: TRUST_DOMAIN, bundlePem: BUNDLE }),
    debounceMs: 3_600_000,
    consistent: (snapshot) => broken ? ['Listener uses cluster "ghost"'] : consistent(snapshot),
  });
  const { registry, push } = mesh;
  mesh.follow();
  try {
    await registry.register("vm-1", nodeRegistrationSchema.parse(VM1), agent);
    await push.start([]);
    const before = push.snapshotFor(sidecar("vm-1"));
    assert.ok(before.listeners.length > 0);
    broken = true;
    await registry.register("vm-1", nodeRegistrationSchema.parse({ ...VM1, upstreams: [] }), agent);
    await push.settle();
    assert.equal(push.snapshotFor(sidecar("vm-1")), before, "vm-1 keeps its last snapshot");
    const fresh = push.snapshotFor(sidecar("vm-2"));
    assert.deepEqual(
      RESOURCE_KINDS.map((k) => fresh[k].length),
      [0, 0, 0, 0, 0],
      "nothing to keep: nothing served",
    );
    broken = false;
    await registry.register("vm-1", nodeRegistrationSchema.parse({ ...VM1, labels: {} }), agent);
    await push.settle();
    assert.deepEqual(names(push.snapshotFor(sidecar("vm-1")).listeners), [
      "inbound|15001",
      "inbound|15002",
    ], "served again once consistent");
  } finally {
    await mesh.close();
  }
});
