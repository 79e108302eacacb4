/** End to end: online backup under write load, and restore into an empty data directory. */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { runCli, serverArgs, ServerProc, tempDir } from "./harness.ts";

Deno.test("e2e backup: taken under write load, restores everything acknowledged before it began", async () => {
  const dir = await tempDir("server");
  const work = await tempDir("backup");
  const server = await ServerProc.start(dir);
  const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
  let restored: ServerProc | undefined;
  try {
    // A policy with history: its revisions and audit entries travel with the backup.
    const route = (timeout: string) => ({
      apiVersion: "ironmesh.io/v1",
      kind: "TrafficRoute",
      metadata: { name: "svc-0", namespace: "default" },
      spec: { service: "svc-0", rules: [{ timeout }] },
    });
    const policyPath = "/v1/policies/trafficroute/default/svc-0";
    assert.equal((await server.api("PUT", policyPath, { body: route("1s") })).status, 201);
    assert.equal((await server.api("PUT", policyPath, { body: route("2s") })).status, 200);
    // A writer that keeps writing until told to stop, recording when each write was acknowledged.
    const acked: { name: string; at: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const name = `svc-${i}`;
        const res = await server.api("PUT", `/v1/services/default/${name}`, {
          body: { labels: { i: String(i) } },
        });
        assert.equal(res.status, 201);
        acked.push({ name, at: Date.now() });
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const began = Date.now();
    const backup = await runCli(["backup", "--out", `${work}/backup.json.gz`], env);
    assert.equal(backup.code, 0, backup.stderr);
    await new Promise((r) => setTimeout(r, 200));
    writing = false;
    await writer;
    const before = acked.filter((a) => a.at < began).map((a) => a.name);
    assert.ok(before.length > 10, `only ${before.length} writes before the backup`);
    assert.ok(acked.length > before.length, "writes went on during the backup");
    assert.equal((await Deno.stat(`${work}/backup.json.gz`)).mode! & 0o777, 0o600);

    // A restore refuses a non-empty directory and a file that is not a backup.
    const busy = await runCli(["restore", `${work}/backup.json.gz`, "--data-dir", dir]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /is not empty/);
    await Deno.writeTextFile(`${work}/junk.gz`, "not a backup");
    const junk = await runCli(["restore", `${work}/junk.gz`, "--data-dir", `${work}/junk-restore`]);
    assert.equal(junk.code, 1);
    assert.match(junk.stderr, /is not an Ironmesh backup/);

    const target = `${work}/restored`;
    const restore = await runCli(["restore", `${work}/backup.json.gz`, "--data-dir", target]);
    assert.equal(restore.code, 0, restore.stderr);
    const db = new DatabaseSync(`${target}/ironmesh.db`, { readOnly: true });
    try {
      assert.equal(
        (db.prepare("PRAGMA integrity_check").get() as Record<string, string>).integrity_check,
        "ok",
      );
      const names = new Set(
        (db.prepare("SELECT key FROM objects WHERE kind = 'service'").all() as { key: string }[])
          .map((r) => r.key.split("/")[1]),
      );
      const missing = before.filter((n) => !names.has(n));
      assert.deepEqual(missing, [], "every write acknowledged before the backup began is in it");
    } finally {
      db.close();
    }
    assert.ok((await Deno.stat(`${target}/ca/state.json`)).isFile, "CA material is restored");
    assert.equal((await Deno.stat(`${target}/token-signing.key`)).mode! & 0o777, 0o600);

    // The restored directory runs: same CA, same data.
    restored = await ServerProc.start(target);
    const svc = await restored.api("GET", `/v1/services/default/${before.at(-1)}`);
    assert.equal(svc.status, 200);
    const policy = await restored.api("GET", policyPath);
    assert.equal(policy.status, 200);
    assert.equal(policy.body.metadata.revision, 2);
    assert.equal(policy.body.spec.rules[0].timeout, "2s");
    const history = await restored.api("GET", `${policyPath}/history`);
    assert.deepEqual(history.body.items.map((h: { op: string }) => h.op), ["create", "update"]);
    assert.equal((await restored.api("GET", "/v1/audit")).body.items.length, 2);
    const rootsBefore = (await server.api("GET", "/v1/ca/roots")).body.bundleFingerprint;
    assert.equal((await restored.api("GET", "/v1/ca/roots")).body.bundleFingerprint, rootsBefore);
  } finally {
    await restored?.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("e2e backup: the server refuses a database schema newer than it knows", async () => {
  const dir = await tempDir("server");
  try {
    const server = await ServerProc.start(dir);
    await server.proc.stop();
    const db = new DatabaseSync(`${dir}/ironmesh.db`);
    db.exec("INSERT INTO schema_migrations VALUES (999, 'from the future', 'x')");
    db.close();
    const res = await runCli(serverArgs(dir));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /schema version 999 is newer than this ironmesh knows/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
