/**
 * A SQLite store file loaded into an empty PostgreSQL store: the inverse of
 * `postgres_snapshot.ts`, which `ironmesh migrate` and `ironmesh restore
 * --store postgres://…` use.
 *
 * Every table of the SQLite file is copied, whatever it is (a table added
 * by a later migration comes along without a change here), into the
 * PostgreSQL table of the same name, in one transaction: a failure leaves
 * the database as empty as it was. The revisions SQLite keeps in `meta` go
 * to `counters`, and the audit sequence continues after the highest id
 * copied. The CA's texts, which a single server keeps as files, go to the
 * table that holds them on PostgreSQL when the schema has one
 * ({@link CA_TABLE}).
 */
import { DatabaseSync } from "node:sqlite";
import type postgres from "postgres";
import { InvalidError } from "../core/errors.ts";
import { type Contents, kindOfTable, ordered, postgresContents } from "./contents.ts";

/** The PostgreSQL table of the CA's texts shared by replicas: `name`, `content`. */
export const CA_TABLE = "ca_material";
/** The schema's bookkeeping, never copied; nor is SQLite's own (`sqlite_*` tables). */
const SQLITE_ONLY = new Set(["schema_migrations"]);
/** Where PostgreSQL keeps what SQLite keeps in `meta`. */
const META_COUNTERS: Readonly<Record<string, string>> = {
  revision: "registry",
  policy_revision: "policies",
};
/** Rows per INSERT: well below PostgreSQL's 65,535 parameters for our widest table. */
const CHUNK = 500;

/** A text of the CA: its name (`state.json`, `token-signing.key`, …) and content. */
export interface CaText {
  name: string;
  content: string;
}

/** True when the database `sql` reaches has the table of the CA's texts. */
export async function holdsCaTexts(sql: postgres.Sql | postgres.TransactionSql): Promise<boolean> {
  const [row] = await sql<{ found: string | null }[]>`SELECT to_regclass(${CA_TABLE}) AS found`;
  return row?.found != null;
}

/** The CA's texts stored in the database, by name; none when its schema has no such table. */
export async function readCaTexts(sql: postgres.Sql): Promise<CaText[]> {
  if (!await holdsCaTexts(sql)) return [];
  return await sql<CaText[]>`
    SELECT name, content FROM ${sql(CA_TABLE)} ORDER BY name`;
}

/**
 * Copies the SQLite store file at `path` and `caTexts` into the database
 * `sql` reaches, whose schema must be up to date and which must be empty;
 * `target` names it in messages. Throws `InvalidError` naming what the
 * database holds when it is not empty, or a table it lacks; then nothing is
 * written. Returns what was copied.
 */
export async function loadSqliteFile(
  sql: postgres.Sql,
  path: string,
  options: { caTexts: readonly CaText[]; target: string },
): Promise<Contents> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return await sql.begin(async (tx) => {
      const found = await postgresContents(tx);
      if (Object.keys(found).length > 0) {
        throw new InvalidError(
          `Cannot copy into PostgreSQL "${options.target}": it is not empty (it holds ${
            describeContents(found)
          }); give an empty database`,
        );
      }
      const copied: Contents = {};
      const add = (kind: string, n: number) => {
        if (n > 0) copied[kind] = (copied[kind] ?? 0) + n;
      };
      for (const table of sqliteTables(db)) {
        const columns = await targetColumns(tx, db, table, options.target);
        const rows = db.prepare(`SELECT ${columns.map(quote).join(", ")} FROM ${quote(table)}`)
          .all() as Record<string, string | number | null>[];
        const kept = table === "meta"
          ? rows.filter((r) => !(String(r.key) in META_COUNTERS))
          : rows;
        for (let i = 0; i < kept.length; i += CHUNK) {
          await tx`INSERT INTO ${tx(table)} ${tx(kept.slice(i, i + CHUNK), columns)}`;
        }
        for (const row of kept) add(kindOfTable(table, row), 1);
      }
      for (const [key, counter] of Object.entries(META_COUNTERS)) {
        const row = db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as
          | { value: string }
          | undefined;
        await tx`UPDATE counters SET value = ${Number(row?.value ?? 0)} WHERE name = ${counter}`;
      }
      await tx`UPDATE counters SET value = (SELECT COALESCE(MAX(id), 0) FROM audit)
        WHERE name = 'audit'`;
      if (options.caTexts.length > 0) {
        if (!await holdsCaTexts(tx)) {
          throw new InvalidError(
            `Cannot copy the CA into PostgreSQL "${options.target}": its schema keeps no CA material (table "${CA_TABLE}")`,
          );
        }
        for (let i = 0; i < options.caTexts.length; i += CHUNK) {
          const chunk = options.caTexts.slice(i, i + CHUNK).map((t) => ({ ...t }));
          await tx`INSERT INTO ${tx(CA_TABLE)} ${tx(chunk, "name", "content")}`;
        }
        add("CA files", options.caTexts.length);
      }
      return ordered(copied);
    }) as Contents;
  } finally {
    db.close();
  }
}

/** The tables of a SQLite store file worth copying, in name order. */
function sqliteTables(db: DatabaseSync): string[] {
  const rows = db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
  ).all() as { name: string }[];
  return rows.map((r) => r.name).filter((name) =>
    !SQLITE_ONLY.has(name) && !name.startsWith("sqlite_")
  );
}

/** The columns of SQLite's `table`, each checked to exist in PostgreSQL's. */
async function targetColumns(
  tx: postgres.TransactionSql,
  db: DatabaseSync,
  table: string,
  target: string,
): Promise<string[]> {
  const columns = (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as {
    name: string;
  }[]).map((c) => c.name);
  const present = new Set(
    (await tx<{ column_name: string }[]>`
      SELECT column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ${table}`).map((r) => r.column_name),
  );
  const missing = columns.filter((c) => !present.has(c));
  if (missing.length > 0) {
    throw new InvalidError(
      `Cannot copy table "${table}" into PostgreSQL "${target}": its schema lacks ${
        present.size === 0 ? "the table" : `column(s) ${missing.join(", ")}`
      }; is the source newer than this ironmesh?`,
    );
  }
  return columns;
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** `3 services, 1 node, …` for messages: the kinds a store holds, none left out. */
export function describeContents(contents: Contents): string {
  const parts = Object.entries(contents).map(([kind, n]) => `${n} ${kind}`);
  return parts.length > 0 ? parts.join(", ") : "nothing";
}
