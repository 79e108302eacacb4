import assert from "node:assert/strict";
import {
  assertEnvoyValid,
  goldenText,
  grpcJsXdsError,
  loadCodec,
  readScenario,
  type Scenario,
  seededRandom,
  shuffled,
  snapshotYaml,
} from "./_testing.ts";
import { SERVER_LISTENER_PREFIX } from "../../core/grpc_bootstrap.ts";
import { TYPE_URL_PREFIX } from "./envoy.ts";
import { consistent, generateProxy, typeVersion } from "./generate.ts";
import type { JsonObject, MeshView, ProxySnapshot, SidecarRequest } from "./model.ts";
import { RESOURCE_KINDS } from "./model.ts";
import { buildPushContext } from "./push_context.ts";

const SCENARIOS = [
  "sidecar",
  "proxyless",
  "no-healthy",
  "policy-outbound",
  "policy-inbound",
  "policy-proxyless",
];
const codec = await loadCodec();

function generate(s: Scenario): ProxySnapshot {
  return generateProxy(s.view, s.request, s.options ?? {});
}

for (const name of SCENARIOS) {
  Deno.test(`generateProxy() matches testdata/${name}.golden.yaml`, async () => {
    const actual = snapshotYaml(generate(await readScenario(name)));
    assert.equal(actual, await goldenText(name, actual));
  });

  Deno.test(`consistent() finds nothing missing in the ${name} snapshot`, async () => {
    assert.deepEqual(consistent(generate(await readScenario(name))), []);
  });

  Deno.test({
    name: `generateProxy() output for ${name} passes strict protobuf decoding`,
    ignore: codec === undefined,
    fn: async () => {
      const snapshot = generate(await readScenario(name));
      for (const kind of RESOURCE_KINDS) {
        for (const r of snapshot[kind]) {
          assert.ok(r.typeUrl.startsWith(TYPE_URL_PREFIX));
          assert.ok(await assertEnvoyValid(r.typeUrl.slice(TYPE_URL_PREFIX.length), r.body));
        }
      }
    },
  });
}

const PROXYLESS_SCENARIOS = ["proxyless", "policy-proxyless"];

for (const name of PROXYLESS_SCENARIOS) {
  Deno.test({
    name: `generateProxy() output for ${name} passes grpc-js-xds's own validation`,
    ignore: codec === undefined,
    fn: async () => {
      const snapshot = generate(await readScenario(name));
      for (const kind of ["listeners", "routes", "clusters", "endpoints"] as const) {
        assert.ok(snapshot[kind].length > 0, kind);
        for (const r of snapshot[kind]) {
          const bytes = await assertEnvoyValid(r.typeUrl.slice(TYPE_URL_PREFIX.length), r.body);
          assert.equal(await grpcJsXdsError(r.typeUrl, bytes!), undefined, r.name);
        }
      }
    },
  });
}

function shuffledScenario(s: Scenario, seed: number): Scenario {
  const random = seededRandom(seed);
  const view: MeshView = {
    ...s.view,
    services: shuffled(s.view.services, random).map((svc) => ({
      ...svc,
      ports: shuffled(svc.ports, random),
    })),
    endpoints: shuffled(s.view.endpoints, random),
  };
  const request = s.request.kind === "sidecar"
    ? {
      ...s.request,
      inbound: shuffled(s.request.inbound, random),
      upstreams: shuffled(s.request.upstreams, random),
    }
    : s.request;
  return { ...s, view, request };
}

Deno.test("generateProxy() gives the same bytes and versions for shuffled input", async () => {
  for (const name of SCENARIOS) {
    const s = await readScenario(name);
    const expected = snapshotYaml(generate(s));
    for (let seed = 1; seed <= 20; seed++) {
      assert.equal(
        snapshotYaml(generate(shuffledScenario(s, seed))),
        expected,
        `${name}, seed ${seed}`,
      );
    }
  }
});

Deno.test("generateProxy() gives every proxy of a shared push what a push of its own gives", async () => {
  const s = await readScenario("sidecar");
  const p = await readScenario("proxyless");
  const view: MeshView = {
    ...s.view,
    services: [...s.view.services, ...p.view.services.filter((x) => x.namespace === "hello")],
    endpoints: [...s.view.endpoints, ...p.view.endpoints.filter((x) => x.namespace === "hello")],
  };
  const requests = [
    s.request,
    p.request,
    { ...p.request, identity: "spiffe://ironmesh.local/ns/hello/sa/vm-1" },
    {
      ...(s.request as SidecarRequest),
      upstreams: [{ service: "api", namespace: "shop", localPort: 7000 }],
    },
    s.request,
    p.request,
  ];
  const push = buildPushContext(view);
  for (const [i, request] of requests.entries()) {
    for (const options of [{}, { connectTimeoutMs: 1_000 }]) {
      const alone = generateProxy(view, request, options);
      assert.equal(
        snapshotYaml(generateProxy(push, request, options)),
        snapshotYaml(alone),
        `#${i}`,
      );
    }
  }
});

