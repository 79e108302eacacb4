import assert from "node:assert/strict";
import { sharedCluster } from "./_postgres_testing.ts";
import {
  sampleAudit,
  sampleCertificate,
  sampleInstance,
  sampleJoinToken,
  sampleNode,
  sampleRoute,
  sampleService,
} from "./_testing.ts";
import { openPostgresStore, type PostgresStore } from "./postgres.ts";
import type { LogEntry, RevisionLog } from "./store.ts";

const cluster = await sharedCluster();
const T1 = "2026-01-01T00:01:00.000Z";

/** Two replicas on one new database; both closed after `fn`. */
async function withReplicas(
  fn: (a: PostgresStore, b: PostgresStore, database: string) => Promise<void>,
): Promise<void> {
  const url = await cluster.createDatabase();
  const a = await openPostgresStore(url, { origin: "replica-a" });
  const b = await openPostgresStore(url, { origin: "replica-b" });
  try {
    await fn(a, b, new URL(url).pathname.slice(1));
  } finally {
    await a.close();
    await b.close();
  }
}

/** Everything in the log after `after`, read in pages of 2 as a follower would. */
async function readAll(log: RevisionLog, after = 0): Promise<LogEntry[]> {
  const entries: LogEntry[] = [];
  while (true) {
    const page = await log.read(after, 2);
    assert.equal(page.gap, false, `no gap after ${after}`);
    entries.push(...page.entries);
    if (page.entries.length < 2) return entries;
    after = page.entries.at(-1)!.revision;
  }
}

/** Resolves on the next call of a watcher, or rejects after `ms`. */
function nextWake(log: RevisionLog, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`No wake-up within ${ms} ms`));
    }, ms);
    const stop = log.watch(() => {
      clearTimeout(timer);
      stop();
      resolve();
    });
  });
}

