/**
 * End to end with several `ironmesh server` replicas on one throwaway
 * PostgreSQL: each follows the others' writes through the shared revision
 * log, so a write acknowledged by one reaches the others' REST API,
 * blocking queries and the proxies connected to them.
 */
import assert from "node:assert/strict";
import { sharedCluster } from "../store/_postgres_testing.ts";
import { LDS, type SotwResponse, TestSotwClient } from "../xds/_ads_testing.ts";
import { caPassphraseArgs, ServerProc, tempDir, waitFor } from "./harness.ts";

const cluster = await sharedCluster();

/** The CA key passphrase every replica is given (the CA is kept in the database under it). */
const passphrase = await caPassphraseArgs();

/**
 * The arguments every replica of these tests runs with: the shared store, the CA key passphrase
 * and a loopback xDS port.
 */
function replicaArgs(url: string): string[] {
  return ["--store", url, ...passphrase, "--xds-plaintext-addr", "127.0.0.1:0"];
}

/** Starts `n` replicas on `url`, one after the other (the first migrates the schema). */
async function startReplicas(url: string, n: number): Promise<ServerProc[]> {
  const replicas: ServerProc[] = [];
  for (let i = 0; i < n; i++) {
    replicas.push(await ServerProc.start(await tempDir(`replica-${i}`), replicaArgs(url)));
  }
  return replicas;
}

async function stopAll(replicas: (ServerProc | undefined)[]): Promise<void> {
  for (const r of replicas) {
    if (!r) continue;
    await r.proc.stop();
    await Deno.remove(r.dataDir, { recursive: true }).catch(() => {});
  }
}

/** The plaintext xDS port of a replica, from the `server.json` it wrote. */
async function xdsPort(replica: ServerProc): Promise<number> {
  const info = JSON.parse(await Deno.readTextFile(`${replica.dataDir}/server.json`));
  return Number(String(info.xdsPlaintext).split(":").at(-1));
}

/**
 * A proxyless client on `replica` watching listener `name`: the responses
 * it acknowledged, read by {@link listenerNames}.
 */
async function watchListener(replica: ServerProc, name: string) {
  const client = new TestSotwClient(await xdsPort(replica), `probe-${crypto.randomUUID()}`);
  client.subscribe(LDS, [name]);
  let last: SotwResponse | null = null;
  let open = true;
  const pump = (async () => {
    while (open) {
      const response = await client.next(200).catch(() => null);
      if (!response) continue;
      if (response.type_url === LDS) last = response;
      client.ack(response);
    }
  })();
  return {
    /** The names of the listeners in the newest LDS response. */
    listenerNames: () =>
      (last?.resources ?? []).map((r) => String((r as { name?: string }).name ?? "")),
    async close() {
      open = false;
      await pump;
      await client.close();
    },
  };
}

Deno.test("e2e replicas: a write on one replica is visible through another's API and pushed to a proxy on a third", async () => {
  const url = await cluster.createDatabase();
  const [a, b, c] = await startReplicas(url, 3) as [ServerProc, ServerProc, ServerProc];
  const proxy = await watchListener(c, "web.default");
  try {
    // A blocking query on B, parked before the write: the write must wake it.
    const index = (await b.api("GET", "/v1/services")).headers.get("x-ironmesh-index");
    const blocked = b.api("GET", `/v1/services?index=${index}&wait=30s`);
    await new Promise((r) => setTimeout(r, 200));

    const put = await a.api("PUT", "/v1/services/default/web", {
      body: { ports: [{ port: 8080, protocol: "grpc" }] },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));

    const woken = await blocked;
    assert.equal(woken.status, 200);
    assert.deepEqual(woken.body.items.map((s: { name: string }) => s.name), ["web"]);
    assert.ok(Number(woken.headers.get("x-ironmesh-index")) > Number(index));

    await waitFor(
      "C to push the listener of the service A declared",
      () => proxy.listenerNames().includes("web.default"),
    );

    // A delete on B reaches the proxy on C too.
    assert.equal((await b.api("DELETE", "/v1/services/default/web")).status, 204);
    await waitFor(
      "C to withdraw the listener B deleted",
      () => !proxy.listenerNames().includes("web.default"),
    );
  } finally {
    await proxy.close();
    await stopAll([a, b, c]);
  }
});

