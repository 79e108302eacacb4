import assert from "node:assert/strict";
import { FakeClock } from "../core/clock.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  PreconditionFailedError,
} from "../core/errors.ts";
import { silentLogger } from "../core/log.ts";
import { type MeshChange, meshChange } from "../core/mesh_change.ts";
import { type NodeRegistration, nodeRegistrationSchema } from "../core/model.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import { type Actor, Registry } from "./registry.ts";

const agent: Actor = { tokenId: "agent-1", role: "agent", node: null };
const otherAgent: Actor = { tokenId: "agent-2", role: "agent", node: null };
const operator: Actor = { tokenId: "op", role: "operator", node: null };

function registration(extra: Record<string, unknown> = {}): NodeRegistration {
  return nodeRegistrationSchema.parse({
    hostname: "vm-1",
    addresses: ["10.0.0.1"],
    agentVersion: "test",
    heartbeatInterval: "5s",
    instances: [
      { id: "web", service: "web", port: 8080, check: "passing", labels: { version: "v1" } },
      { id: "api", service: "api", port: 9090, protocol: "grpc" },
    ],
    ...extra,
  });
}

async function withRegistry(
  fn: (registry: Registry, clock: FakeClock) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const store = openSqliteStore(`${dir}/ironmesh.db`);
  const clock = new FakeClock();
  // Long timer periods: the tests drive sweep() and flush() by hand with the fake clock.
  const registry = new Registry(store, {
    clock,
    log: silentLogger,
    reapAfterMs: 3_600_000,
    sweepIntervalMs: 3_600_000,
    flushIntervalMs: 3_600_000,
  });
  await registry.start();
  try {
    await fn(registry, clock);
  } finally {
    await registry.stop();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const page = { limit: 100 };

Deno.test("Registry.register() creates node, instances and services in one revision", () =>
  withRegistry(async (registry) => {
    const { node, instances } = await registry.register("vm-1", registration(), agent);
    assert.equal(node.revision, 1);
    assert.equal(node.ttlMs, 15_000);
    assert.deepEqual(instances.map((i) => [i.id, i.health, i.address]), [
      ["web@vm-1", "healthy", "10.0.0.1"],
      ["api@vm-1", "healthy", "10.0.0.1"],
    ]);
    const services = await registry.listServices(page);
    assert.deepEqual(services.items.map((s) => [s.name, s.ports, s.managedBy]), [
      ["api", [{ port: 9090, protocol: "grpc" }], "registry"],
      ["web", [{ port: 8080, protocol: "http" }], "registry"],
    ]);
    assert.equal(registry.feed.revision, 1);
  }));

Deno.test("Registry.register() twice with the same content bumps no revision", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    await registry.register("vm-1", registration(), agent);
    assert.equal(registry.feed.revision, 1);
  }));

Deno.test("Registry.register() removes dropped instances and their orphaned services", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    await registry.register(
      "vm-1",
      registration({ instances: [{ id: "web", service: "web", port: 8080, check: "passing" }] }),
      agent,
    );
    assert.deepEqual((await registry.listInstances(page)).items.map((i) => i.id), ["web@vm-1"]);
    assert.deepEqual((await registry.listServices(page)).items.map((s) => s.name), ["web"]);
  }));

Deno.test("Registry.register() refuses a protocol that contradicts the service", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    const before = registry.feed.revision;
    await assert.rejects(
      registry.register(
        "vm-2",
        registration({ instances: [{ id: "api", service: "api", port: 9090, protocol: "http" }] }),
        otherAgent,
      ),
      (e: unknown) =>
        e instanceof InvalidError && e.problems[0]?.pointer === "/instances/0/protocol",
    );
    assert.equal(registry.feed.revision, before, "nothing was written");
    await assert.rejects(registry.getNode("vm-2"), NotFoundError);
  }));

