/**
 * One server per data directory (issue 14 item 1). Two servers on one directory would write the
 * same SQLite file and CA and each other's `server.json`; the second refuses to start instead.
 * The lock is an exclusive `flock` on `server.lock`, held for the process's life: the kernel
 * releases it when the process ends, crash or not, so there is no stale lock to clean up.
 */
import {
  ConflictError,
  MeshError,
  StorageUnavailableError,
  UnavailableError,
} from "../core/errors.ts";

/** The lock file inside the data directory; it also names the holder's pid, for the message. */
export const LOCK_FILE = "server.lock";

/** A data directory this process holds; {@link release} lets it go (the process's end does too). */
export interface DataDirClaim {
  release(): void;
}

/**
 * Creates `dir` (0700) if needed and takes its lock. Fails with the path and the reason when the
 * directory cannot be created or written, and with the holder's pid when another server has it.
 */
export async function claimDataDir(dir: string): Promise<DataDirClaim> {
  const path = `${dir}/${LOCK_FILE}`;
  let file: Deno.FsFile;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (error) {
    throw new UnavailableError(
      `Cannot use data directory "${dir}": ${(error as Error).message}`,
    );
  }
  if (!await file.tryLock(true)) {
    const holder = (await Deno.readTextFile(path).catch(() => "")).trim();
    file.close();
    throw new ConflictError(
      `Data directory "${dir}" is in use by another Ironmesh server${
        /^\d+$/.test(holder) ? ` (pid ${holder})` : ""
      }: stop it, or give this one its own --data-dir`,
    );
  }
  try {
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  } catch (error) {
    file.close();
    throw new UnavailableError(`Cannot write "${path}": ${(error as Error).message}`);
  }
  return { release: () => file.close() };
}

/** The file-system failures that mean the data directory cannot be written: the disk's doing. */
const STORAGE_CODES = new Set(["EROFS", "ENOSPC", "EDQUOT", "EIO", "EACCES", "EPERM"]);

/**
 * The error a start reports when writing a file in `dir` failed (a full disk, a read-only mount):
 * a `StorageUnavailableError` with the directory and Deno's message, which names the file, so
 * the server exits 1 with a sentence instead of 2 with a stack trace. Other errors pass through.
 */
export function dataDirError(error: unknown, dir: string): unknown {
  if (error instanceof MeshError || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !STORAGE_CODES.has(code)) return error;
  return new StorageUnavailableError(`Cannot write data directory "${dir}": ${error.message}`, {
    cause: error,
  });
}
