/**
 * The store contract suite. Every backend runs it (`sqlite_test.ts` today; a
 * PostgreSQL store must pass the same tests before it may replace SQLite).
 */
import assert from "node:assert/strict";
import {
  ConflictError,
  InvalidError,
  NotFoundError,
  PreconditionFailedError,
} from "../core/errors.ts";
import type {
  ApiToken,
  CertificateRecord,
  Instance,
  JoinToken,
  MeshNode,
  Service,
} from "../core/model.ts";
import { type AnyPolicy, API_VERSION, type Policy, policyKey } from "../core/policy/model.ts";
import type { AuditInput, PolicyChange, PolicyWrite, Store } from "./store.ts";

/** Opens an empty store; `cleanup` releases whatever the factory made. */
export type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const T0 = "2026-01-01T00:00:00.000Z";
const T1 = "2026-01-01T00:01:00.000Z";
const T2 = "2026-01-01T00:02:00.000Z";
const T3 = "2026-01-01T00:03:00.000Z";

/** The key of `default/web`, the TrafficRoute most policy tests write. */
const WEB = { kind: "TrafficRoute", namespace: "default", name: "web" } as const;
const API = { kind: "TrafficRoute", namespace: "default", name: "api" } as const;

/** A policy change by `tok1` at `T1` unless `extra` says otherwise. */
function change(writes: PolicyWrite[], extra: Partial<PolicyChange> = {}): PolicyChange {
  return { writes, actor: "tok1", at: T1, ...extra };
}

/** Everything a policy write can change, to check that a refused one changed nothing. */
async function policyState(store: Store) {
  return {
    revision: await store.policyRevision(),
    policies: await store.listPolicies(),
    history: [
      await store.policyHistory(WEB.kind, WEB.namespace, WEB.name),
      await store.policyHistory(API.kind, API.namespace, API.name),
    ],
    audit: await store.listAudit({ limit: 100 }),
  };
}

function keys(policies: readonly AnyPolicy[]): string[] {
  return policies.map((p) => policyKey(p.kind, p.metadata.namespace, p.metadata.name));
}

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
    conditions: [],
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

/** A TrafficRoute fixture in namespace `default`, routing to the service of its name. */
export function sampleRoute(
  name: string,
  extra: Partial<Policy<"TrafficRoute">["metadata"]> = {},
  timeout = "2s",
): Policy<"TrafficRoute"> {
  return {
    apiVersion: API_VERSION,
    kind: "TrafficRoute",
    metadata: {
      name,
      namespace: "default",
      labels: {},
      revision: 0,
      createdAt: "",
      updatedAt: "",
      updatedBy: "",
      ...extra,
    },
    spec: { service: name, rules: [{ timeout }] },
  };
}

/** The MeshConfig fixture: the one policy whose namespace is `""`. */
export function sampleMeshConfig(): Policy<"MeshConfig"> {
  return {
    apiVersion: API_VERSION,
    kind: "MeshConfig",
    metadata: {
      name: "mesh",
      namespace: "",
      labels: {},
      revision: 0,
      createdAt: "",
      updatedAt: "",
      updatedBy: "",
    },
    spec: { mtls: { mode: "STRICT" } },
  };
}

/** A refused-write audit entry fixture. */
export function sampleAudit(name: string, extra: Partial<AuditInput> = {}): AuditInput {
  return {
    at: T0,
    actor: "tok1",
    action: "apply",
    kind: "TrafficRoute",
    namespace: "default",
    name,
    outcome: "refused",
    status: 422,
    revision: null,
    detail: "Invalid duration",
    ...extra,
  };
}

/**
 * Registers the contract tests for one backend; `openSnapshot` opens what
 * `Store.snapshot()` wrote, as that backend restores it, and
 * `snapshotSchemaVersion` is the schema version of that copy when it is not
 * the store's own (a PostgreSQL snapshot is a SQLite file).
 */