Deno.test("generateProxy() with policies gives every proxy of a shared push what a push of its own gives", async () => {
  const out = await readScenario("policy-outbound");
  const inb = await readScenario("policy-inbound");
  const pl = await readScenario("policy-proxyless");
  const keep = new Set(out.view.services.map((s) => `${s.namespace}/${s.name}`));
  const extra = <T extends { namespace: string }>(list: readonly T[], name: (x: T) => string) =>
    list.filter((x) => !keep.has(`${x.namespace}/${name(x)}`));
  const policies = (s: typeof out) => s.view.policies!;
  const view: MeshView = {
    ...out.view,
    services: [
      ...out.view.services,
      ...extra(inb.view.services, (s) => s.name),
      ...extra(pl.view.services, (s) => s.name),
    ],
    endpoints: [
      ...out.view.endpoints,
      ...extra(inb.view.endpoints, (e) => e.service),
      ...extra(pl.view.endpoints, (e) => e.service),
    ],
    policies: {
      trafficRoutes: [...policies(out).trafficRoutes, ...policies(pl).trafficRoutes],
      destinationPolicies: [
        ...policies(out).destinationPolicies,
        ...policies(pl).destinationPolicies.filter((p) => p.spec.service !== "echo"),
      ],
      authorizationPolicies: policies(inb).authorizationPolicies,
      rateLimits: policies(inb).rateLimits,
      meshConfig: policies(pl).meshConfig,
    },
  };
  const sidecar = out.request as SidecarRequest;
  const { locality: _, ...nowhere } = sidecar;
  const requests = [
    out.request,
    { ...sidecar, locality: { region: "us-east-1", zone: "us-east-1a" } },
    { ...sidecar, node: "vm-9", inbound: (inb.request as SidecarRequest).inbound },
    nowhere,
    pl.request,
    { ...pl.request, locality: { region: "ap-south-1", zone: "ap-south-1a" } },
    { ...pl.request, identity: "spiffe://ironmesh.local/ns/hello/sa/vm-1" },
    out.request,
    pl.request,
  ];
  const push = buildPushContext(view);
  for (const [i, request] of requests.entries()) {
    for (const options of [{}, { connectTimeoutMs: 1_000 }]) {
      const together = generateProxy(push, request, options);
      assert.equal(
        snapshotYaml(together),
        snapshotYaml(generateProxy(view, request, options)),
        `#${i}`,
      );
      assert.deepEqual(consistent(together), [], `#${i}`);
    }
  }
});

Deno.test("generateProxy() freezes the resources that proxies share", async () => {
  const s = await readScenario("sidecar");
  const snapshot = generate(s);
  assert.throws(() => {
    (snapshot.clusters.at(-1)!.body as Record<string, unknown>)["name"] = "x";
  }, TypeError);
});

function frozenInside(value: unknown, path = ""): string[] {
  if (typeof value !== "object" || value === null) return [];
  return [
    ...(Object.isFrozen(value) ? [path || "/"] : []),
    ...Object.entries(value).flatMap(([k, v]) => frozenInside(v, `${path}/${k}`)),
  ];
}

Deno.test("generateProxy() leaves its input untouched, and unfrozen", async () => {
  for (const name of SCENARIOS) {
    const s = await readScenario(name);
    const before = JSON.stringify(s);
    generate(s);
    assert.equal(JSON.stringify(s), before, name);
    assert.deepEqual(frozenInside(s), [], name);
  }
});

function versions(snapshot: ProxySnapshot, kind: keyof ProxySnapshot): Record<string, string> {
  return Object.fromEntries(snapshot[kind].map((r) => [r.name, r.version]));
}