Deno.test("e2e replicas: concurrent write bursts on every replica end with every replica seeing every write", async () => {
  const url = await cluster.createDatabase();
  const replicas = await startReplicas(url, 3);
  try {
    const PER_REPLICA = 40;
    const results = await Promise.all(
      replicas.flatMap((r, i) =>
        Array.from(
          { length: PER_REPLICA },
          (_, k) =>
            r.api("PUT", `/v1/services/burst/s-${i}-${k}`, { body: { labels: { by: String(i) } } }),
        )
      ),
    );
    for (const result of results) assert.equal(result.status, 201, JSON.stringify(result.body));
    // Each replica's feed reaches the revision of the last write, wherever it was made.
    const head = Math.max(
      ...(await Promise.all(replicas.map((r) => r.api("GET", "/v1/services?namespace=burst"))))
        .map((res) => Number(res.headers.get("x-ironmesh-index"))),
    );
    for (const replica of replicas) {
      const res = await replica.api(
        "GET",
        `/v1/services?namespace=burst&limit=500&index=${head - 1}&wait=10s`,
      );
      assert.equal(res.body.items.length, 3 * PER_REPLICA);
      assert.equal(Number(res.headers.get("x-ironmesh-index")), head);
    }
  } finally {
    await stopAll(replicas);
  }
});

Deno.test("e2e replicas: a replica cut off from PostgreSQL, or restarted, catches up on what it missed", async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const [a, b] = await startReplicas(url, 2) as [ServerProc, ServerProc];
  let restarted: ServerProc | undefined;
  const proxy = await watchListener(b, "api.default");
  let late: Awaited<ReturnType<typeof watchListener>> | undefined;
  try {
    // Every connection cut, B's notification channel among them: the write A makes meanwhile
    // must still reach B's proxy, read by revision once B is back.
    await cluster.dropConnections(database);
    await waitFor(
      "A to accept a write after losing its connections",
      // A write whose answer was lost with its connection may have committed: then it updates.
      async () =>
        [200, 201].includes(
          (await a.api("PUT", "/v1/services/default/api", {
            body: { ports: [{ port: 9000, protocol: "grpc" }] },
          })).status,
        ),
    );
    await waitFor(
      "B to push the listener of the service A declared",
      () => proxy.listenerNames().includes("api.default"),
    );

    // B killed: A writes while it is down; the restarted B serves what it missed.
    await b.proc.stop("SIGKILL");
    assert.equal(
      (await a.api("PUT", "/v1/services/default/late", {
        body: { ports: [{ port: 9001, protocol: "grpc" }] },
      }))
        .status,
      201,
    );
    restarted = await ServerProc.start(b.dataDir, replicaArgs(url));
    assert.equal((await restarted.api("GET", "/v1/services/default/late")).status, 200);
    late = await watchListener(restarted, "late.default");
    await waitFor(
      "the restarted B to push what A wrote while it was down",
      () => late!.listenerNames().includes("late.default"),
    );
    // And it follows A's writes from then on.
    assert.equal((await a.api("DELETE", "/v1/services/default/late")).status, 204);
    await waitFor(
      "the restarted B to withdraw what A deleted",
      () => !late!.listenerNames().includes("late.default"),
    );
  } finally {
    await proxy.close();
    await late?.close();
    await stopAll([a, restarted ?? b]);
  }
});

/** Which replica `replica` says leads, and whether it is itself. */
async function leaderOf(replica: ServerProc): Promise<{ leader: string | null; leading: boolean }> {
  const ready = await replica.api("GET", "/readyz");
  assert.equal(ready.status, 200, JSON.stringify(ready.body));
  return ready.body.leader;
}

/** A registration of node `name` with one instance, beating every `interval`. */
function registration(name: string, interval: string) {
  return {
    hostname: name,
    addresses: ["127.0.0.1"],
    agentVersion: "e2e",
    heartbeatInterval: interval,
    instances: [{ id: "web", service: "web", port: 8080 }],
  };
}

