/**
 * The store contract suite. Every backend runs it (`sqlite_test.ts` today; a
 * PostgreSQL store must pass the same tests before it may replace SQLite).
 */
import assert from "node:assert/strict";
import { PreconditionFailedError } from "../core/errors.ts";
import type { ApiToken, Instance, MeshNode, Service } from "../core/model.ts";
import type { Store } from "./store.ts";

/** Opens an empty store; `cleanup` releases whatever the factory made. */
export type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const T0 = "2026-01-01T00:00:00.000Z";

/** A node fixture. */
export function sampleNode(name: string, extra: Partial<MeshNode> = {}): MeshNode {
  return {
    name,
    hostname: name,
    addresses: ["10.0.0.1"],
    labels: {},
    agentVersion: "test",
    heartbeatIntervalMs: 5000,
    ttlMs: 15000,
    status: "alive",
    draining: false,
    owner: "tok1",
    registeredAt: T0,
    lastHeartbeat: T0,
    revision: 0,
    ...extra,
  };
}

/** An instance fixture. */
export function sampleInstance(
  local: string,
  node: string,
  extra: Partial<Instance> = {},
): Instance {
  return {
    id: `${local}@${node}`,
    node,
    namespace: "default",
    service: local,
    address: "10.0.0.1",
    port: 8080,
    protocol: "http",
    labels: {},
    check: { status: "none", output: "", updatedAt: T0 },
    draining: false,
    health: "healthy",
    revision: 0,
    ...extra,
  };
}

/** A service fixture. */
export function sampleService(name: string, extra: Partial<Service> = {}): Service {
  return {
    namespace: "default",
    name,
    ports: [{ port: 8080, protocol: "http" }],
    labels: {},
    managedBy: "registry",
    createdAt: T0,
    revision: 0,
    ...extra,
  };
}

