/**
 * What a push sends, end to end inside the server: a real registry on a
 * SQLite file, the push pipeline, the ADS server on 127.0.0.1:0 and test
 * clients (state of the world and delta) that subscribe as Envoy does and
 * ACK everything. Every push here is counted on the server side (each
 * response written), so "nothing else was sent" is exact, not a timeout.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../core/log.ts";
import { nodeRegistrationSchema } from "../core/model.ts";
import type { PolicyService } from "../policy/service.ts";
import type { Actor, Registry } from "../registry/registry.ts";
import { AdsServer, type ProxyPeer } from "./ads_server.ts";
import { startGrpcServer } from "./grpc_server.ts";
import { DEFAULT_CONNECTION_LIMITS } from "../core/server_config.ts";
import type { PushPipeline } from "./push.ts";
import { CDS, EDS, LDS, RDS, TestDeltaClient, TestSotwClient } from "./_ads_testing.ts";
import { openPushFixture } from "./_push_testing.ts";

const TRUST_DOMAIN = "ironmesh.test";
const agent: Actor = { tokenId: "agent", role: "agent", node: null };

function host(address: string, instances: unknown[], upstreams: unknown[] = []) {
  return nodeRegistrationSchema.parse({
    hostname: "h",
    addresses: [address],
    agentVersion: "test",
    heartbeatInterval: "5s",
    instances,
    upstreams,
  });
}

/**
 * vm-1 sends to api.shop and pg.data; vm-2 serves api.shop; vm-4 sends to
 * pg.data only; db-1 serves pg.data. Every sidecar's stream is in sync.
 */