Deno.test("e2e replicas: SIGKILL the leader and another replica leads within 15 s, its sweep resumes, /readyz and /v1/ca/status say who leads", async () => {
  const url = await cluster.createDatabase();
  const replicas = await startReplicas(url, 3);
  try {
    const leader = await waitFor("every replica to name the same leader", async () => {
      const seen = await Promise.all(replicas.map(leaderOf));
      const names = new Set(seen.map((s) => s.leader));
      return names.size === 1 && seen.filter((s) => s.leading).length === 1 &&
        replicas[seen.findIndex((s) => s.leading)];
    });
    const rest = replicas.filter((r) => r !== leader);
    const ca = await rest[0]!.api("GET", "/v1/ca/status");
    assert.equal(ca.status, 200);
    assert.equal(ca.body.leader.leading, false);
    assert.equal(ca.body.leader.leader, (await leaderOf(leader)).leader);

    // A node that stops beating must still be marked stale once the leader is gone.
    const agent = await rest[0]!.token("agent");
    const reg = await rest[0]!.api("PUT", "/v1/nodes/vm-quiet/registration", {
      token: agent,
      body: registration("vm-quiet", "2s"),
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));

    await leader.proc.stop("SIGKILL");
    const successor = await waitFor("another replica to lead", async () => {
      for (const r of rest) if ((await leaderOf(r)).leading) return r;
      return null;
    }, 15_000);
    const status = await successor.api("GET", "/v1/ca/status");
    assert.equal(status.body.leader.leading, true);
    // The other replica learns who leads at its next read of the lease (every 2 s).
    await waitFor("every remaining replica to name the new leader", async () => {
      const seen = await Promise.all(rest.map(leaderOf));
      return seen.every((s) => s.leader === status.body.leader.self);
    }, 5_000);

    await waitFor(
      "the new leader's sweep to mark the silent node stale",
      async () => (await successor.api("GET", "/v1/nodes/vm-quiet")).body.status === "stale",
      15_000,
    );
  } finally {
    await stopAll(replicas);
  }
});

Deno.test("e2e replicas: an agent that beats one replica, then another, never turns stale; once silent it does", async () => {
  const url = await cluster.createDatabase();
  const replicas = await startReplicas(url, 3);
  try {
    const agent = await replicas[0]!.token("agent");
    const reg = await replicas[1]!.api("PUT", "/v1/nodes/vm-roam/registration", {
      token: agent,
      body: registration("vm-roam", "2s"),
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));

    // 14 s of beats every 2 s (over two TTLs of 6 s), alternating between two replicas while the
    // third (which may lead) hears none; meanwhile every replica is asked for the node's status.
    const statuses = new Set<string>();
    let beating = true;
    const watch = (async () => {
      while (beating) {
        for (const r of replicas) {
          statuses.add((await r.api("GET", "/v1/nodes/vm-roam")).body.status);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    for (let beat = 0; beat < 7; beat++) {
      const to = replicas[1 + beat % 2]!;
      const res = await to.api("POST", "/v1/nodes/vm-roam/heartbeat", {
        token: agent,
        body: { checks: [{ id: "web", status: "passing" }] },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    beating = false;
    await watch;
    assert.deepEqual([...statuses], ["alive"]);
    // The same node, silent now, turns stale: the sweep that never fired above does run.
    await waitFor(
      "the silent node to turn stale",
      async () => (await replicas[0]!.api("GET", "/v1/nodes/vm-roam")).body.status === "stale",
      15_000,
    );
  } finally {
    await stopAll(replicas);
  }
});

Deno.test("e2e replicas: an API token revoked on one replica is refused by another at once, not after its cache expires", async () => {
  const url = await cluster.createDatabase();
  const [a, b] = await startReplicas(url, 2) as [ServerProc, ServerProc];
  try {
    const created = await a.api("POST", "/v1/tokens", { body: { role: "viewer" } });
    assert.equal(created.status, 201);
    // B verifies it once and caches it for 10 s.
    assert.equal((await b.api("GET", "/v1/services", { token: created.body.token })).status, 200);
    assert.equal((await a.api("DELETE", `/v1/tokens/${created.body.id}`)).status, 204);
    await waitFor(
      "B to refuse the token A revoked",
      async () =>
        (await b.api("GET", "/v1/services", { token: created.body.token })).status === 401,
      // Well inside the 10 s B would otherwise trust its cached verification.
      3_000,
    );
  } finally {
    await stopAll([a, b]);
  }
});