Deno.test("Registry: an agent cannot touch another agent's node", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    await assert.rejects(registry.register("vm-1", registration(), otherAgent), ForbiddenError);
    await assert.rejects(registry.heartbeat("vm-1", { checks: [] }, otherAgent), ForbiddenError);
    await assert.rejects(registry.deregister("vm-1", otherAgent), ForbiddenError);
    const bound: Actor = { tokenId: "agent-3", role: "agent", node: "vm-9" };
    await assert.rejects(registry.register("vm-3", registration(), bound), ForbiddenError);
    await registry.getNode("vm-1");
  }));

Deno.test("Registry.heartbeat() without a change writes nothing", () =>
  withRegistry(async (registry, clock) => {
    await registry.register("vm-1", registration(), agent);
    clock.advance(5_000);
    const result = await registry.heartbeat("vm-1", {
      checks: [{ id: "web", status: "passing", output: "" }],
    }, agent);
    assert.equal(result.changed, false);
    assert.equal(registry.feed.revision, 1);
    await registry.flush();
    assert.equal(registry.feed.revision, 1);
    assert.equal(
      (await registry.getNode("vm-1")).lastHeartbeat,
      new Date(clock.now()).toISOString(),
    );
  }));

Deno.test("Registry.heartbeat() turns a failing check unhealthy and back", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    const beat = (status: "passing" | "failing") =>
      registry.heartbeat("vm-1", { checks: [{ id: "web", status, output: status }] }, agent);
    assert.equal((await beat("failing")).changed, true);
    assert.equal((await registry.getInstance("web@vm-1")).health, "unhealthy");
    assert.equal((await registry.getInstance("web@vm-1")).check.output, "failing");
    assert.equal((await registry.getInstance("api@vm-1")).health, "healthy");
    await beat("passing");
    assert.equal((await registry.getInstance("web@vm-1")).health, "healthy");
    assert.equal(registry.feed.revision, 3);
  }));

Deno.test("Registry.heartbeat() asks to re-register for unknown nodes and instances", () =>
  withRegistry(async (registry) => {
    await assert.rejects(registry.heartbeat("vm-1", { checks: [] }, agent), NotFoundError);
    await registry.register("vm-1", registration(), agent);
    await assert.rejects(
      registry.heartbeat(
        "vm-1",
        { checks: [{ id: "nope", status: "passing", output: "" }] },
        agent,
      ),
      ConflictError,
    );
  }));

Deno.test("Registry.sweep() marks a silent node stale, a heartbeat revives it, reap removes it", () =>
  withRegistry(async (registry, clock) => {
    await registry.register("vm-1", registration(), agent);
    clock.advance(15_000);
    await registry.sweep();
    assert.equal((await registry.getNode("vm-1")).status, "alive", "exactly the TTL is alive");
    clock.advance(1);
    await registry.sweep();
    assert.equal((await registry.getNode("vm-1")).status, "stale");
    assert.deepEqual(
      (await registry.listInstances({ ...page, health: "unhealthy" })).items.map((i) => i.id),
      ["api@vm-1", "web@vm-1"],
    );
    await registry.heartbeat("vm-1", { checks: [] }, agent);
    assert.equal((await registry.getNode("vm-1")).status, "alive");
    assert.equal((await registry.listInstances({ ...page, health: "healthy" })).items.length, 2);
    clock.advance(3_600_001);
    await registry.sweep();
    await assert.rejects(registry.getNode("vm-1"), NotFoundError);
    assert.equal((await registry.listInstances(page)).items.length, 0);
    assert.equal((await registry.listServices(page)).items.length, 0, "agent-made services go too");
  }));

