/**
 * `deno task bench --only replicas`: three real `ironmesh server` replicas
 * on one throwaway PostgreSQL (`store/_postgres_testing.ts`), and how long a
 * write acknowledged by one takes to reach the others.
 *
 * 1. Registry writes (`PUT /v1/services/…`), made in turn on each replica,
 *    one at a time with a pause between them: a write is visible on another
 *    replica when that replica's event stream (`GET /v1/events`, the
 *    registry feed that blocking queries wait on too) names its revision or
 *    a later one. Measured from the moment the writer acknowledged it (and,
 *    in a second column, from when it was sent), for each of the two other
 *    replicas.
 * 2. Policy writes on A (a TrafficRoute timeout): pushed when a proxyless
 *    xDS client connected to C receives the new route configuration. This
 *    includes C's push debounce (`--push-debounce`, 100 ms by default),
 *    which a write on C itself pays too.
 *
 * 3. Leader failover: the leader SIGKILLed, until another replica's
 *    `/readyz` says it leads (the bound: 15 s).
 *
 * Options: `--writes N` (300), `--policy-writes N` (60), `--pause-ms N`
 * between writes (20), `--failovers N` (3); `--quick` for 90, 20 and 1.
 *
 * Target (issue 11): p99 write → visible on another replica ≤ 200 ms.
 * Progress on stderr, the report (markdown) on stdout.
 */
import { startCluster } from "../../store/_postgres_testing.ts";
import { LDS, RDS, type SotwResponse, TestSotwClient } from "../../xds/_ads_testing.ts";
import { Histogram } from "./histogram.ts";
import { markdownTable, ms } from "./report.ts";
import { type LaunchedServer, launchServer } from "./server_process.ts";

const quick = Deno.args.includes("--quick");
const args = new Map<string, string>();
const rest = Deno.args.filter((a) => a !== "--quick");
for (let i = 0; i < rest.length; i += 2) args.set(rest[i]!, rest[i + 1] ?? "");
const WRITES = Number(args.get("--writes") ?? (quick ? 90 : 300));
const POLICY_WRITES = Number(args.get("--policy-writes") ?? (quick ? 20 : 60));
const PAUSE_MS = Number(args.get("--pause-ms") ?? 20);
const FAILOVERS = Number(args.get("--failovers") ?? (quick ? 1 : 3));
const TARGET_MS = 200;
const now = () => performance.timeOrigin + performance.now();
const progress = (m: string) => console.error(`bench replicas: ${m}`);

/** A replica's REST call with its own admin token. */
async function call(
  server: LaunchedServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${server.info.http}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

/** Follows a replica's event stream; `seen(r)` resolves once it named revision `r` or later. */
function follow(server: LaunchedServer) {
  let revision = -1;
  const waiters = new Set<{ at: number; resolve: (t: number) => void }>();
  const abort = new AbortController();
  const done = (async () => {
    const res = await fetch(`http://${server.info.http}/v1/events`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
      signal: abort.signal,
    });
    let rest = "";
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      const t = now();
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith("id:")) continue;
        revision = Math.max(revision, Number(line.slice(3)));
        for (const w of [...waiters]) {
          if (revision >= w.at) {
            waiters.delete(w);
            w.resolve(t);
          }
        }
      }
    }
  })().catch(() => {});
  return {
    seen(at: number): Promise<number> {
      if (revision >= at) return Promise.resolve(now());
      return new Promise((resolve) => waiters.add({ at, resolve }));
    },
    async close() {
      abort.abort();
      await done;
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => timer = setTimeout(() => reject(new Error(what)), ms)),
  ]).finally(() => clearTimeout(timer));
}