Deno.test("every write appends the keys it changed to the revision log, in one entry", () =>
  withReplicas(async (a) => {
    await a.commit({
      writes: [
        { op: "put", kind: "service", value: sampleService("web") },
        { op: "put", kind: "node", value: sampleNode("vm-1") },
        { op: "put", kind: "instance", value: sampleInstance("web", "vm-1") },
      ],
    });
    // The instance moves to another service, then goes: both services' endpoints changed.
    await a.commit({
      writes: [{
        op: "put",
        kind: "instance",
        value: sampleInstance("web", "vm-1", { service: "api" }),
      }],
    });
    await a.commit({ writes: [{ op: "delete", kind: "instance", key: "web@vm-1" }] });
    await a.writePolicies({
      writes: [{ op: "put", policy: sampleRoute("web") }],
      actor: "tok1",
      at: T1,
    });
    await a.createToken(sampleJoinToken("join1"), "");
    await a.recordIssuance(sampleCertificate("01", "vm-1"), { tokenId: "join1", at: T1 });
    await a.recordIssuance(sampleCertificate("02", "vm-1", { tokenId: null, kind: "renew" }));
    await a.revokeCertificates({ node: "vm-1" }, T1, "compromised");
    await a.revokeToken("join1", T1);
    await a.setMeta("admin_token_id", "abc");

    // Writes that change nothing another replica could act on append nothing.
    await a.touchNodes([{ name: "vm-1", lastHeartbeat: T1 }]);
    await a.appendAudit(sampleAudit("web"));
    await a.commit({ writes: [] });
    await a.revokeToken("join1", T1);
    await a.revokeToken("nope", T1);
    await a.writePolicies({ writes: [], actor: "tok1", at: T1 });
    await assert.rejects(
      a.commit({
        writes: [{ op: "put", kind: "node", value: sampleNode("vm-2") }],
        expect: [{ kind: "node", key: "vm-2", revision: 5 }],
      }),
    );

    const entries = await readAll(a.log);
    assert.deepEqual(entries.map((e) => e.revision), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(entries.every((e) => e.origin === "replica-a" && !Number.isNaN(Date.parse(e.at))));
    assert.deepEqual(entries.map((e) => [e.registry, e.policies]), [
      [1, null],
      [2, null],
      [3, null],
      [null, 1],
      ...Array(6).fill([null, null]),
    ]);
    assert.deepEqual(entries.map((e) => e.changes), [
      [
        { kind: "service", key: "default/web" },
        { kind: "node", key: "vm-1" },
        { kind: "instance", key: "web@vm-1", services: ["default/web"] },
      ],
      [{ kind: "instance", key: "web@vm-1", services: ["default/web", "default/api"] }],
      [{ kind: "instance", key: "web@vm-1", services: ["default/api"] }],
      [{ kind: "policy", key: "TrafficRoute/default/web" }],
      [{ kind: "token", key: "join1" }],
      [{ kind: "token", key: "join1" }, { kind: "certificate", key: "01", node: "vm-1" }],
      [
        { kind: "certificate", key: "01", node: "vm-1" },
        { kind: "certificate", key: "02", node: "vm-1" },
      ],
      // Revocation reaches the superseded certificate too: it has not expired.
      [
        { kind: "certificate", key: "01", node: "vm-1" },
        { kind: "certificate", key: "02", node: "vm-1" },
      ],
      [{ kind: "token", key: "join1" }],
      [{ kind: "meta", key: "admin_token_id" }],
    ]);
    assert.equal(await a.log.head(), 10);
  }));

Deno.test("a write on one replica wakes the other, which reads it from the log in order", () =>
  withReplicas(async (a, b) => {
    const woken = nextWake(b.log);
    await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
    await woken;
    const [entry] = await readAll(b.log);
    assert.equal(entry?.origin, "replica-a");
    assert.deepEqual(entry?.changes, [{ kind: "node", key: "vm-1" }]);
    assert.equal((await b.get("node", "vm-1"))?.name, "vm-1", "what the entry names is readable");
  }));

Deno.test("concurrent writes from two replicas are logged gaplessly in commit order", () =>
  withReplicas(async (a, b) => {
    const writes = [];
    for (let i = 0; i < 20; i++) {
      const store = i % 2 === 0 ? a : b;
      writes.push(
        store.commit({
          writes: [{ op: "put", kind: "node", value: sampleNode(`vm-${i}`) }],
        }),
        store.writePolicies({
          writes: [{ op: "put", policy: sampleRoute(`route-${i}`) }],
          actor: "tok1",
          at: T1,
        }),
      );
    }
    await Promise.all(writes);
    const entries = await readAll(b.log);
    assert.deepEqual(entries.map((e) => e.revision), Array.from({ length: 40 }, (_, i) => i + 1));
    const registry = entries.flatMap((e) => e.registry ?? []);
    const policies = entries.flatMap((e) => e.policies ?? []);
    const ordered = Array.from({ length: 20 }, (_, i) => i + 1);
    assert.deepEqual(registry, ordered, "registry revisions appear in the order they were made");
    assert.deepEqual(policies, ordered, "policy revisions appear in the order they were made");
  }));

Deno.test("a follower misses nothing across a dropped LISTEN connection", () =>
  withReplicas(async (a, b, database) => {
    const wakes: number[] = [];
    const stop = b.log.watch(() => wakes.push(Date.now()));
    try {
      await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
      while (wakes.length === 0) await new Promise((r) => setTimeout(r, 10));
      const seen = await readAll(b.log);
      assert.deepEqual(seen.map((e) => e.revision), [1]);

      // The listening connection dies (a failover, a proxy restart); writes go on meanwhile.
      const before = wakes.length;
      assert.equal(await cluster.dropConnections(database, "query ILIKE 'LISTEN%'"), 1);
      await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-2") }] });
      await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-3") }] });
      while (wakes.length === before) await new Promise((r) => setTimeout(r, 10));

      const caughtUp = await readAll(b.log, seen.at(-1)!.revision);
      assert.deepEqual(caughtUp.map((e) => e.changes), [
        [{ kind: "node", key: "vm-2" }],
        [{ kind: "node", key: "vm-3" }],
      ]);
    } finally {
      stop();
    }
  }));

Deno.test("a follower is woken again after PostgreSQL restarts, even if it stayed down a while", () =>
  withReplicas(async (a, b) => {
    await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
    const first = nextWake(b.log);
    await first;
    await cluster.stop();
    // Longer than the listener's first retries: it must keep trying, not give up.
    await new Promise((r) => setTimeout(r, 1_000));
    const again = nextWake(b.log);
    await cluster.start();
    await again;
    await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-2") }] });
    const entries = await readAll(b.log);
    assert.deepEqual(entries.map((e) => e.changes[0]), [
      { kind: "node", key: "vm-1" },
      { kind: "node", key: "vm-2" },
    ]);
  }));

Deno.test("a reader after pruned entries is told to reload, then continues after the head", () =>
  withReplicas(async (a, b) => {
    for (const name of ["vm-1", "vm-2", "vm-3"]) {
      await a.commit({ writes: [{ op: "put", kind: "node", value: sampleNode(name) }] });
    }
    assert.equal(await a.pruneLog(60_000), 0, "nothing is old enough yet");
    assert.equal(await a.pruneLog(0), 3);
    assert.deepEqual(await b.log.read(0, 10), { entries: [], head: 3, gap: true });
    assert.deepEqual(await b.log.read(3, 10), { entries: [], head: 3, gap: false });
    assert.deepEqual(await b.log.read(7, 10), { entries: [], head: 3, gap: true });
    await a.commit({ writes: [{ op: "delete", kind: "node", key: "vm-1" }] });
    const page = await b.log.read(3, 10);
    assert.equal(page.gap, false);
    assert.deepEqual(page.entries.map((e) => e.revision), [4]);
    assert.equal((await b.log.read(1, 10)).gap, true, "revisions 2 and 3 are gone");
  }));
