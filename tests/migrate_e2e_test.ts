/**
 * End to end: `ironmesh migrate` moves a populated mesh from a SQLite server
 * to PostgreSQL and back, with real server processes on each store and a
 * throwaway PostgreSQL cluster, and refuses what it cannot copy with a
 * sentence.
 */
import assert from "node:assert/strict";
import { makeCsr } from "../ca/_testing.ts";
import { sharedCluster } from "../store/_postgres_testing.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import { runCli, ServerProc, type ServerProc as Server, tempDir } from "./harness.ts";

const cluster = await sharedCluster();

function route(timeout: string) {
  return {
    apiVersion: "ironmesh.io/v1",
    kind: "TrafficRoute",
    metadata: { name: "web", namespace: "default" },
    spec: { service: "web", rules: [{ timeout }] },
  };
}

const destination = {
  apiVersion: "ironmesh.io/v1",
  kind: "DestinationPolicy",
  metadata: { name: "web", namespace: "default" },
  spec: { service: "web", subsets: [{ name: "v1", labels: { version: "v1" } }] },
};

function registration(address: string) {
  return {
    hostname: "host",
    addresses: [address],
    agentVersion: "test",
    // Long enough that no node turns stale while the test compares.
    heartbeatInterval: "10m",
    instances: [
      { id: "web", service: "web", port: 8080, labels: { version: "v1" } },
      { id: "api", service: "api", namespace: "shop", port: 9090, protocol: "grpc" },
    ],
  };
}

