import assert from "node:assert/strict";
import postgres from "postgres";
import { InvalidError, StorageUnavailableError, UnavailableError } from "../core/errors.ts";
import { sharedCluster } from "./_postgres_testing.ts";
import { sampleNode, storeContract } from "./_testing.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import { openPostgresStore } from "./postgres.ts";
import { POSTGRES_MIGRATIONS } from "./migrations.ts";
import { LOCK_CLASS, migrate, MIGRATION_LOCK } from "./postgres_meta.ts";
import { openSqliteStore } from "./sqlite.ts";

const cluster = await sharedCluster();

storeContract(
  "postgres",
  async () => ({
    store: await openPostgresStore(await cluster.createDatabase()),
    cleanup: () => Promise.resolve(),
  }),
  (path) => openSqliteStore(path),
  SQLITE_MIGRATIONS.at(-1)!.version,
);

/** Runs `fn` with a one-connection client of the database at `url`, closed afterwards. */
async function withSql<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

const versions = (sql: postgres.Sql) =>
  sql<{ version: number }[]>`SELECT version FROM schema_migrations ORDER BY version`
    .then((rows) => rows.map((r) => r.version));

Deno.test("openPostgresStore() keeps data across reopen", async () => {
  const url = await cluster.createDatabase();
  const first = await openPostgresStore(url);
  await first.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
  await first.close();
  const second = await openPostgresStore(url);
  try {
    assert.equal((await second.get("node", "vm-1"))?.name, "vm-1");
    assert.equal(await second.revision(), 1);
    assert.equal(second.backend, "postgres");
  } finally {
    await second.close();
  }
});

Deno.test("openPostgresStore() by several replicas at once migrates once", async () => {
  const url = await cluster.createDatabase();
  const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore(url)));
  try {
    const applied = await withSql(url, versions);
    assert.deepEqual(applied, POSTGRES_MIGRATIONS.map((m) => m.version));
    await stores[0]!.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
    assert.equal((await stores[2]!.get("node", "vm-1"))?.name, "vm-1");
  } finally {
    for (const store of stores) await store.close();
  }
});

