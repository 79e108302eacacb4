import { DatabaseSync } from "node:sqlite";
import { z } from "zod";
import { InvalidError } from "../core/errors.ts";
import { VERSION } from "../core/version.ts";
import { CA_DIR, TOKEN_KEY } from "./ca_files.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import type { Store } from "./store.ts";

/**
 * Backups: one gzip-compressed JSON archive holding a consistent snapshot of
 * the database and the data directory's key material (the CA directory and
 * the join-token signing key). Keys go in exactly as they are on disk, so a
 * CA encrypted at rest stays encrypted in the backup. The archive is a
 * secret all the same: it is written with mode 0600.
 */

const DB_FILE = "ironmesh.db";
/** Data-directory entries copied besides the database. */
const KEY_MATERIAL = [CA_DIR, TOKEN_KEY];

const archiveSchema = z.strictObject({
  format: z.literal("ironmesh-backup"),
  version: z.literal(1),
  createdAt: z.string(),
  serverVersion: z.string(),
  schemaVersion: z.number().int(),
  revision: z.number().int(),
  files: z.array(z.strictObject({
    path: z.string().regex(/^(?!\/)(?!.*\.\.)[A-Za-z0-9._/-]+$/, "Must be a relative path"),
    mode: z.number().int(),
    data: z.string(),
  })),
});
/** A decoded backup archive. */
export type BackupArchive = z.infer<typeof archiveSchema>;

/** Takes an online backup of the server's state; returns the compressed archive. */
export async function createBackup(store: Store, dataDir: string): Promise<Uint8Array> {
  const tmp = await Deno.makeTempDir({ prefix: "ironmesh-backup-" });
  try {
    const revision = await store.revision();
    await store.snapshot(`${tmp}/${DB_FILE}`);
    // The snapshot's own version: a PostgreSQL store's snapshot is a SQLite file at SQLite's.
    const schemaVersion = sqliteSchemaVersion(`${tmp}/${DB_FILE}`);
    const files: BackupArchive["files"] = [{
      path: DB_FILE,
      mode: 0o600,
      data: base64(await Deno.readFile(`${tmp}/${DB_FILE}`)),
    }];
    for (const entry of KEY_MATERIAL) files.push(...await collect(dataDir, entry));
    const archive: BackupArchive = {
      format: "ironmesh-backup",
      version: 1,
      createdAt: new Date().toISOString(),
      serverVersion: VERSION,
      schemaVersion,
      revision,
      files,
    };
    return await gzip(new TextEncoder().encode(JSON.stringify(archive)));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

function sqliteSchemaVersion(path: string): number {
  const db = new DatabaseSync(path);
  try {
    const row = db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as {
      v: number | null;
    };
    return row.v ?? 0;
  } finally {
    db.close();
  }
}

async function collect(root: string, relative: string): Promise<BackupArchive["files"]> {
  const path = `${root}/${relative}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  if (info.isFile) {
    return [{
      path: relative,
      mode: (info.mode ?? 0o600) & 0o777,
      data: base64(await Deno.readFile(path)),
    }];
  }
  const files: BackupArchive["files"] = [];
  for await (const entry of Deno.readDir(path)) {
    if (entry.name.endsWith(".tmp")) continue;
    files.push(...await collect(root, `${relative}/${entry.name}`));
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** Decodes and checks an archive; every problem is an `InvalidError` naming the file. */
export async function readBackup(bytes: Uint8Array, file: string): Promise<BackupArchive> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await gunzip(bytes)));
  } catch {
    throw new InvalidError(`"${file}" is not an Ironmesh backup (not gzip-compressed JSON)`);
  }
  const parsed = archiveSchema.safeParse(json);
  if (!parsed.success) {
    throw new InvalidError(
      `"${file}" is not an Ironmesh backup: ${parsed.error.issues[0]?.message}`,
    );
  }
  const known = SQLITE_MIGRATIONS.at(-1)!.version;
  if (parsed.data.schemaVersion > known) {
    throw new InvalidError(
      `Backup "${file}" has schema version ${parsed.data.schemaVersion}, newer than this ironmesh knows (${known}): restore it with ironmesh ${parsed.data.serverVersion} or newer`,
    );
  }
  return parsed.data;
}

/**
 * Restores an archive into `dataDir`, which must be empty or absent, so a
 * restore never mixes two servers' state. The restored database is checked
 * with `PRAGMA integrity_check` before the restore counts as done.
 */
export async function restoreBackup(archive: BackupArchive, dataDir: string): Promise<void> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  for await (const entry of Deno.readDir(dataDir)) {
    throw new InvalidError(
      `Data directory "${dataDir}" is not empty (it holds "${entry.name}"): restore into an empty directory`,
    );
  }
  for (const file of archive.files) {
    const target = `${dataDir}/${file.path}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    await Deno.writeFile(target, unbase64(file.data), { mode: file.mode });
    await Deno.chmod(target, file.mode);
  }
  const db = new DatabaseSync(`${dataDir}/${DB_FILE}`);
  try {
    const result = db.prepare("PRAGMA integrity_check").get() as { integrity_check: string };
    if (result.integrity_check !== "ok") {
      throw new InvalidError(
        `The restored database fails its integrity check: ${result.integrity_check}`,
      );
    }
  } finally {
    db.close();
  }
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function unbase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