const cluster = await startCluster();
const replicas: LaunchedServer[] = [];
const dirs: string[] = [];
try {
  const url = await cluster.createDatabase();
  // Replicas keep the one CA in the database, encrypted under the passphrase each is given.
  const passphraseFile = await Deno.makeTempFile({ prefix: "ironmesh-bench-passphrase-" });
  await Deno.writeTextFile(passphraseFile, "bench passphrase\n");
  const shared = ["--store", url, "--ca-key-passphrase-file", passphraseFile];
  for (const name of ["a", "b", "c"]) {
    const dir = await Deno.makeTempDir({ prefix: `ironmesh-bench-replica-${name}-` });
    dirs.push(dir);
    replicas.push(
      await launchServer({
        dataDir: dir,
        args: [...shared, "--xds-plaintext-addr", "127.0.0.1:0"],
      }),
    );
  }
  const a = replicas[0]!;
  progress(`3 replicas on PostgreSQL port ${cluster.port}; ${WRITES} registry writes`);

  // 1. Registry writes, in turn on each replica, seen by the other two.
  const streams = replicas.map(follow);
  await new Promise((r) => setTimeout(r, 500));
  const fromAck = new Histogram();
  const fromSend = new Histogram();
  for (let i = 0; i < WRITES; i++) {
    const writer = i % 3;
    const sentAt = now();
    const put = await call(replicas[writer]!, "PUT", `/v1/services/bench/s-${i}`, {
      labels: { i: String(i) },
    });
    const ackAt = now();
    if (put.status !== 201) {
      throw new Error(`PUT answered ${put.status}: ${JSON.stringify(put.body)}`);
    }
    const revision = Number(put.body.revision);
    const seen = await withTimeout(
      Promise.all(streams.filter((_, k) => k !== writer).map((s) => s.seen(revision))),
      10_000,
      `write ${i} (revision ${revision}) not visible on the other replicas within 10 s`,
    );
    for (const t of seen) {
      fromAck.record(Math.max(0, t - ackAt));
      fromSend.record(t - sentAt);
    }
    await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  for (const s of streams) await s.close();

  // 2. Policy writes on A, pushed to a proxy on C.
  progress(`${POLICY_WRITES} policy writes on A, pushed to a proxy on C`);
  const declared = await call(a, "PUT", "/v1/services/bench/echo", {
    ports: [{ port: 50051, protocol: "grpc" }],
  });
  if (declared.status !== 201) throw new Error(`PUT echo answered ${declared.status}`);
  const xdsPort = Number(
    JSON.parse(await Deno.readTextFile(`${dirs[2]}/server.json`)).xdsPlaintext.split(":").at(-1),
  );
  const proxy = new TestSotwClient(xdsPort, "bench-proxy");
  let routeVersion = "";
  const route = { waiter: null as ((t: number) => void) | null };
  const pump = (async () => {
    proxy.subscribe(LDS, ["echo.bench"]);
    while (true) {
      const response: SotwResponse | null = await proxy.next(30_000).catch(() => null);
      if (!response) return;
      const t = now();
      proxy.ack(response);
      if (response.type_url === LDS) {
        // deno-lint-ignore no-explicit-any
        const name = (response.resources?.[0] as any)?.api_listener?.api_listener?.rds
          ?.route_config_name;
        if (name) proxy.subscribe(RDS, [name]);
      } else if (response.type_url === RDS && response.version_info !== routeVersion) {
        routeVersion = response.version_info ?? "";
        route.waiter?.(t);
        route.waiter = null;
      }
    }
  })();
  await withTimeout(
    (async () => {
      while (!routeVersion) await new Promise((r) => setTimeout(r, 20));
    })(),
    10_000,
    "the proxy on C never got its first route configuration",
  );
  const pushed = new Histogram();
  for (let i = 0; i < POLICY_WRITES; i++) {
    const arrived = new Promise<number>((resolve) => route.waiter = resolve);
    const put = await call(a, "PUT", "/v1/policies/trafficroute/bench/echo", {
      apiVersion: "ironmesh.io/v1",
      kind: "TrafficRoute",
      metadata: { name: "echo", namespace: "bench" },
      spec: { service: "echo", rules: [{ timeout: `${1000 + i}ms` }] },
    });
    const ackAt = now();
    if (put.status !== 200 && put.status !== 201) {
      throw new Error(`PUT TrafficRoute answered ${put.status}: ${JSON.stringify(put.body)}`);
    }
    const t = await withTimeout(arrived, 10_000, `policy write ${i} never reached the proxy on C`);
    pushed.record(Math.max(0, t - ackAt));
    await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  await proxy.close();
  await pump;

  // 3. Leader failover: SIGKILL the leader, time until another replica's /readyz says it leads;
  // a new replica replaces the killed one before the next round.
  progress(`${FAILOVERS} leader failovers (SIGKILL)`);
  const failover = new Histogram();
  const leaderOf = async (r: LaunchedServer) =>
    ((await call(r, "GET", "/readyz")).body.leader as { leading: boolean }).leading;
  for (let round = 0; round < FAILOVERS; round++) {
    const leading = await Promise.all(replicas.map(leaderOf));
    const index = leading.indexOf(true);
    if (index < 0) throw new Error("No replica leads");
    const victim = replicas[index]!;
    const killedAt = now();
    Deno.kill(victim.info.pid, "SIGKILL");
    await victim.exited;
    const others = replicas.filter((r) => r !== victim);
    const tookOver = await withTimeout(
      (async () => {
        while (true) {
          for (const r of others) if (await leaderOf(r)) return now();
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      30_000,
      "no replica took over within 30 s",
    );
    failover.record(tookOver - killedAt);
    const dir = await Deno.makeTempDir({ prefix: "ironmesh-bench-replica-" });
    dirs.push(dir);
    replicas[index] = await launchServer({ dataDir: dir, args: shared });
  }

  const row = (what: string, h: Histogram) => [
    what,
    String(h.count),
    ms(h.quantile(0.5)),
    ms(h.quantile(0.99)),
    ms(h.maxMs),
  ];
  console.log(markdownTable(["measured", "samples", "p50", "p99", "max"], [
    row("registry write acknowledged → visible on another replica (event stream)", fromAck),
    row("registry write sent → visible on another replica", fromSend),
    row(
      "policy write acknowledged on A → pushed to a proxy on C (includes the 100 ms debounce)",
      pushed,
    ),
    row("leader SIGKILLed → another replica leads (lease 10 s, renewal 2 s)", failover),
  ]));
  const p99 = fromAck.quantile(0.99);
  console.log(
    `\n${p99 <= TARGET_MS ? "PASS" : "MISS"}: write → visible on another replica p99 ${
      ms(p99)
    } (target ≤ ${TARGET_MS} ms)`,
  );
} finally {
  for (const r of replicas) await r.stop().catch(() => {});
  for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
  cluster.remove();
}
