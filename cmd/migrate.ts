/**
 * `ironmesh migrate --from STORE --to STORE`: copies everything a store
 * holds (the registry, policies with their history and the audit log,
 * tokens, issued certificates, settings and the CA) into an empty store of
 * the other kind, so a single server can move to PostgreSQL and replicas
 * back to one SQLite server. Run it with the servers stopped.
 *
 * The copy goes through one SQLite file, the format `Store.snapshot()`
 * writes on either backend: the source's consistent snapshot, brought up
 * to this ironmesh's schema, is copied into the target in one transaction
 * (PostgreSQL) or moved into place (SQLite). So the target is either
 * complete or as empty as it was.
 */
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { InvalidError } from "../core/errors.ts";
import { existingCaFiles, readCaFiles, writeCaFiles } from "../store/ca_files.ts";
import { type Contents, ordered, sqliteContents } from "../store/contents.ts";
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from "../store/migrations.ts";
import { isPostgresUrl, openPostgresStore, type PostgresStore } from "../store/postgres.ts";
import { describeContents } from "../store/postgres_load.ts";
import type { CaText } from "../store/postgres_load.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import { DatabaseSync } from "node:sqlite";
import { verb } from "./client_support.ts";

/** The database file of a SQLite data directory. */
const DB_FILE = "ironmesh.db";

/** A store named on the command line. */
type Endpoint =
  | { kind: "sqlite"; file: string; dataDir: string; name: string }
  | { kind: "postgres"; url: string; name: string };

/** The `migrate` verb. */
export function migrateCommand(): Command {
  const command = verb("migrate")
    .description(
      "Copy everything a stopped server's store holds into an empty store of the other kind",
    )
    .requiredOption(
      "--from <store>",
      "Store to copy: sqlite:PATH (the database file, or the data directory holding ironmesh.db) or postgres://USER@HOST:PORT/DATABASE",
    )
    .requiredOption("--to <store>", "Empty store to copy into, named the same way");
  return command.action(async () => {
    const options = command.opts<{ from: string; to: string }>();
    const from = await endpoint(options.from, "--from");
    const to = await endpoint(options.to, "--to");
    if (from.kind === to.kind) {
      throw new InvalidError(
        `Invalid --to "${options.to}": migrate copies between SQLite and PostgreSQL; to copy a ${from.kind} store, use ironmesh backup and restore`,
      );
    }
    const report = await migrate(from, to);
    console.log(`Copied ${from.name} to ${to.name}:`);
    const width = Math.max(0, ...Object.keys(report.copied).map((k) => k.length));
    for (const [kind, n] of Object.entries(report.copied)) {
      console.log(`  ${kind.padEnd(width)}  ${n}`);
    }
    if (report.note) console.log(report.note);
  });
}

/** What a migration copied, and what the operator must still do by hand. */
interface Report {
  copied: Contents;
  note?: string;
}

/** Parses `text`, the value of `flag`, into a store; a SQLite source must exist. */
async function endpoint(text: string, flag: string): Promise<Endpoint> {
  if (text.startsWith("sqlite:")) {
    const path = resolve(text.slice("sqlite:".length).replace(/^\/\/(?=\/)/, ""));
    if (path === resolve("")) {
      throw new InvalidError(`Invalid ${flag} "${text}": sqlite: needs a path`);
    }
    const info = await Deno.stat(path).catch(() => null);
    const isDir = info?.isDirectory || text.endsWith("/") || (!info && !path.endsWith(".db"));
    const file = isDir ? join(path, DB_FILE) : path;
    if (flag === "--from" && !await exists(file)) {
      throw new InvalidError(
        `Invalid --from "${text}": no SQLite store at "${file}" (a server's data directory holds ${DB_FILE})`,
      );
    }
    return { kind: "sqlite", file, dataDir: dirname(file), name: `sqlite:${file}` };
  }
  if (isPostgresUrl(text)) {
    if (!URL.canParse(text)) {
      throw new InvalidError(
        `Invalid ${flag}: not a URL; expected postgres://USER@HOST:PORT/DATABASE`,
      );
    }
    const url = new URL(text);
    const name = `postgres://${url.username ? `${url.username}@` : ""}${url.host}${url.pathname}`;
    return { kind: "postgres", url: text, name };
  }
  throw new InvalidError(
    `Invalid ${flag} "${text}": unknown kind of store; expected sqlite:PATH or postgres://USER@HOST:PORT/DATABASE`,
  );
}