/** Registers the contract tests for one backend. */
export function storeContract(backend: string, open: StoreFactory): void {
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const { store, cleanup } = await open();
    try {
      await fn(store);
    } finally {
      await store.close();
      await cleanup();
    }
  }

  Deno.test(`${backend} store: a commit is one revision and stamps every object`, () =>
    withStore(async (store) => {
      assert.equal(await store.revision(), 0);
      const rev = await store.commit({
        writes: [
          { op: "put", kind: "node", value: sampleNode("vm-1") },
          { op: "put", kind: "instance", value: sampleInstance("web", "vm-1") },
        ],
      });
      assert.equal(rev, 1);
      assert.equal(await store.revision(), 1);
      assert.equal((await store.get("node", "vm-1"))?.revision, 1);
      assert.equal((await store.get("instance", "web@vm-1"))?.revision, 1);
      assert.equal(await store.commit({ writes: [] }), 1, "an empty batch changes nothing");
      assert.deepEqual(await store.counts(), { service: 0, node: 1, instance: 1 });
    }));

  Deno.test(`${backend} store: a failed expectation writes nothing`, () =>
    withStore(async (store) => {
      await store.commit({ writes: [{ op: "put", kind: "service", value: sampleService("web") }] });
      await assert.rejects(
        store.commit({
          writes: [
            { op: "put", kind: "service", value: sampleService("web", { labels: { a: "b" } }) },
            { op: "put", kind: "service", value: sampleService("api") },
          ],
          expect: [{ kind: "service", key: "default/web", revision: 7 }],
        }),
        PreconditionFailedError,
      );
      await assert.rejects(
        store.commit({
          writes: [{ op: "put", kind: "service", value: sampleService("web") }],
          expect: [{ kind: "service", key: "default/web", revision: null }],
        }),
        PreconditionFailedError,
      );
      assert.equal(await store.revision(), 1);
      assert.deepEqual((await store.get("service", "default/web"))?.labels, {});
      assert.equal(await store.get("service", "default/api"), null);
    }));

  Deno.test(`${backend} store: list filters, orders by key and pages after a cursor`, () =>
    withStore(async (store) => {
      const writes = [];
      for (const node of ["vm-a", "vm-b", "vm-c"]) {
        writes.push({ op: "put", kind: "node", value: sampleNode(node) } as const);
        writes.push({ op: "put", kind: "instance", value: sampleInstance("web", node) } as const);
        writes.push(
          {
            op: "put",
            kind: "instance",
            value: sampleInstance("api", node, {
              health: node === "vm-b" ? "unhealthy" : "healthy",
              labels: { version: node === "vm-c" ? "v2" : "v1" },
            }),
          } as const,
        );
      }
      await store.commit({ writes });
      const ids = (items: Instance[]) => items.map((i) => i.id);
      assert.deepEqual(ids(await store.list("instance", { service: "api", limit: 10 })), [
        "api@vm-a",
        "api@vm-b",
        "api@vm-c",
      ]);
      assert.deepEqual(ids(await store.list("instance", { node: "vm-b", limit: 10 })), [
        "api@vm-b",
        "web@vm-b",
      ]);
      assert.deepEqual(
        ids(await store.list("instance", { service: "api", health: "healthy", limit: 10 })),
        ["api@vm-a", "api@vm-c"],
      );
      const page1 = await store.list("instance", { limit: 4 });
      const page2 = await store.list("instance", { limit: 4, after: page1.at(-1)!.id });
      assert.deepEqual(ids([...page1, ...page2]), [
        "api@vm-a",
        "api@vm-b",
        "api@vm-c",
        "web@vm-a",
        "web@vm-b",
        "web@vm-c",
      ]);
      assert.deepEqual(
        ids(await store.list("instance", { limit: 1, where: (i) => i.labels.version === "v2" })),
        ["api@vm-c"],
      );
      assert.deepEqual(await store.list("instance", { namespace: "other", limit: 10 }), []);
    }));

  Deno.test(`${backend} store: delete removes and touchNodes bumps no revision`, () =>
    withStore(async (store) => {
      await store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
      await store.touchNodes([{ name: "vm-1", lastHeartbeat: "2026-01-01T00:00:05.000Z" }]);
      await store.touchNodes([{ name: "vm-1", lastHeartbeat: "2026-01-01T00:00:03.000Z" }]);
      assert.equal(await store.revision(), 1);
      assert.equal((await store.get("node", "vm-1"))?.lastHeartbeat, "2026-01-01T00:00:05.000Z");
      await store.commit({ writes: [{ op: "delete", kind: "node", key: "vm-1" }] });
      assert.equal(await store.get("node", "vm-1"), null);
      assert.equal(await store.revision(), 2);
    }));

  Deno.test(`${backend} store: tokens are stored, listed and revoked`, () =>
    withStore(async (store) => {
      const token: ApiToken = {
        id: "abc",
        kind: "api",
        role: "viewer",
        node: null,
        description: "ci",
        createdAt: T0,
        expiresAt: null,
        revokedAt: null,
      };
      await store.createToken(token, "hash");
      assert.deepEqual(await store.getToken("abc"), { token, secretHash: "hash" });
      assert.deepEqual(await store.listTokens(), [token]);
      const revoked = await store.revokeToken("abc", "2026-02-01T00:00:00.000Z");
      assert.equal(revoked?.revokedAt, "2026-02-01T00:00:00.000Z");
      assert.equal((await store.getToken("abc"))?.token.revokedAt, "2026-02-01T00:00:00.000Z");
      assert.equal(await store.revokeToken("nope", T0), null);
      await assert.rejects(store.createToken(token, "other"));
      assert.equal((await store.getToken("abc"))?.secretHash, "hash");
    }));

  Deno.test(`${backend} store: meta values round-trip`, () =>
    withStore(async (store) => {
      assert.equal(await store.getMeta("k"), null);
      await store.setMeta("k", "v1");
      await store.setMeta("k", "v2");
      assert.equal(await store.getMeta("k"), "v2");
      assert.ok((await store.schemaVersion()) >= 1);
      await store.ping();
    }));
}