Deno.test("generateProxy() changes only EDS versions when only endpoints change", async () => {
  const s = await readScenario("sidecar");
  const before = generate(s);
  // Health flips both ways, an instance moves zone and address, and a new
  // instance appears on a node whose identity the cluster already trusts.
  const endpoints = s.view.endpoints.map((e) => {
    if (e.node === "vm-5") return { ...e, healthy: true };
    if (e.node === "vm-3") return { ...e, healthy: false };
    if (e.node === "vm-4") {
      return { ...e, address: "10.0.1.4", locality: { ...e.locality, zone: "eu-west-1a" } };
    }
    return e;
  });
  const echo = s.view.endpoints.find((e) => e.service === "echo" && e.node === "vm-2")!;
  endpoints.push({ ...echo, address: "10.0.1.22", inboundPort: 15003 });
  const after = generate({ ...s, view: { ...s.view, endpoints } });

  for (const kind of ["listeners", "routes", "clusters", "secrets"] as const) {
    assert.deepEqual(versions(after, kind), versions(before, kind), kind);
    assert.equal(typeVersion(after[kind]), typeVersion(before[kind]), kind);
  }
  const edsBefore = versions(before, "endpoints");
  const edsAfter = versions(after, "endpoints");
  assert.deepEqual(Object.keys(edsAfter), Object.keys(edsBefore));
  assert.notEqual(edsAfter["outbound|8080||api.shop"], edsBefore["outbound|8080||api.shop"]);
  assert.notEqual(edsAfter["outbound|50051||echo.shop"], edsBefore["outbound|50051||echo.shop"]);
  assert.equal(edsAfter["outbound|5432||pg.data"], edsBefore["outbound|5432||pg.data"]);
  assert.notEqual(typeVersion(after.endpoints), typeVersion(before.endpoints));
});

Deno.test("generateProxy() with policies changes only EDS versions when only endpoints change", async () => {
  for (const name of ["policy-outbound", "policy-proxyless"]) {
    const s = await readScenario(name);
    const before = generate(s);
    const endpoints = s.view.endpoints.map((e) =>
      e.node === "vm-2"
        ? { ...e, healthy: false }
        : e.node === "us-1"
        ? { ...e, locality: { region: "eu-west-1", zone: "eu-west-1b" } }
        : e
    );
    const after = generate({ ...s, view: { ...s.view, endpoints } });
    for (const kind of ["listeners", "routes", "clusters", "secrets"] as const) {
      assert.deepEqual(versions(after, kind), versions(before, kind), `${name} ${kind}`);
    }
    assert.notEqual(typeVersion(after.endpoints), typeVersion(before.endpoints), name);
  }
});

Deno.test("generateProxy() changes a cluster's version when a peer brings a new identity", async () => {
  const s = await readScenario("sidecar");
  const before = generate(s);
  const api = s.view.endpoints.find((e) => e.node === "vm-2" && e.service === "api")!;
  const newcomer = {
    ...api,
    node: "vm-9",
    address: "10.0.1.9",
    identity: "spiffe://ironmesh.local/ns/shop/sa/vm-9",
  };
  const after = generate({ ...s, view: { ...s.view, endpoints: [...s.view.endpoints, newcomer] } });
  const name = "outbound|8080||api.shop";
  assert.notEqual(versions(after, "clusters")[name], versions(before, "clusters")[name]);
  assert.deepEqual(versions(after, "listeners"), versions(before, "listeners"));
});

function without(snapshot: ProxySnapshot, kind: keyof ProxySnapshot, name: string): ProxySnapshot {
  const kept = snapshot[kind].filter((r) => r.name !== name);
  assert.equal(kept.length, snapshot[kind].length - 1, `${kind} "${name}" is in the snapshot`);
  return { ...snapshot, [kind]: kept };
}

Deno.test("consistent() reports a missing route configuration", async () => {
  const snapshot = generate(await readScenario("sidecar"));
  assert.deepEqual(consistent(without(snapshot, "routes", "api.shop:8080")), [
    'Listener "outbound|9001" uses route configuration "api.shop:8080", which is not in the snapshot',
  ]);
});

Deno.test("consistent() reports a missing cluster that a route mirrors to", async () => {
  const snapshot = generate(await readScenario("policy-outbound"));
  assert.deepEqual(consistent(without(snapshot, "clusters", "outbound|9090||audit.shop")), [
    'Route configuration "api.shop:8080" uses cluster "outbound|9090||audit.shop", which is not in the snapshot',
  ]);
});

Deno.test("consistent() reports a missing EDS resource", async () => {
  const snapshot = generate(await readScenario("proxyless"));
  assert.deepEqual(consistent(without(snapshot, "endpoints", "outbound|50051||echo.shop")), [
    'Cluster "outbound|50051||echo.shop" uses EDS resource "outbound|50051||echo.shop", which is not in the snapshot',
  ]);
});