async function withMesh(
  fn: (ctx: {
    registry: Registry;
    push: PushPipeline;
    policies: PolicyService;
    ads: AdsServer;
    /** `node typeUrl` of each response written since the last call. */
    sent: () => string[];
    sotw: Map<string, TestSotwClient>;
    delta: TestDeltaClient;
  }) => Promise<void>,
): Promise<void> {
  const mesh = await openPushFixture({
    trust: () => ({ trustDomain: TRUST_DOMAIN, bundlePem: "ROOT" }),
    // Pushes happen when the test says so (settle()), never on a timer.
    debounceMs: 3_600_000,
    maxDelayMs: 3_600_000,
    // Every snapshot these tests see has kept Envoy's validation rules, or it would not be served.
    envoyRules: true,
  });
  const { registry, push, policies } = mesh;
  await registry.register(
    "vm-1",
    host("10.0.1.1", [{ id: "web", namespace: "shop", service: "web", port: 8080 }], [
      { service: "api", namespace: "shop", localPort: 9001 },
      { service: "pg", namespace: "data", localPort: 9002 },
    ]),
    agent,
  );
  await registry.register(
    "vm-2",
    host("10.0.1.2", [{
      id: "api",
      namespace: "shop",
      service: "api",
      port: 8080,
      inboundPort: 15001,
    }]),
    agent,
  );
  await registry.register(
    "vm-4",
    host("10.0.1.4", [], [{ service: "pg", namespace: "data", localPort: 9002 }]),
    agent,
  );
  await registry.register(
    "db-1",
    host("10.0.9.1", [{
      id: "pg",
      namespace: "data",
      service: "pg",
      port: 5432,
      inboundPort: 15432,
      protocol: "tcp",
    }]),
    agent,
  );
  let log: string[] = [];
  const peerOf = (node: string): ProxyPeer => ({
    node,
    identity: `spiffe://${TRUST_DOMAIN}/ns/shop/sa/${node}`,
    kind: "sidecar",
  });
  const ads = new AdsServer({
    log: silentLogger,
    snapshotFor: (peer) => push.snapshotFor(peer),
    snapshotKey: (peer) => push.snapshotKey(peer),
    identify: (_call, node) => peerOf(node.id ?? ""),
    events: {
      sent: (typeUrl) => log.push(typeUrl),
    },
  });
  await push.start([ads]);
  mesh.follow();
  const listener = await startGrpcServer({ host: "127.0.0.1", port: 0 }, {
    isServing: () => true,
    ads,
    limits: DEFAULT_CONNECTION_LIMITS,
  });
  const sotw = new Map<string, TestSotwClient>();
  let delta: TestDeltaClient | null = null;
  try {
    for (const node of ["vm-1", "vm-2", "vm-4", "db-1"]) {
      const client = new TestSotwClient(listener.address.port, node);
      sotw.set(node, client);
      // As Envoy does: CDS and LDS wildcards, then EDS and RDS for the names they name.
      const snapshot = push.snapshotFor(peerOf(node));
      for (
        const [typeUrl, names] of [
          [CDS, []],
          [EDS, snapshot.endpoints.map((r) => r.name)],
          [LDS, []],
          [RDS, snapshot.routes.map((r) => r.name)],
        ] as const
      ) {
        client.subscribe(typeUrl, [...names]);
        client.ack(await client.next());
      }
    }
    delta = new TestDeltaClient(listener.address.port, "vm-1");
    for (const typeUrl of [CDS, EDS]) {
      delta.send({
        type_url: typeUrl,
        ...(typeUrl === EDS
          ? { resource_names_subscribe: ["outbound|8080||api.shop", "outbound|5432||pg.data"] }
          : {}),
      });
      delta.ack(await delta.next());
    }
    await waitFor(
      () => ads.status().every((s) => s.types.every((t) => t.inSync)),
      "every stream in sync",
    );
    log = [];
    await fn({
      registry,
      push,
      policies,
      ads,
      sent: () => {
        const out = log;
        log = [];
        return out;
      },
      sotw,
      delta,
    });
  } finally {
    for (const client of sotw.values()) await client.close();
    await delta?.close();
    await listener.stop(1_000);
    await mesh.close();
  }
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The sent version of `typeUrl` on `node`'s state-of-the-world stream. */
function sentVersion(ads: AdsServer, node: string, typeUrl: string): string | null {
  const status = ads.status().find((s) => s.node === node && !s.id.includes("-delta-"))!;
  return status.types.find((t) => t.typeUrl === typeUrl)!.sentVersion;
}

Deno.test("Push: an endpoint change sends EDS only, and only to the streams subscribed to it", () =>
  withMesh(async ({ registry, push, sent, sotw, delta }) => {
    // api's only instance fails its check: vm-1 (state of the world and delta) sends to api.
    await registry.heartbeat("vm-2", {
      checks: [{ id: "api", status: "failing", output: "" }],
    }, agent);
    await push.settle();
    assert.deepEqual(sent().sort(), [EDS, EDS]);
    const eds = await sotw.get("vm-1")!.next();
    assert.equal(eds.type_url, EDS);
    const deltaEds = await delta.next();
    assert.deepEqual(deltaEds.resources?.map((r) => r.name), ["outbound|8080||api.shop"]);
    for (const node of ["vm-2", "vm-4", "db-1"]) assert.equal(sotw.get(node)!.unread, 0);
  }));

Deno.test("Push: a policy on one service reaches only the proxies that send to or serve it; unchanged listeners keep their version", () =>
  withMesh(async ({ policies, push, ads, sent, sotw }) => {
    const lds = sentVersion(ads, "vm-1", LDS);
    // A TrafficRoute is client-side: vm-1 sends to api and gets the route, nothing else.
    await policies.apply([{
      apiVersion: "ironmesh.io/v1",
      kind: "TrafficRoute",
      metadata: { name: "api", namespace: "shop" },
      spec: { service: "api", rules: [{ timeout: "3s" }] },
    }], { actor: "test" });
    await push.settle();
    assert.deepEqual(sent(), [RDS]);
    assert.equal((await sotw.get("vm-1")!.next()).type_url, RDS);
    assert.equal(sentVersion(ads, "vm-1", LDS), lds, "vm-1's listeners kept their version");

    // An AuthorizationPolicy is server-side: vm-2 serves api and gets its inbound listener.
    const vm2Lds = sentVersion(ads, "vm-2", LDS);
    await policies.apply([{
      apiVersion: "ironmesh.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "api", namespace: "shop" },
      spec: { service: "api", action: "DENY", rules: [{ from: [{ namespaces: ["data"] }] }] },
    }], { actor: "test" });
    await push.settle();
    assert.deepEqual(sent(), [LDS]);
    assert.equal((await sotw.get("vm-2")!.next()).type_url, LDS);
    assert.notEqual(sentVersion(ads, "vm-2", LDS), vm2Lds);
    for (const node of ["vm-1", "vm-4", "db-1"]) assert.equal(sotw.get(node)!.unread, 0);
  }));

Deno.test("Push: a write that changes nothing a proxy sees sends nothing", () =>
  withMesh(async ({ registry, push, sent }) => {
    // Labels of a service no proxy reaches by them: the view moves, no configuration does.
    await registry.putService("shop", "web", { ports: [], labels: { tier: "front" } }, {});
    await push.settle();
    assert.deepEqual(sent(), []);
  }));