export function storeContract(
  backend: string,
  open: StoreFactory,
  openSnapshot: (path: string) => Store,
  snapshotSchemaVersion?: number,
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
        (e: unknown) =>
          e instanceof ConflictError &&
          e.message === 'Join token "join1" has been used up (2 of 2 uses)',
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

  Deno.test(`${backend} store: an issuance that fails to record gives the token's use back`, () =>
    withStore(async (store) => {
      await store.createToken(sampleJoinToken("join1"), "");
      const at = "2026-01-01T00:10:00.000Z";
      // A record the database refuses (a certificate always names its node), written after
      // the token's use inside the same transaction: the use must be rolled back with it.
      const unwritable = sampleCertificate("01", null as unknown as string);
      await assert.rejects(store.recordIssuance(unwritable, { tokenId: "join1", at }));
      assert.equal(((await store.getToken("join1"))!.token as JoinToken).used, 0);
      assert.deepEqual(await store.listCertificates({}), []);
      await store.recordIssuance(sampleCertificate("02", "vm-1"), { tokenId: "join1", at });
      assert.equal(((await store.getToken("join1"))!.token as JoinToken).used, 1);
      assert.deepEqual((await store.listCertificates({})).map((c) => c.serial), ["02"]);
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

  Deno.test(`${backend} store: a policy is created at revision 1 and an update keeps createdAt`, () =>
    withStore(async (store) => {
      assert.equal(await store.policyRevision(), 0);
      assert.equal(await store.getPolicy(WEB.kind, WEB.namespace, WEB.name), null);
      const [created] = await store.writePolicies(
        change([{ op: "put", policy: sampleRoute("web") }]),
      );
      assert.deepEqual(created?.metadata, {
        name: "web",
        namespace: "default",
        labels: {},
        revision: 1,
        createdAt: T1,
        updatedAt: T1,
        updatedBy: "tok1",
      });
      assert.deepEqual(await store.getPolicy(WEB.kind, WEB.namespace, WEB.name), created);

      const [updated] = await store.writePolicies(change(
        [{
          op: "put",
          policy: sampleRoute("web", { revision: 99, createdAt: T0, updatedBy: "x" }, "5s"),
        }],
        { expect: [{ ...WEB, revision: 1 }], actor: "node:vm-1", at: T2 },
      ));
      assert.deepEqual(updated?.metadata, {
        name: "web",
        namespace: "default",
        labels: {},
        revision: 2,
        createdAt: T1,
        updatedAt: T2,
        updatedBy: "node:vm-1",
      }, "the store stamps revision and times, whatever the writer sent");
      assert.deepEqual(updated?.spec, sampleRoute("web", {}, "5s").spec);
      assert.deepEqual(await store.getPolicy(WEB.kind, WEB.namespace, WEB.name), updated);
      assert.equal(await store.policyRevision(), 2);

      const history = await store.policyHistory(WEB.kind, WEB.namespace, WEB.name);
      assert.deepEqual(history.map((h) => [h.revision, h.op, h.at, h.actor]), [
        [1, "create", T1, "tok1"],
        [2, "update", T2, "node:vm-1"],
      ]);
      assert.deepEqual(history.map((h) => h.object), [created, updated]);
      const audit = await store.listAudit({ limit: 10 });
      assert.deepEqual(audit.map((a) => [a.action, a.outcome, a.status, a.revision, a.detail]), [
        ["apply", "ok", 201, 1, "create"],
        ["apply", "ok", 200, 2, "update"],
      ]);
      assert.deepEqual(
        audit.map((a) => [a.at, a.actor, a.kind, a.namespace, a.name]),
        [[T1, "tok1", ...Object.values(WEB)], [T2, "node:vm-1", ...Object.values(WEB)]],
      );
    }));

  Deno.test(`${backend} store: a failed policy expectation writes nothing`, () =>
    withStore(async (store) => {
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web") }]));
      const before = await policyState(store);
      const edit = { op: "put", policy: sampleRoute("web", {}, "9s") } as const;
      await assert.rejects(
        store.writePolicies(change([edit], { expect: [{ ...WEB, revision: 7 }] })),
        (e: unknown) =>
          e instanceof PreconditionFailedError && e.current === 1 &&
          e.message === 'The TrafficRoute "default/web" changed: it is at revision 1, not 7',
      );
      await assert.rejects(
        store.writePolicies(change([edit], { expect: [{ ...WEB, revision: null }] })),
        (e: unknown) =>
          e instanceof PreconditionFailedError && e.current === 1 &&
          /TrafficRoute "default\/web" already exists/.test(e.message),
        "revision null means the object must not exist",
      );
      await assert.rejects(
        store.writePolicies(
          change([{ op: "put", policy: sampleRoute("api") }], {
            expect: [{ ...API, revision: 1 }],
          }),
        ),
        (e: unknown) =>
          e instanceof PreconditionFailedError && e.current === null &&
          /TrafficRoute "default\/api" no longer exists/.test(e.message),
      );
      assert.deepEqual(await policyState(store), before);
    }));

  Deno.test(`${backend} store: a policy change is all or nothing`, () =>
    withStore(async (store) => {
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web") }]));
      const before = await policyState(store);
      await assert.rejects(
        store.writePolicies(change(
          [
            { op: "put", policy: sampleRoute("api") },
            { op: "put", policy: sampleRoute("web", {}, "9s") },
          ],
          { expect: [{ ...API, revision: null }, { ...WEB, revision: 5 }] },
        )),
        PreconditionFailedError,
      );
      await assert.rejects(
        store.writePolicies(change([
          { op: "put", policy: sampleRoute("api") },
          { op: "delete", kind: "TrafficRoute", namespace: "default", name: "gone" },
        ])),
        (e: unknown) =>
          e instanceof NotFoundError &&
          /TrafficRoute "default\/gone" does not exist/.test(e.message),
        "a delete of a missing object undoes the writes before it",
      );
      assert.deepEqual(await policyState(store), before);
      assert.equal(await store.getPolicy(API.kind, API.namespace, API.name), null);
    }));

  Deno.test(`${backend} store: a recreated policy continues its revisions after the delete`, () =>
    withStore(async (store) => {
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web") }]));
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web", {}, "5s") }]));
      const deleted = await store.writePolicies(
        change([{ op: "delete", ...WEB }], { expect: [{ ...WEB, revision: 2 }], at: T2 }),
      );
      assert.deepEqual(deleted, [null]);
      assert.equal(await store.getPolicy(WEB.kind, WEB.namespace, WEB.name), null);
      assert.deepEqual(await store.listPolicies(), []);

      const [recreated] = await store.writePolicies(
        change([{ op: "put", policy: sampleRoute("web") }], {
          expect: [{ ...WEB, revision: null }],
          at: T3,
        }),
      );
      assert.equal(recreated?.metadata.revision, 4, "revision 3 was the delete");
      assert.equal(recreated?.metadata.createdAt, T3);
      const history = await store.policyHistory(WEB.kind, WEB.namespace, WEB.name);
      assert.deepEqual(history.map((h) => [h.revision, h.op]), [
        [1, "create"],
        [2, "update"],
        [3, "delete"],
        [4, "create"],
      ]);
      assert.equal(history[2]?.object, null);
      assert.equal(history[2]?.at, T2);
      const audit = await store.listAudit({ limit: 10 });
      assert.deepEqual(audit.slice(2).map((a) => [a.action, a.status, a.revision, a.detail]), [
        ["delete", 200, 3, "delete"],
        ["apply", 201, 4, "create"],
      ]);
      assert.equal(await store.policyRevision(), 4);
    }));

  Deno.test(`${backend} store: a rollback is recorded as one`, () =>
    withStore(async (store) => {
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web") }]));
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web", {}, "5s") }]));
      const [first] = await store.policyHistory(WEB.kind, WEB.namespace, WEB.name);
      const [rolledBack] = await store.writePolicies(
        change([{ op: "put", policy: first!.object!, rollback: true }], { at: T2 }),
      );
      assert.equal(rolledBack?.metadata.revision, 3);
      assert.equal(rolledBack?.metadata.createdAt, T1);
      assert.deepEqual(rolledBack?.spec, sampleRoute("web").spec);
      const history = await store.policyHistory(WEB.kind, WEB.namespace, WEB.name);
      assert.deepEqual(history.map((h) => h.op), ["create", "update", "rollback"]);
      const [entry] = await store.listAudit({ after: 2, limit: 10 });
      assert.deepEqual(
        [entry?.action, entry?.status, entry?.revision, entry?.detail],
        ["rollback", 200, 3, "rollback"],
      );
    }));

  Deno.test(`${backend} store: a policy change that writes one object twice is refused`, () =>
    withStore(async (store) => {
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("web") }]));
      const before = await policyState(store);
      await assert.rejects(
        store.writePolicies(change([
          { op: "put", policy: sampleRoute("api") },
          { op: "put", policy: sampleRoute("web", {}, "5s") },
          { op: "delete", ...WEB },
        ])),
        (e: unknown) =>
          e instanceof InvalidError &&
          /TrafficRoute "default\/web" is written twice/.test(e.message) &&
          e.problems[0]?.pointer === "/writes/2",
      );
      assert.deepEqual(await policyState(store), before);
    }));

  Deno.test(`${backend} store: listPolicies() filters by kind and namespace, in key order`, () =>
    withStore(async (store) => {
      await store.writePolicies(change([
        { op: "put", policy: sampleRoute("web", { namespace: "other" }) },
        { op: "put", policy: sampleRoute("web") },
        { op: "put", policy: sampleMeshConfig() },
        { op: "put", policy: sampleRoute("api") },
      ]));
      assert.equal(await store.policyRevision(), 1, "one change, one policy revision");
      assert.deepEqual(await store.writePolicies(change([])), []);
      assert.equal(await store.policyRevision(), 1, "a change that writes nothing bumps nothing");
      assert.deepEqual(keys(await store.listPolicies()), [
        "MeshConfig//mesh",
        "TrafficRoute/default/api",
        "TrafficRoute/default/web",
        "TrafficRoute/other/web",
      ]);
      assert.deepEqual(keys(await store.listPolicies({ kind: "MeshConfig" })), [
        "MeshConfig//mesh",
      ]);
      assert.deepEqual(keys(await store.listPolicies({ namespace: "" })), ["MeshConfig//mesh"]);
      assert.deepEqual(
        keys(await store.listPolicies({ kind: "TrafficRoute", namespace: "other" })),
        [
          "TrafficRoute/other/web",
        ],
      );
      assert.deepEqual(await store.listPolicies({ kind: "RateLimit" }), []);
      assert.equal((await store.getPolicy("MeshConfig", "", "mesh"))?.metadata.revision, 1);
    }));

  Deno.test(`${backend} store: the audit log pages by id and filters`, () =>
    withStore(async (store) => {
      await store.appendAudit(sampleAudit("web"));
      await store.writePolicies(change([{ op: "put", policy: sampleRoute("api") }]));
      await store.appendAudit(sampleAudit("web", { namespace: "other", status: 412 }));
      await store.appendAudit(sampleAudit("web", { kind: "RateLimit", status: 404 }));

      const all = await store.listAudit({ limit: 10 });
      assert.equal(all.length, 4);
      assert.deepEqual(all[0], { id: all[0]!.id, ...sampleAudit("web") });
      assert.ok(all.every((a, i) => i === 0 || a.id > all[i - 1]!.id), "ids increase");
      const page1 = await store.listAudit({ limit: 3 });
      const page2 = await store.listAudit({ limit: 3, after: page1.at(-1)!.id });
      assert.deepEqual([...page1, ...page2], all);
      assert.deepEqual(await store.listAudit({ limit: 3, after: all.at(-1)!.id }), []);
      assert.deepEqual(await store.listAudit({ limit: 0 }), []);

      const statuses = async (query: Parameters<Store["listAudit"]>[0]) =>
        (await store.listAudit(query)).map((a) => a.status);
      assert.deepEqual(await statuses({ limit: 10, outcome: "refused" }), [422, 412, 404]);
      assert.deepEqual(await statuses({ limit: 10, outcome: "ok" }), [201]);
      assert.deepEqual(await statuses({ limit: 10, name: "web" }), [422, 412, 404]);
      assert.deepEqual(await statuses({ limit: 10, kind: "TrafficRoute", namespace: "default" }), [
        422,
        201,
      ]);
      assert.deepEqual(await statuses({ limit: 1, kind: "RateLimit", after: all[0]!.id }), [404]);
      assert.equal(
        await store.policyRevision(),
        1,
        "appending to the audit log is no policy change",
      );
    }));

  Deno.test(`${backend} store: snapshot() copies everything committed, while writes go on`, () =>
    withStore(async (store) => {
      const dir = await Deno.makeTempDir();
      try {
        await store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
        await store.createToken(sampleJoinToken("join1"), "");
        await store.writePolicies(change([{ op: "put", policy: sampleRoute("web") }]));
        await store.appendAudit(sampleAudit("api"));
        const writing = store.commit({
          writes: [{ op: "put", kind: "node", value: sampleNode("vm-2") }],
        });
        await store.snapshot(`${dir}/copy.db`);
        await writing;
        const copy = openSnapshot(`${dir}/copy.db`);
        try {
          assert.equal((await copy.get("node", "vm-1"))?.name, "vm-1");
          assert.equal((await copy.getToken("join1"))?.token.id, "join1");
          assert.deepEqual(
            await copy.getPolicy(WEB.kind, WEB.namespace, WEB.name),
            await store.getPolicy(WEB.kind, WEB.namespace, WEB.name),
          );
          assert.equal(
            (await copy.policyHistory(WEB.kind, WEB.namespace, WEB.name)).length,
            1,
          );
          assert.equal(await copy.policyRevision(), 1);
          assert.deepEqual(
            await copy.listAudit({ limit: 10 }),
            await store.listAudit({ limit: 10 }),
          );
          assert.equal(
            await copy.schemaVersion(),
            snapshotSchemaVersion ?? await store.schemaVersion(),
          );
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
