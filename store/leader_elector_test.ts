import assert from "node:assert/strict";
import { PreconditionFailedError } from "../core/errors.ts";
import { silentLogger } from "../core/log.ts";
import { sharedCluster } from "./_postgres_testing.ts";
import { sampleNode } from "./_testing.ts";
import { LeaderElector } from "./leader_elector.ts";
import { openPostgresStore, type PostgresStore } from "./postgres.ts";

const cluster = await sharedCluster();
/** Short terms, so a takeover after a lost leader is quick to watch. */
const TERMS = { ttlMs: 900, renewMs: 150 };

async function until(what: string, fn: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function replicas(n: number): Promise<PostgresStore[]> {
  const url = await cluster.createDatabase();
  const stores: PostgresStore[] = [];
  for (let i = 0; i < n; i++) stores.push(await openPostgresStore(url, { origin: `r${i}` }));
  return stores;
}

Deno.test("LeaderElector: without leases (SQLite) the one server leads", async () => {
  const elector = new LeaderElector(null, { self: "solo", log: silentLogger });
  await elector.start();
  assert.deepEqual(elector.status(), { self: "solo", leading: true, leader: "solo", epoch: null });
  await elector.stop();
});

Deno.test("LeaderElector: one of three replicas leads; a clean stop hands over, with a higher epoch", async () => {
  const stores = await replicas(3);
  const electors = stores.map((s) =>
    new LeaderElector(s.leases, { self: s.log.origin, log: silentLogger, ...TERMS })
  );
  try {
    await Promise.all(electors.map((e) => e.start()));
    const leaders = electors.filter((e) => e.leading);
    assert.equal(leaders.length, 1);
    const first = leaders[0]!.status();
    for (const e of electors) assert.equal(e.status().leader, first.self);

    await leaders[0]!.stop();
    const rest = electors.filter((e) => e !== leaders[0]);
    await until("another replica to lead", () => rest.some((e) => e.leading));
    assert.equal(rest.filter((e) => e.leading).length, 1);
    const second = rest.find((e) => e.leading)!.status();
    assert.notEqual(second.self, first.self);
    assert.equal(second.epoch, first.epoch! + 1);
  } finally {
    for (const e of electors) await e.stop();
    for (const s of stores) await s.close();
  }
});

Deno.test("LeaderElector: a leader that vanishes without releasing is replaced once its lease runs out", async () => {
  const stores = await replicas(2);
  const [a, b] = stores.map((s) =>
    new LeaderElector(s.leases, { self: s.log.origin, log: silentLogger, ...TERMS })
  ) as [LeaderElector, LeaderElector];
  try {
    await a.start();
    await b.start();
    assert.equal(a.leading, true);
    assert.equal(b.leading, false);
    // A's database connections go away for good (its process hangs or its network is cut):
    // it stops leading by itself before its lease ends, and B takes over once it has.
    let both = 0;
    const sampler = setInterval(() => both += a.leading && b.leading ? 1 : 0, 5);
    await stores[0]!.close();
    await until("A to step down on its own", () => !a.leading, TERMS.ttlMs * 2);
    await until("B to take over", () => b.leading, TERMS.ttlMs * 3);
    clearInterval(sampler);
    assert.equal(both, 0, "never two leaders at once");
    assert.equal(b.status().leader, "r1");
  } finally {
    await a.stop();
    await b.stop();
    await stores[1]!.close();
  }
});

Deno.test("a registry batch fenced by a lease commits while its holder holds it, and nothing once another took over", async () => {
  const [a, b] = await replicas(2) as [PostgresStore, PostgresStore];
  try {
    const held = await a.leases.acquire("leader", "r0", 300);
    const fence = { lease: "leader", holder: "r0", epoch: held.epoch };
    const write = (name: string) => ({
      writes: [{ op: "put" as const, kind: "node" as const, value: sampleNode(name) }],
      fence,
    });
    assert.equal(await a.commit(write("vm-1")), 1);

    await new Promise((r) => setTimeout(r, 400));
    const taken = await b.leases.acquire("leader", "r1", 5_000);
    assert.equal(taken.holder, "r1");
    assert.equal(taken.epoch, held.epoch + 1);
    await assert.rejects(
      a.commit(write("vm-2")),
      (e: unknown) =>
        e instanceof PreconditionFailedError &&
        /no longer holds the "leader" lease/.test(e.message),
    );
    assert.equal(await a.get("node", "vm-2"), null);
    assert.equal(await a.revision(), 1);
  } finally {
    await a.close();
    await b.close();
  }
});
