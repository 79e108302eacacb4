/**
 * The store contract suite. Every backend runs it (`sqlite_test.ts` today; a
 * PostgreSQL store must pass the same tests before it may replace SQLite).
 */
import assert from "node:assert/strict";
import { ConflictError, PreconditionFailedError } from "../core/errors.ts";
import type {
  ApiToken,
  CertificateRecord,
  Instance,
  JoinToken,
  MeshNode,
  Service,
} from "../core/model.ts";
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
    upstreams: [],
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
    inboundPort: null,
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

/** A join token fixture. */
export function sampleJoinToken(id: string, extra: Partial<JoinToken> = {}): JoinToken {
  return {
    id,
    kind: "join",
    namespace: "default",
    serviceAccount: "web",
    node: null,
    uses: 1,
    used: 0,
    description: "",
    createdAt: T0,
    expiresAt: "2026-01-01T01:00:00.000Z",
    revokedAt: null,
    ...extra,
  };
}

/** A certificate record fixture. */
export function sampleCertificate(
  serial: string,
  node: string,
  extra: Partial<CertificateRecord> = {},
): CertificateRecord {
  return {
    serial,
    node,
    identity: "spiffe://ironmesh.local/ns/default/sa/web",
    tokenId: "join1",
    root: "aa",
    kind: "enrol",
    notBefore: T0,
    notAfter: "2026-01-02T00:00:00.000Z",
    issuedAt: T0,
    supersededAt: null,
    revokedAt: null,
    revokeReason: null,
    ...extra,
  };
}

/**
 * Registers the contract tests for one backend; `openSnapshot` opens what
 * `Store.snapshot()` wrote, as that backend restores it.
 */
export function storeContract(
  backend: string,
  open: StoreFactory,
  openSnapshot: (path: string) => Store,
): void {
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

  Deno.test(`${backend} store: a join token is used atomically with the certificate it yields`, () =>
    withStore(async (store) => {
      await store.createToken(sampleJoinToken("join1", { uses: 2 }), "");
      const at = "2026-01-01T00:10:00.000Z";
      await store.recordIssuance(sampleCertificate("01", "vm-1"), { tokenId: "join1", at });
      await store.recordIssuance(sampleCertificate("02", "vm-2"), { tokenId: "join1", at });
      await assert.rejects(
        store.recordIssuance(sampleCertificate("03", "vm-3"), { tokenId: "join1", at }),
        (e: unknown) => e instanceof ConflictError && /used up/.test(e.message),
      );
      assert.equal(await store.getCertificate("03"), null, "a refused use records nothing");
      assert.equal((await store.getToken("join1"))?.token.kind, "join");
      const token = (await store.getToken("join1"))!.token as JoinToken;
      assert.equal(token.used, 2);
      await store.createToken(sampleJoinToken("join2"), "");
      await assert.rejects(
        store.recordIssuance(sampleCertificate("04", "vm-4"), {
          tokenId: "join2",
          at: "2026-01-01T02:00:00.000Z",
        }),
        /expired/,
      );
      await store.revokeToken("join2", at);
      await assert.rejects(
        store.recordIssuance(sampleCertificate("05", "vm-5"), { tokenId: "join2", at }),
        /revoked/,
      );
      await assert.rejects(
        store.recordIssuance(sampleCertificate("06", "vm-6"), { tokenId: "nope", at }),
        /does not exist/,
      );
      assert.deepEqual((await store.listCertificates({})).map((c) => c.serial), ["01", "02"]);
    }));

  Deno.test(`${backend} store: renewals supersede, revocation reaches a node or a token lineage`, () =>
    withStore(async (store) => {
      await store.recordIssuance(sampleCertificate("01", "vm-1"));
      await store.recordIssuance(
        sampleCertificate("02", "vm-1", {
          kind: "renew",
          issuedAt: "2026-01-01T12:00:00.000Z",
          root: "bb",
        }),
      );
      await store.recordIssuance(sampleCertificate("03", "vm-2", { tokenId: "join2" }));
      assert.equal((await store.getCertificate("01"))?.supersededAt, "2026-01-01T12:00:00.000Z");
      const current = await store.listCertificates({ current: true, liveAt: T0 });
      assert.deepEqual(current.map((c) => c.serial), ["02", "03"]);
      assert.deepEqual(
        (await store.listCertificates({ root: "aa", current: true })).map((c) => c.serial),
        ["03"],
      );
      const revoked = await store.revokeCertificates(
        { tokenId: "join1" },
        "2026-01-01T13:00:00.000Z",
        "token revoked",
      );
      assert.deepEqual(revoked.map((c) => c.serial).sort(), ["01", "02"]);
      assert.equal((await store.getCertificate("02"))?.revokeReason, "token revoked");
      assert.deepEqual(
        (await store.listCertificates({ revoked: true })).map((c) => c.serial).sort(),
        ["01", "02"],
      );
      assert.deepEqual(
        await store.revokeCertificates({ node: "vm-1" }, "2026-01-01T14:00:00.000Z", "again"),
        [],
      );
      const expired = await store.revokeCertificates(
        { node: "vm-2" },
        "2026-01-03T00:00:00.000Z",
        "late",
      );
      assert.deepEqual(expired, [], "expired certificates need no deny-list entry");
      assert.deepEqual(
        (await store.revokeCertificates({ node: "vm-2" }, T0, "decommissioned")).map((c) =>
          c.serial
        ),
        ["03"],
      );
    }));

  Deno.test(`${backend} store: snapshot() copies everything committed, while writes go on`, () =>
    withStore(async (store) => {
      const dir = await Deno.makeTempDir();
      try {
        await store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
        await store.createToken(sampleJoinToken("join1"), "");
        const writing = store.commit({
          writes: [{ op: "put", kind: "node", value: sampleNode("vm-2") }],
        });
        await store.snapshot(`${dir}/copy.db`);
        await writing;
        const copy = openSnapshot(`${dir}/copy.db`);
        try {
          assert.equal((await copy.get("node", "vm-1"))?.name, "vm-1");
          assert.equal((await copy.getToken("join1"))?.token.id, "join1");
          assert.equal(await copy.schemaVersion(), await store.schemaVersion());
        } finally {
          await copy.close();
        }
        await assert.rejects(
          store.snapshot(`${dir}/copy.db`),
          "an existing file is never overwritten",
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }));
}
