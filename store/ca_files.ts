/**
 * The CA's texts as a single server keeps them, as files in its data
 * directory: `DATA_DIR/ca/NAME` for the CA's own (certificates, keys,
 * `state.json`) and `DATA_DIR/token-signing.key` for the join tokens'
 * signing key. Replicas on PostgreSQL keep the same texts as rows under the
 * same names (`ca/` dropped), so moving between stores maps one onto the
 * other name for name and never needs to know what a text means.
 */
import { dirname, join } from "node:path";
import { InvalidError } from "../core/errors.ts";
import type { CaText } from "./postgres_load.ts";

/** The CA's directory inside the data directory. */
export const CA_DIR = "ca";
/** The join tokens' signing key: a file beside `ca/`, a text of that name in the database. */
export const TOKEN_KEY = "token-signing.key";
/** A name in the CA's texts: relative, no `..`, no hidden or temporary files. */
const NAME = /^(?!\.)(?!.*\/\.)(?!.*\.\.)[A-Za-z0-9._/-]+$/;

/** The CA's texts in `dataDir`, by name; none when it has no CA. */
export async function readCaFiles(dataDir: string): Promise<CaText[]> {
  const texts: CaText[] = [];
  const key = await readIfExists(join(dataDir, TOKEN_KEY));
  if (key !== undefined) texts.push({ name: TOKEN_KEY, content: key });
  await walk(join(dataDir, CA_DIR), "", texts);
  return texts.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

async function walk(dir: string, prefix: string, into: CaText[]): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (const entry of entries) {
    // Half-written files of an atomic write (`ca/files.ts`) are not material.
    if (entry.name.includes(".tmp")) continue;
    const name = `${prefix}${entry.name}`;
    if (entry.isDirectory) await walk(join(dir, entry.name), `${name}/`, into);
    else if (entry.isFile) {
      into.push({ name, content: await Deno.readTextFile(join(dir, entry.name)) });
    }
  }
}

/** The file of the text `name` in `dataDir`. */
export function caFileOf(dataDir: string, name: string): string {
  if (!NAME.test(name)) {
    throw new InvalidError(`CA text "${name}" has a name that cannot be a file`);
  }
  return name === TOKEN_KEY ? join(dataDir, TOKEN_KEY) : join(dataDir, CA_DIR, name);
}

/**
 * Writes `texts` into `dataDir` as a single server keeps them: keys mode
 * 0600, everything else 0644, directories 0700. Returns the files written,
 * so a caller can remove them again.
 */
export async function writeCaFiles(dataDir: string, texts: readonly CaText[]): Promise<string[]> {
  const written: string[] = [];
  for (const { name, content } of texts) {
    const path = caFileOf(dataDir, name);
    await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const mode = name.endsWith(".key") ? 0o600 : 0o644;
    await Deno.writeTextFile(path, content, { mode, createNew: true });
    written.push(path);
    await Deno.chmod(path, mode);
  }
  return written;
}

/** The files of a CA already in `dataDir`, for a message; none when it has no CA. */
export async function existingCaFiles(dataDir: string): Promise<string[]> {
  return (await readCaFiles(dataDir)).map((t) => caFileOf(dataDir, t.name));
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
