/**
 * End to end on PostgreSQL: the real server process with
 * `--store postgres://…` against a throwaway cluster, restarted on it,
 * backed up from it, and left without it for a while.
 */
import assert from "node:assert/strict";
import { sharedCluster } from "../store/_postgres_testing.ts";
import { caPassphraseArgs, runCli, ServerProc, tempDir, waitFor } from "./harness.ts";

const cluster = await sharedCluster();
/** On PostgreSQL the CA is kept in the database, encrypted under this passphrase. */
const passphrase = await caPassphraseArgs();

const route = {
  apiVersion: "ironmesh.io/v1",
  kind: "TrafficRoute",
  metadata: { name: "web", namespace: "default" },
  spec: { service: "web", rules: [{ timeout: "2s" }] },
};

Deno.test("e2e postgres: the server keeps its state in PostgreSQL across a restart and backs it up", async () => {
  const url = await cluster.createDatabase();
  const dir = await tempDir("pg-server");
  const work = await tempDir("pg-backup");
  let server = await ServerProc.start(dir, ["--store", url, ...passphrase]);
  let restored: ServerProc | undefined;
  try {
    const ready = await server.api("GET", "/readyz");
    assert.equal(ready.body.store, "postgres");
    assert.equal(
      (await server.api("PUT", "/v1/services/default/web", { body: { labels: { a: "1" } } }))
        .status,
      201,
    );
    assert.equal(
      (await server.api("PUT", "/v1/policies/trafficroute/default/web", { body: route })).status,
      201,
    );
    const token = server.adminToken;
    await server.proc.stop();

    // The same data directory and database: the same state and the same admin token.
    server = await ServerProc.start(dir, ["--store", url, ...passphrase]);
    assert.equal(server.adminToken, token);
    assert.deepEqual((await server.api("GET", "/v1/services/default/web")).body.labels, { a: "1" });
    assert.equal(
      (await server.api("GET", "/v1/policies/trafficroute/default/web")).body.metadata.revision,
      1,
    );

    // A backup of a PostgreSQL server restores into a data directory that runs on SQLite.
    const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
    const backup = await runCli(["backup", "--out", `${work}/backup.json.gz`], env);
    assert.equal(backup.code, 0, backup.stderr);
    const restore = await runCli(["restore", `${work}/backup.json.gz`, "--data-dir", `${work}/r`]);
    assert.equal(restore.code, 0, restore.stderr);
    restored = await ServerProc.start(`${work}/r`);
    assert.equal((await restored.api("GET", "/readyz")).body.store, "sqlite");
    assert.deepEqual((await restored.api("GET", "/v1/services/default/web")).body.labels, {
      a: "1",
    });
    const history = await restored.api("GET", "/v1/policies/trafficroute/default/web/history");
    assert.equal(history.status, 200, JSON.stringify(history.body));
    assert.equal(history.body.items.length, 1);
  } finally {
    await restored?.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("e2e postgres: while the database is down, writes get 503 problem+json, then succeed again", async () => {
  const url = await cluster.createDatabase();
  const dir = await tempDir("pg-server");
  const server = await ServerProc.start(dir, ["--store", url, ...passphrase]);
  try {
    await cluster.stop();
    try {
      const write = await server.api("PUT", "/v1/services/default/web", { body: {} });
      assert.equal(write.status, 503, JSON.stringify(write.body));
      assert.equal(write.headers.get("content-type"), "application/problem+json");
      assert.match(write.body.detail, /PostgreSQL ".*\/test_\d+" (refused|closed) the connection/);
      assert.equal(write.body.type, "https://ironmesh.io/problems/storage-unavailable");
      assert.equal(write.headers.get("retry-after"), "5");
      const ready = await server.api("GET", "/readyz");
      assert.equal(ready.status, 503);
    } finally {
      await cluster.start();
    }
    await waitFor(
      "a write to succeed after PostgreSQL is back",
      async () =>
        (await server.api("PUT", "/v1/services/default/web", { body: {} })).status === 201,
    );
  } finally {
    const status = await server.proc.stop();
    assert.equal(status.code, 0, `the server stops cleanly:\n${server.proc.output}`);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e postgres: a server whose database cannot be reached says so and exits", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await tempDir("pg-server");
  try {
    const url = `postgres://ironmesh:hunter2@127.0.0.1:${port}/mesh`;
    const run = await runCli(["server", "--data-dir", dir, "--store", url]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(
        `Cannot open the store: PostgreSQL "ironmesh@127\\.0\\.0\\.1:${port}/mesh" refused the connection`,
      ),
    );
    assert.doesNotMatch(run.stderr, /hunter2|\n\s+at /, "no password, no stack trace");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
