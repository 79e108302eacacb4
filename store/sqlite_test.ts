import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { UnavailableError } from "../core/errors.ts";
import { sampleNode, sampleRoute, storeContract } from "./_testing.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import { openSqliteStore } from "./sqlite.ts";

storeContract("sqlite", async () => {
  const dir = await Deno.makeTempDir();
  return {
    store: openSqliteStore(`${dir}/ironmesh.db`),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}, (path) => openSqliteStore(path));

Deno.test("openSqliteStore() keeps data across reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = openSqliteStore(`${dir}/ironmesh.db`);
    await first.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
    await first.close();
    const second = openSqliteStore(`${dir}/ironmesh.db`);
    assert.equal((await second.get("node", "vm-1"))?.name, "vm-1");
    assert.equal(await second.revision(), 1);
    await second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore() refuses a schema newer than it knows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ironmesh.db`;
    await openSqliteStore(path).close();
    const db = new DatabaseSync(path);
    db.exec("INSERT INTO schema_migrations VALUES (999, 'from the future', 'x')");
    db.close();
    assert.throws(
      () => openSqliteStore(path),
      (e: unknown) =>
        e instanceof UnavailableError && /schema version 999 is newer/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore() migrates a version 2 database, keeping its data", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ironmesh.db`;
    // A database as ironmesh left it before policies existed.
    const db = new DatabaseSync(path);
    db.exec(
      "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    );
    for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version <= 2)) {
      db.exec(migration.sql);
      db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?)").run(
        migration.version,
        migration.description,
        "2026-01-01T00:00:00.000Z",
      );
    }
    db.close();
    const old = openSqliteStore(path, { migrate: false });
    await old.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
    await old.close();

    const store = openSqliteStore(path);
    try {
      assert.equal(await store.schemaVersion(), 3);
      assert.equal((await store.get("node", "vm-1"))?.name, "vm-1");
      assert.equal(await store.revision(), 1);
      assert.equal(await store.policyRevision(), 0);
      const [route] = await store.writePolicies({
        writes: [{ op: "put", policy: sampleRoute("web") }],
        actor: "tok1",
        at: "2026-01-02T00:00:00.000Z",
      });
      assert.equal(route?.metadata.revision, 1);
      assert.equal((await store.listAudit({ limit: 10 })).length, 1);
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