Deno.test("openPostgresStore() waits while another replica holds the migration lock", async () => {
  const url = await cluster.createDatabase();
  await withSql(url, async (holder) => {
    await holder`SELECT pg_advisory_lock(${LOCK_CLASS}, ${MIGRATION_LOCK})`;
    let opened = false;
    const opening = openPostgresStore(url).then((store) => {
      opened = true;
      return store;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [tables] = await holder<{ n: number }[]>`
      SELECT COUNT(*)::integer AS n FROM pg_tables WHERE tablename = 'objects'`;
    assert.equal(tables?.n, 0, "no migration ran while the lock was held");
    assert.equal(opened, false);
    await holder`SELECT pg_advisory_unlock(${LOCK_CLASS}, ${MIGRATION_LOCK})`;
    const store = await opening;
    try {
      assert.equal(await store.schemaVersion(), POSTGRES_MIGRATIONS.at(-1)!.version);
    } finally {
      await store.close();
    }
  });
});

/** The newest schema version this ironmesh knows. */
const LATEST = POSTGRES_MIGRATIONS.at(-1)!.version;

Deno.test("openPostgresStore() refuses a schema newer than it knows", async () => {
  const url = await cluster.createDatabase();
  await (await openPostgresStore(url)).close();
  await withSql(
    url,
    (sql) =>
      sql`INSERT INTO schema_migrations (version, description) VALUES (999, 'from the future')`,
  );
  await assert.rejects(
    openPostgresStore(url),
    (e: unknown) =>
      e instanceof UnavailableError &&
      e.message.startsWith(
        `Database schema version 999 is newer than this ironmesh knows (${LATEST})`,
      ),
  );
});

Deno.test("migrate() applies only what is new, keeping data, and a failed migration changes nothing", async () => {
  const url = await cluster.createDatabase();
  const store = await openPostgresStore(url);
  await store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
  await store.close();
  const next = {
    version: LATEST + 1,
    description: "a column",
    sql: "ALTER TABLE meta ADD COLUMN note text",
  };
  const broken = {
    version: LATEST + 2,
    description: "broken",
    sql: "ALTER TABLE meta ADD COLUMN other text; SELECT no_such_function()",
  };
  await withSql(url, async (sql) => {
    await assert.rejects(migrate(sql, [...POSTGRES_MIGRATIONS, next, broken]), /no_such_function/);
    assert.deepEqual(
      await versions(sql),
      [...POSTGRES_MIGRATIONS.map((m) => m.version), LATEST + 1],
      "the next version stays, the broken one rolled back",
    );
    const columns = await sql<{ column_name: string }[]>`
      SELECT column_name FROM information_schema.columns WHERE table_name = 'meta' ORDER BY 1`;
    assert.deepEqual(columns.map((c) => c.column_name), ["key", "note", "value"]);
    // The lock was released: the next run goes ahead.
    await migrate(sql, [...POSTGRES_MIGRATIONS, next]);
  });
  const reopened = await openPostgresStore(url, { migrate: false });
  try {
    assert.equal(await reopened.schemaVersion(), LATEST + 1);
    assert.equal((await reopened.get("node", "vm-1"))?.name, "vm-1");
  } finally {
    await reopened.close();
  }
});

Deno.test("openPostgresStore() says in words why it cannot reach the database", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    openPostgresStore(`postgres://ironmesh:secret@127.0.0.1:${port}/mesh`),
    (e: unknown) =>
      e instanceof StorageUnavailableError &&
      e.message ===
        `Cannot open the store: PostgreSQL "ironmesh@127.0.0.1:${port}/mesh" refused the connection`,
  );
  await assert.rejects(
    openPostgresStore(cluster.url("no_such_database")),
    (e: unknown) =>
      e instanceof StorageUnavailableError &&
      e.message.startsWith(
        `Cannot open the store: PostgreSQL "postgres@127.0.0.1:${cluster.port}/no_such_database" answered: database "no_such_database" does not exist`,
      ) && !e.message.includes("secret"),
  );
});

Deno.test("a PostgreSQL store answers StorageUnavailableError while the database is down, then recovers", async () => {
  const store = await openPostgresStore(await cluster.createDatabase());
  try {
    await store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-1") }] });
    await cluster.stop();
    try {
      const down = (e: unknown) =>
        e instanceof StorageUnavailableError &&
        /^Cannot [a-z]+ .*: PostgreSQL ".*" /.test(e.message);
      await assert.rejects(store.get("node", "vm-1"), down);
      await assert.rejects(
        store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm-2") }] }),
        down,
      );
      await assert.rejects(store.ping(), down);
    } finally {
      await cluster.start();
    }
    assert.equal((await store.get("node", "vm-1"))?.name, "vm-1", "the pool reconnects");
    assert.equal(await store.get("node", "vm-2"), null, "the refused commit wrote nothing");
  } finally {
    await store.close();
  }
});

Deno.test("a PostgreSQL store refuses text PostgreSQL cannot hold as the caller's mistake", async () => {
  const store = await openPostgresStore(await cluster.createDatabase());
  try {
    await assert.rejects(store.get("node", "vm\u00001"), InvalidError);
    await assert.rejects(
      store.commit({ writes: [{ op: "put", kind: "node", value: sampleNode("vm\u00001") }] }),
      InvalidError,
    );
    assert.equal(await store.revision(), 0);
  } finally {
    await store.close();
  }
});

Deno.test("a closed PostgreSQL store says so", async () => {
  const store = await openPostgresStore(await cluster.createDatabase());
  await store.close();
  await assert.rejects(
    store.revision(),
    (e: unknown) => e instanceof UnavailableError && /the store is closed/.test(e.message),
  );
});