async function migrate(from: Endpoint, to: Endpoint): Promise<Report> {
  const work = await Deno.makeTempDir({ prefix: "ironmesh-migrate-" });
  try {
    // The target first: an unreachable or non-empty one fails before anything is read.
    const target = to.kind === "postgres" ? await openPostgresStore(to.url) : null;
    try {
      if (to.kind === "sqlite") await refuseNonEmptySqlite(to);
      const snapshot = join(work, DB_FILE);
      const caTexts = await takeSnapshot(from, snapshot);
      // Brought up to this ironmesh's schema, as a server opening it would.
      openSqliteStore(snapshot).close();
      const db = new DatabaseSync(snapshot, { readOnly: true });
      const contents = sqliteContents(db);
      db.close();
      if (target) return await copyIntoPostgres(target, snapshot, caTexts, from);
      return await copyIntoSqlite(to as Extract<Endpoint, { kind: "sqlite" }>, snapshot, {
        caTexts,
        contents,
        from,
      });
    } finally {
      await target?.close();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** Writes the source's consistent snapshot to `path`; returns its CA's texts. */
async function takeSnapshot(from: Endpoint, path: string): Promise<CaText[]> {
  if (from.kind === "sqlite") {
    const store = openSqliteStore(from.file, { migrate: false });
    try {
      await checkSchema(from.name, await store.schemaVersion(), SQLITE_MIGRATIONS.at(-1)!.version);
      await store.snapshot(path);
    } finally {
      await store.close();
    }
    return await readCaFiles(from.dataDir);
  }
  const store = await openPostgresStore(from.url, { migrate: false });
  try {
    await checkSchema(
      from.name,
      await store.schemaVersion(),
      POSTGRES_MIGRATIONS.at(-1)!.version,
    );
    await store.snapshot(path);
    return await store.caTexts();
  } finally {
    await store.close();
  }
}

function checkSchema(name: string, version: number, known: number): void {
  if (version === 0) {
    throw new InvalidError(`Invalid --from "${name}": it holds no Ironmesh store`);
  }
  if (version > known) {
    throw new InvalidError(
      `Cannot migrate from "${name}": its schema version ${version} is newer than this ironmesh knows (${known}); run the migration with the newer ironmesh that wrote it`,
    );
  }
}

async function refuseNonEmptySqlite(to: Extract<Endpoint, { kind: "sqlite" }>): Promise<void> {
  const found: string[] = [];
  if (await exists(to.file)) {
    const db = new DatabaseSync(to.file, { readOnly: true });
    try {
      const contents = sqliteContents(db);
      if (Object.keys(contents).length > 0) found.push(describeContents(contents));
    } finally {
      db.close();
    }
  }
  const caFiles = await existingCaFiles(to.dataDir);
  if (caFiles.length > 0) found.push(`the CA files ${caFiles.join(", ")}`);
  if (found.length > 0) {
    throw new InvalidError(
      `Cannot migrate into "${to.name}": it is not empty (it holds ${
        found.join("; ")
      }); give a path where no server has run`,
    );
  }
}

async function copyIntoPostgres(
  target: PostgresStore,
  snapshot: string,
  caTexts: CaText[],
  from: Endpoint,
): Promise<Report> {
  // Until the schema keeps the CA (issue 11 item 5), each replica keeps it in its data directory.
  const keepsCa = await target.holdsCaTexts();
  const copied = await target.loadSqliteFile(snapshot, keepsCa ? caTexts : []);
  if (keepsCa || caTexts.length === 0 || from.kind !== "sqlite") return { copied };
  return {
    copied,
    note:
      `The CA was not copied: this PostgreSQL schema keeps it in each replica's data directory. Copy ${
        join(from.dataDir, "ca")
      } and ${
        join(from.dataDir, "token-signing.key")
      } into every replica's data directory before its first start`,
  };
}

async function copyIntoSqlite(
  to: Extract<Endpoint, { kind: "sqlite" }>,
  snapshot: string,
  options: { caTexts: CaText[]; contents: Contents; from: Endpoint },
): Promise<Report> {
  const created = !await exists(to.dataDir);
  await Deno.mkdir(to.dataDir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  try {
    // An empty store file may be there (an earlier, failed start): it is replaced whole.
    for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(to.file + suffix).catch(() => {});
    await Deno.copyFile(snapshot, `${to.file}.tmp`);
    await Deno.chmod(`${to.file}.tmp`, 0o600);
    await Deno.rename(`${to.file}.tmp`, to.file);
    written.push(to.file);
    written.push(...await writeCaFiles(to.dataDir, options.caTexts));
  } catch (error) {
    for (const file of [`${to.file}.tmp`, ...written]) await Deno.remove(file).catch(() => {});
    if (created) await Deno.remove(to.dataDir, { recursive: true }).catch(() => {});
    throw error;
  }
  const copied = { ...options.contents };
  if (options.caTexts.length > 0) copied["CA files"] = options.caTexts.length;
  const report: Report = { copied: ordered(copied) };
  if (options.caTexts.length === 0 && options.from.kind === "postgres") {
    report.note =
      `No CA was copied: this PostgreSQL schema keeps none (each replica keeps its CA in its data directory). Copy one replica's ca/ and token-signing.key into ${to.dataDir} before the server's first start`;
  }
  return report;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
