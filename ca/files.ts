/**
 * Crash-safe file writes for CA material: a reader (or the next start after a
 * power cut) sees either the old file or the new one, never half of one.
 */
import { dirname } from "node:path";

/** Creates `dir` and its parents with mode 0700 (CA material is private to the server). */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
}

/** Options of {@link writeFileAtomic}. */
export interface WriteOptions {
  /** File mode of the result. Default: 0600. */
  mode?: number;
}

/**
 * Writes `data` to `path` through a temporary file in the same directory,
 * flushed to disk, then renamed over `path`; the directory is flushed too so
 * that the rename itself survives a crash.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
  } finally {
    file.close();
  }
  try {
    // The umask may have narrowed `mode` at creation; set it exactly.
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some filesystems refuse to fsync a directory; the rename is still atomic there.
  }
}

/** The text of `path`, or `undefined` when it does not exist. */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
