import assert from "node:assert/strict";
import { sharedCluster } from "./_postgres_testing.ts";
import { sampleService } from "./_testing.ts";
import { LogFollower } from "./log_follower.ts";
import { openPostgresStore } from "./postgres.ts";
import type { LogEntry, RevisionLog } from "./store.ts";

const cluster = await sharedCluster();

async function until(what: string, fn: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A follower on `b`'s log that records what it applied; poll long, so only wakes and reads count. */
function recording(log: RevisionLog) {
  const applied: LogEntry[] = [];
  let reloads = 0;
  const follower = new LogFollower(log, {
    apply: (entries) => {
      applied.push(...entries);
      return Promise.resolve();
    },
    reload: () => {
      reloads++;
      return Promise.resolve();
    },
    failed: () => {},
  }, { pageSize: 3, pollMs: 60_000, retryMs: 50 });
  return { follower, applied, reloads: () => reloads };
}

Deno.test("LogFollower applies another replica's writes in revision order, in pages, each once", async () => {
  const url = await cluster.createDatabase();
  const a = await openPostgresStore(url, { origin: "a" });
  const b = await openPostgresStore(url, { origin: "b" });
  const { follower, applied } = recording(b.log);
  try {
    follower.start(await b.log.head());
    for (let i = 0; i < 10; i++) {
      await a.commit({ writes: [{ op: "put", kind: "service", value: sampleService(`s${i}`) }] });
    }
    await until("ten entries", () => applied.length >= 10);
    assert.deepEqual(applied.map((e) => e.revision), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(applied[9]!.changes, [{ kind: "service", key: "default/s9" }]);
    assert.equal(follower.applied, 10);
  } finally {
    await follower.stop();
    await a.close();
    await b.close();
  }
});

Deno.test("LogFollower misses nothing written while its connections were cut, nor before it started", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const a = await openPostgresStore(url, { origin: "a" });
  const b = await openPostgresStore(url, { origin: "b" });
  const { follower, applied } = recording(b.log);
  try {
    // Written before the follower starts, after the head it starts from: still applied.
    const head = await b.log.head();
    await a.commit({ writes: [{ op: "put", kind: "service", value: sampleService("early") }] });
    follower.start(head);
    await until("the early write", () => applied.length === 1);

    // Every connection cut, the follower's LISTEN among them; A writes as soon as it can.
    await cluster.dropConnections(database);
    for (let i = 0; i < 5;) {
      await a.commit({ writes: [{ op: "put", kind: "service", value: sampleService(`late${i}`) }] })
        .then(() => i++, () => new Promise((r) => setTimeout(r, 50)));
    }
    await until("the writes made across the cut", () => applied.length === 6);
    assert.deepEqual(applied.map((e) => e.revision), [1, 2, 3, 4, 5, 6]);
  } finally {
    await follower.stop();
    await a.close();
    await b.close();
  }
});

Deno.test("LogFollower reloads when what it missed was pruned, then goes on from the head", async () => {
  const url = await cluster.createDatabase();
  const a = await openPostgresStore(url, { origin: "a" });
  const b = await openPostgresStore(url, { origin: "b" });
  const { follower, applied, reloads } = recording(b.log);
  try {
    await a.commit({ writes: [{ op: "put", kind: "service", value: sampleService("x") }] });
    await a.commit({ writes: [{ op: "put", kind: "service", value: sampleService("y") }] });
    assert.equal(await a.pruneLog(0), 2);
    follower.start(0);
    await until("a reload", () => reloads() === 1);
    await a.commit({ writes: [{ op: "put", kind: "service", value: sampleService("z") }] });
    await until("the next write", () => applied.length === 1);
    assert.equal(applied[0]!.revision, 3);
    assert.equal(reloads(), 1);
  } finally {
    await follower.stop();
    await a.close();
    await b.close();
  }
});
