import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { UnavailableError } from "../core/errors.ts";
import { sampleNode, storeContract } from "./contract.ts";
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