Deno.test("Registry.drainNode() drains every instance and survives re-registration", () =>
  withRegistry(async (registry) => {
    const { node } = await registry.register("vm-1", registration(), agent);
    await assert.rejects(
      registry.drainNode("vm-1", true, { ifMatch: 99 }),
      PreconditionFailedError,
    );
    await registry.drainNode("vm-1", true, { ifMatch: node.revision });
    assert.equal((await registry.listInstances({ ...page, health: "draining" })).items.length, 2);
    await registry.register("vm-1", registration(), agent);
    assert.equal((await registry.getNode("vm-1")).draining, true);
    assert.equal((await registry.getInstance("web@vm-1")).health, "draining");
    await registry.heartbeat(
      "vm-1",
      { checks: [{ id: "web", status: "failing", output: "" }] },
      agent,
    );
    assert.equal((await registry.getInstance("web@vm-1")).health, "draining", "drain wins");
    await registry.drainNode("vm-1", false, {});
    assert.equal((await registry.getInstance("web@vm-1")).health, "unhealthy");
  }));

Deno.test("Registry.drainInstance() drains one instance", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    const drained = await registry.drainInstance("web@vm-1", true, {});
    assert.equal(drained.health, "draining");
    assert.equal((await registry.getInstance("api@vm-1")).health, "healthy");
  }));

Deno.test("Registry.putService() keeps registered ports and refuses contradictions", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    const { service } = await registry.putService("default", "web", {
      ports: [{ port: 80, protocol: "http2" }],
      labels: { team: "a" },
    }, {});
    assert.deepEqual(service.ports, [{ port: 80, protocol: "http2" }, {
      port: 8080,
      protocol: "http",
    }]);
    assert.equal(service.managedBy, "api");
    await assert.rejects(
      registry.putService("default", "web", {
        ports: [{ port: 8080, protocol: "tcp" }],
        labels: {},
      }, {}),
      ConflictError,
    );
    await assert.rejects(
      registry.putService("default", "web", { ports: [], labels: {} }, { ifNoneMatch: true }),
      PreconditionFailedError,
    );
    await assert.rejects(registry.deleteService("default", "web", {}), ConflictError);
    await registry.deregister("vm-1", operator);
    assert.equal(
      (await registry.getService("default", "web")).managedBy,
      "api",
      "operator-made stays",
    );
    await registry.deleteService("default", "web", {});
    await assert.rejects(registry.getService("default", "web"), NotFoundError);
  }));

Deno.test("Registry lists filter by label selector and page with a cursor", () =>
  withRegistry(async (registry) => {
    for (const n of ["vm-1", "vm-2", "vm-3"]) {
      await registry.register(
        n,
        registration({ labels: { zone: n === "vm-2" ? "b" : "a" } }),
        operator,
      );
    }
    const { parseSelector } = await import("../core/labels.ts");
    const sel = parseSelector("zone=a");
    assert.ok(sel.ok);
    const nodes = await registry.listNodes({ ...page, selector: sel.selector });
    assert.deepEqual(nodes.items.map((n) => n.name), ["vm-1", "vm-3"]);
    const first = await registry.listInstances({ limit: 4 });
    assert.equal(first.items.length, 4);
    assert.equal(first.next, first.items[3]!.id);
    const second = await registry.listInstances({ limit: 4, after: first.next! });
    assert.equal(second.items.length, 2);
    assert.equal(second.next, null);
  }));

Deno.test("ChangeFeed.wait() returns at once for an old index and wakes on a change", () =>
  withRegistry(async (registry) => {
    await registry.register("vm-1", registration(), agent);
    assert.equal(await registry.feed.wait(0, 10_000), 1);
    const waiting = registry.feed.wait(1, 10_000);
    assert.equal(registry.feed.watchers, 1);
    await registry.drainNode("vm-1", true, {});
    assert.equal(await waiting, 2);
    assert.equal(await registry.feed.wait(2, 10), 2, "times out with the same revision");
    assert.equal(registry.feed.watchers, 0);
  }));