Deno.test("consistent() reports missing clusters and secrets, but not the agent's own certificate", async () => {
  const snapshot = generate(await readScenario("sidecar"));
  let broken = without(snapshot, "clusters", "outbound|5432||pg.data");
  broken = without(broken, "clusters", "inbound|8080");
  broken = without(broken, "secrets", "ROOTCA");
  const problems = consistent(broken);
  assert.ok(problems.includes(
    'Listener "outbound|9003" uses cluster "outbound|5432||pg.data", which is not in the snapshot',
  ));
  assert.ok(problems.includes(
    'Route configuration "inbound|15001" uses cluster "inbound|8080", which is not in the snapshot',
  ));
  assert.ok(problems.includes(
    'Cluster "outbound|8080||api.shop" uses secret "ROOTCA", which is not in the snapshot',
  ));
  assert.ok(problems.every((p) => !p.includes('"default"')), problems.join("\n"));
});

Deno.test("consistent() reports a name used twice", async () => {
  const snapshot = generate(await readScenario("sidecar"));
  const duplicated = { ...snapshot, routes: [...snapshot.routes, snapshot.routes[0]!] };
  assert.deepEqual(consistent(duplicated), [
    `Route configuration "${snapshot.routes[0]!.name}" appears twice`,
  ]);
});

Deno.test("generateProxy() leaves out upstreams of unknown services and ports", async () => {
  const s = await readScenario("sidecar");
  const request: SidecarRequest = {
    ...(s.request as SidecarRequest),
    upstreams: [
      { service: "nope", namespace: "shop", localPort: 9100 },
      { service: "api", namespace: "shop", localPort: 9101, port: 1234 },
      { service: "api", namespace: "shop", localPort: 9102, port: 8080 },
    ],
  };
  const snapshot = generateProxy(s.view, request);
  assert.deepEqual(
    snapshot.listeners.map((l) => l.name),
    ["inbound|15001", "inbound|15002", "outbound|9102"],
  );
  assert.deepEqual(consistent(snapshot), []);
});

Deno.test("generateProxy() gives no listener to an upstream on a port the host already uses", async () => {
  const s = await readScenario("sidecar");
  const request: SidecarRequest = {
    ...(s.request as SidecarRequest),
    // An app's port, an inbound listener's port and Envoy's admin port: Envoy would fail to bind
    // each and refuse the whole listener update.
    upstreams: [8080, 15001, 15000, 9102].map((localPort) => ({
      service: "api",
      namespace: "shop",
      localPort,
    })),
  };
  const snapshot = generateProxy(s.view, request);
  assert.deepEqual(
    snapshot.listeners.map((l) => l.name),
    ["inbound|15001", "inbound|15002", "outbound|9102"],
  );
});

// Nodes may register IPv6 addresses; push.ts binds inbound listeners on 0.0.0.0, so such a
// listener also binds `::` (Listener.additional_addresses; an IPv6 socket is IPv6-only unless
// SocketAddress.ipv4_compat, so the two do not clash, and a host without IPv6 is not asked to
// bind it).
Deno.test("generateProxy() binds an inbound listener on :: too when its instance has an IPv6 address", async () => {
  const s = await readScenario("sidecar");
  const view: MeshView = {
    ...s.view,
    endpoints: s.view.endpoints.map((e) =>
      e.node === "vm-1" && e.service === "web" ? { ...e, address: "fd00::1" } : e
    ),
  };
  const request: SidecarRequest = { ...(s.request as SidecarRequest), hostAddress: "0.0.0.0" };
  const snapshot = generateProxy(view, request);
  const web = snapshot.listeners.find((l) => l.name === "inbound|15001")!.body;
  assert.deepEqual(web["address"], { socket_address: { address: "0.0.0.0", port_value: 15001 } });
  assert.deepEqual(web["additional_addresses"], [{
    address: { socket_address: { address: "::", port_value: 15001 } },
  }]);
  assert.ok(await assertEnvoyValid("envoy.config.listener.v3.Listener", web));
  // cache's instance registered an IPv4 address only.
  const cache = snapshot.listeners.find((l) => l.name === "inbound|15002")!.body;
  assert.equal(cache["additional_addresses"], undefined);
});

Deno.test("generateProxy() keeps one inbound listener and one upstream per port", async () => {
  const s = await readScenario("sidecar");
  const base = s.request as SidecarRequest;
  const request: SidecarRequest = {
    ...base,
    inbound: [...base.inbound, { ...base.inbound[0]!, id: "zz", appPort: 8081 }],
    upstreams: [...base.upstreams, { service: "web", namespace: "shop", localPort: 9001 }],
  };
  const snapshot = generateProxy(s.view, request);
  assert.equal(snapshotYaml(snapshot), snapshotYaml(generate(s)));
});