async function ok(
  server: Server,
  method: string,
  path: string,
  body?: unknown,
  // deno-lint-ignore no-explicit-any -- response bodies of every shape
): Promise<any> {
  const res = await server.api(method, path, body === undefined ? {} : { body });
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A mesh with every kind of thing a store holds, made through the REST API. */
async function populate(server: Server): Promise<void> {
  await ok(server, "PUT", "/v1/services/default/web", { labels: { tier: "front" } });
  await ok(server, "PUT", "/v1/services/shop/api", {});
  // A node enrolled with a join token (a certificate record, a used token), and one not.
  const join = await server.joinToken({ node: "vm-1", serviceAccount: "web" });
  const enrol = await server.api("POST", "/v1/ca/enrol", {
    token: null,
    body: { token: join, csr: await makeCsr(), node: "vm-1" },
  });
  assert.equal(enrol.status, 200, JSON.stringify(enrol.body));
  await ok(server, "PUT", "/v1/nodes/vm-1/registration", registration("10.0.0.1"));
  await ok(server, "PUT", "/v1/nodes/vm-2/registration", registration("10.0.0.2"));
  await ok(server, "PATCH", "/v1/instances/web@vm-2", { draining: true });
  // Policies with history: three revisions, a refused write (audited), a delete.
  for (const timeout of ["1s", "2s", "3s"]) {
    await ok(server, "PUT", "/v1/policies/trafficroute/default/web", route(timeout));
  }
  const refused = await server.api("PUT", "/v1/policies/trafficroute/default/web", {
    body: route("forever"),
  });
  assert.equal(refused.status, 422);
  await ok(server, "PUT", "/v1/policies/destinationpolicy/default/web", destination);
  await ok(server, "DELETE", "/v1/policies/destinationpolicy/default/web");
  await ok(server, "PUT", "/v1/policies/destinationpolicy/default/web", destination);
  // API tokens, one of them revoked.
  await server.token("viewer", { description: "dashboards" });
  const doomed = await ok(server, "POST", "/v1/tokens", { role: "operator" });
  await ok(server, "DELETE", `/v1/tokens/${doomed.id}`);
}

/** What the API shows of the mesh, and the CA's roots. */
async function state(server: Server): Promise<Record<string, unknown>> {
  const paths = [
    "/v1/services",
    "/v1/instances",
    "/v1/nodes",
    "/v1/tokens",
    "/v1/policies/trafficroute",
    "/v1/policies/destinationpolicy",
    "/v1/policies/trafficroute/default/web/history",
    "/v1/policies/destinationpolicy/default/web/history",
    "/v1/audit",
    "/v1/ca/roots",
  ];
  const seen: Record<string, unknown> = {};
  for (const path of paths) seen[path] = await ok(server, "GET", path);
  seen["roots.pem"] = await (await fetch(`${server.url}/v1/ca/roots?format=pem`)).text();
  return seen;
}

/**
 * A new server's data directory on a store the migration filled: the admin token file (a
 * secret of the data directory, not of the store) and, while the CA is kept in each replica's
 * data directory rather than in PostgreSQL (docs/ha.md), the CA's files as the docs say.
 */
async function prepareDataDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for (const entry of ["admin.token", "ca", "token-signing.key"]) {
    if (await exists(`${to}/${entry}`)) continue;
    await new Deno.Command("cp", { args: ["-a", `${from}/${entry}`, `${to}/${entry}`] }).output();
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("Migration SQLite → PostgreSQL → SQLite round-trips a populated mesh unchanged", async () => {
  const url = await cluster.createDatabase();
  const work = await tempDir("migrate");
  const passphrase = `${work}/passphrase`;
  await Deno.writeTextFile(passphrase, "correct horse battery staple\n");
  const caFlags = ["--ca-key-passphrase-file", passphrase];
  const servers: Server[] = [];
  try {
    const first = await ServerProc.start(`${work}/a`, caFlags);
    servers.push(first);
    await populate(first);
    const before = await state(first);
    await first.proc.stop();

    const there = await runCli(["migrate", "--from", `sqlite:${work}/a`, "--to", url]);
    assert.equal(there.code, 0, there.stderr);
    assert.match(there.stdout, /^Copied sqlite:.*\/a\/ironmesh\.db to postgres:\/\//m);
    for (
      const [kind, n] of [
        ["services", 2],
        ["nodes", 2],
        ["instances", 4],
        ["policies", 2],
        ["policy revisions", 6],
        ["tokens", 4],
        ["certificates", 1],
      ] as const
    ) {
      assert.match(there.stdout, new RegExp(`^  ${kind} +${n}$`, "m"), there.stdout);
    }
    assert.match(there.stdout, /^ {2}audit entries +7$/m);

    await prepareDataDir(`${work}/a`, `${work}/b`);
    const onPostgres = await ServerProc.start(`${work}/b`, [...caFlags, "--store", url]);
    servers.push(onPostgres);
    assert.equal((await onPostgres.api("GET", "/readyz")).body.store, "postgres");
    assert.deepEqual(await state(onPostgres), before);
    await onPostgres.proc.stop();

    const back = await runCli(["migrate", "--from", url, "--to", `sqlite:${work}/c`]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /^ {2}policy revisions +6$/m);
    await prepareDataDir(`${work}/b`, `${work}/c`);
    const again = await ServerProc.start(`${work}/c`, caFlags);
    servers.push(again);
    assert.equal((await again.api("GET", "/readyz")).body.store, "sqlite");
    assert.deepEqual(await state(again), before);
  } finally {
    for (const server of servers) await server.proc.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("migrate refuses bad stores with a sentence naming them, and leaves a target it could not fill empty", async () => {
  const work = await tempDir("migrate-errors");
  const url = await cluster.createDatabase();
  const migrate = (from: string, to: string) => runCli(["migrate", "--from", from, "--to", to]);
  try {
    const source = `${work}/src`;
    await Deno.mkdir(source);
    const store = openSqliteStore(`${source}/ironmesh.db`);
    await store.commit({
      writes: [{
        op: "put",
        kind: "service",
        value: {
          name: "web",
          namespace: "default",
          revision: 0,
          labels: {},
          ports: [],
          managedBy: "api",
          createdAt: new Date().toISOString(),
        },
      }],
    });
    await store.close();

    const unknown = await migrate("mysql://db/mesh", url);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /Invalid --from "mysql:\/\/db\/mesh": unknown kind of store; expected sqlite:PATH or postgres:\/\//,
    );

    const missing = await migrate(`sqlite:${work}/nowhere`, url);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no SQLite store at ".*\/nowhere\/ironmesh\.db"/);

    const unreachable = await migrate(`sqlite:${source}`, "postgres://me@127.0.0.1:1/mesh");
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /PostgreSQL "me@127\.0\.0\.1:1\/mesh" refused the connection/);

    // A copy that fails halfway (a table PostgreSQL has no place for) leaves nothing behind.
    const odd = `${work}/odd`;
    await Deno.mkdir(odd);
    await Deno.copyFile(`${source}/ironmesh.db`, `${odd}/ironmesh.db`);
    const db = openSqliteStore(`${odd}/ironmesh.db`);
    await db.close();
    await sqlite(
      `${odd}/ironmesh.db`,
      "CREATE TABLE gadgets (x TEXT); INSERT INTO gadgets VALUES ('a')",
    );
    const failed = await migrate(`sqlite:${odd}`, url);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /Cannot copy table "gadgets" into PostgreSQL .*: its schema lacks the table/,
    );

    // So the same database takes a good copy afterwards, then refuses a second one.
    const good = await migrate(`sqlite:${source}`, url);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /^ {2}services +1$/m);
    const twice = await migrate(`sqlite:${source}`, url);
    assert.equal(twice.code, 1);
    assert.match(
      twice.stderr,
      /Cannot copy into PostgreSQL ".*": it is not empty \(it holds 1 services\); give an empty database/,
    );

    // A SQLite target that holds something is refused too, naming what it found.
    const full = await migrate(url, `sqlite:${source}`);
    assert.equal(full.code, 1);
    assert.match(
      full.stderr,
      /Cannot migrate into "sqlite:.*\/src\/ironmesh\.db": it is not empty \(it holds 1 services\)/,
    );

    // A source written by a newer ironmesh.
    await sqlite(
      `${odd}/ironmesh.db`,
      "INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'future', 'now')",
    );
    const newer = await migrate(`sqlite:${odd}`, await cluster.createDatabase());
    assert.equal(newer.code, 1);
    assert.match(newer.stderr, /its schema version 99 is newer than this ironmesh knows \(\d+\)/);

    const same = await migrate(`sqlite:${source}`, `sqlite:${work}/other`);
    assert.equal(same.code, 1);
    assert.match(same.stderr, /migrate copies between SQLite and PostgreSQL/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

async function sqlite(file: string, sql: string): Promise<void> {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file);
  db.exec(sql);
  db.close();
}