Deno.test("Registry.register() stores inbound ports and upstreams; older agents get the defaults", () =>
  withRegistry(async (registry) => {
    // A registration without the sidecar fields, as older agents send it.
    const { node, instances } = await registry.register("vm-1", registration(), agent);
    assert.deepEqual(node.upstreams, []);
    assert.deepEqual(instances.map((i) => i.inboundPort), [null, null]);

    const sidecar = registration({
      instances: [
        { id: "web", service: "web", port: 8080, inboundPort: 15001, check: "passing" },
        { id: "api", service: "api", port: 9090, protocol: "grpc" },
      ],
      upstreams: [
        { service: "db", namespace: "data", localPort: 9001, port: 5433 },
        { service: "cache", localPort: 9002 },
      ],
    });
    const first = await registry.register("vm-1", sidecar, agent);
    assert.equal(registry.feed.revision, 2, "a sidecar change is a change");
    assert.deepEqual(first.node.upstreams, [
      { service: "db", namespace: "data", localPort: 9001, port: 5433 },
      { service: "cache", namespace: "default", localPort: 9002 },
    ]);
    assert.deepEqual((await registry.getInstance("web@vm-1")).inboundPort, 15001);
    assert.deepEqual((await registry.getNode("vm-1")).upstreams, first.node.upstreams);

    // The same again changes nothing; an upstream's port alone is a change.
    await registry.register("vm-1", sidecar, agent);
    assert.equal(registry.feed.revision, 2);
    const moved = registration({
      instances: sidecar.instances,
      upstreams: [{ service: "db", namespace: "data", localPort: 9001 }],
    });
    const second = await registry.register("vm-1", moved, agent);
    assert.equal(registry.feed.revision, 3);
    assert.deepEqual(second.node.upstreams, [{
      service: "db",
      namespace: "data",
      localPort: 9001,
    }]);
  }));

Deno.test("nodeRegistrationSchema refuses inbound ports that clash and duplicate local ports", () => {
  const result = nodeRegistrationSchema.safeParse({
    hostname: "vm-1",
    addresses: ["10.0.0.1"],
    agentVersion: "test",
    heartbeatInterval: "5s",
    instances: [
      { id: "a", service: "a", port: 8080, inboundPort: 15001 },
      { id: "b", service: "b", port: 8081, inboundPort: 15001 },
      { id: "c", service: "c", port: 8082, inboundPort: 8080 },
      { id: "d", service: "d", port: 8083, inboundPort: 9001 },
    ],
    upstreams: [
      { service: "x", localPort: 9001 },
      { service: "y", localPort: 9001 },
      { service: "z", localPort: 9002, extra: true },
    ],
  });
  assert.equal(result.success, false);
  assert.deepEqual(result.error!.issues.map((i) => i.path.join("/")).sort(), [
    "instances/1/inboundPort",
    "instances/2/inboundPort",
    "instances/3/inboundPort",
    "upstreams/1/localPort",
    "upstreams/2",
  ]);
});

Deno.test("Registry.subscribe() names the services, endpoints and nodes each commit changed", () =>
  withRegistry(async (registry) => {
    const changes: MeshChange[] = [];
    const stop = registry.subscribe((change) => changes.push(change));
    await registry.register("vm-1", registration(), agent);
    assert.deepEqual(
      changes.pop(),
      meshChange({
        services: ["default/api", "default/web"],
        endpoints: ["default/api", "default/web"],
        nodes: ["vm-1"],
      }),
    );
    // The same registration again commits nothing and says nothing.
    await registry.register("vm-1", registration(), agent);
    assert.equal(changes.length, 0);
    // A failing check: only web's endpoints (and the node holding them).
    await registry.heartbeat("vm-1", {
      checks: [{ id: "web", status: "failing", output: "" }],
    }, agent);
    assert.deepEqual(changes.pop(), meshChange({ endpoints: ["default/web"], nodes: ["vm-1"] }));
    // Leaving: a deleted instance is named by id in the write; its service still is in the change.
    await registry.deregister("vm-1", agent);
    assert.deepEqual(
      changes.pop(),
      meshChange({
        services: ["default/api", "default/web"],
        endpoints: ["default/api", "default/web"],
        nodes: ["vm-1"],
      }),
    );
    stop();
    await registry.register("vm-1", registration(), agent);
    assert.equal(changes.length, 0, "no listener after stop");
  }));