Deno.test("generateProxy() gives proxyless clients short names only in their own namespace", async () => {
  const s = await readScenario("proxyless");
  const elsewhere = { ...s.request, identity: "spiffe://ironmesh.local/ns/hello/sa/vm-1" };
  const names = generateProxy(s.view, elsewhere).listeners.map((l) => l.name);
  assert.deepEqual(names, ["echo.shop", "greeter", "greeter.hello"]);
});

Deno.test("generateProxy() honours connectTimeoutMs", async () => {
  const s = await readScenario("no-healthy");
  const snapshot = generateProxy(s.view, s.request, { connectTimeoutMs: 250 });
  assert.equal(snapshot.clusters[0]!.body["connect_timeout"], "0.250s");
});

Deno.test("generateProxy() serves no workload certificate and no secrets to proxyless clients", async () => {
  const sidecar = generate(await readScenario("sidecar"));
  assert.deepEqual(sidecar.secrets.map((r) => r.name), ["ROOTCA"]);
  assert.deepEqual(generate(await readScenario("proxyless")).secrets, []);
});

/** The listeners of gRPC clients; the others are gRPC servers' (`proxyless_security_test.ts`). */
function clientListeners(snapshot: ProxySnapshot) {
  return snapshot.listeners.filter((l) => !l.name.startsWith(SERVER_LISTENER_PREFIX));
}

/** What grpc-js-xds 1.14 checks before it uses a resource, restated as assertions. */
function assertGrpcJsAccepts(snapshot: ProxySnapshot): void {
  for (const l of clientListeners(snapshot)) {
    const hcm = (l.body["api_listener"] as JsonObject)["api_listener"] as JsonObject;
    assert.equal(
      hcm["@type"],
      `${TYPE_URL_PREFIX}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
    );
    const filters = hcm["http_filters"] as JsonObject[];
    const last = filters.at(-1)!["typed_config"] as JsonObject;
    assert.equal(last["@type"], `${TYPE_URL_PREFIX}envoy.extensions.filters.http.router.v3.Router`);
    assert.deepEqual((hcm["rds"] as JsonObject)["config_source"], {
      ads: {},
      resource_api_version: "V3",
    });
  }
  for (const r of snapshot.routes) {
    for (const vh of r.body["virtual_hosts"] as JsonObject[]) {
      for (const route of vh["routes"] as JsonObject[]) {
        const match = route["match"] as JsonObject;
        assert.ok(
          ["prefix", "path", "safe_regex"].some((k) => k in match),
          "a route needs a path specifier",
        );
        assert.ok("route" in route, "grpc-js-xds refuses every action but `route`");
      }
    }
  }
  for (const c of snapshot.clusters) {
    assert.equal(c.body["type"], "EDS");
    assert.ok(
      [undefined, "RING_HASH"].includes(c.body["lb_policy"] as string | undefined),
      "ROUND_ROBIN (the default) and RING_HASH are the policies grpc-js-xds takes",
    );
    assert.ok(!("transport_socket" in c.body), "proxyless clients use plaintext");
    assert.deepEqual((c.body["eds_cluster_config"] as JsonObject)["eds_config"], {
      ads: {},
      resource_api_version: "V3",
    });
  }
  for (const e of snapshot.endpoints) {
    for (const locality of (e.body["endpoints"] ?? []) as JsonObject[]) {
      assert.ok(locality["locality"] !== undefined, "a locality without `locality` is dropped");
      assert.ok(
        (locality["load_balancing_weight"] as number) > 0,
        "a zero-weight locality is dropped",
      );
    }
  }
}

Deno.test("generateProxy() gives proxyless clients what grpc-js-xds accepts", async () => {
  for (const name of PROXYLESS_SCENARIOS) assertGrpcJsAccepts(generate(await readScenario(name)));
});

Deno.test("generateProxy() gives proxyless clients routes for every name they may dial", async () => {
  for (const name of PROXYLESS_SCENARIOS) {
    const snapshot = generate(await readScenario(name));
    for (const l of clientListeners(snapshot)) {
      const hcm = (l.body["api_listener"] as JsonObject)["api_listener"] as JsonObject;
      const rds = (hcm["rds"] as JsonObject)["route_config_name"];
      const route = snapshot.routes.find((r) => r.name === rds)!;
      const domains = (route.body["virtual_hosts"] as JsonObject[])[0]!["domains"] as string[];
      assert.ok(domains.includes(l.name), `${l.name} in ${domains}`);
    }
  }
});
