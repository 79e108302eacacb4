/**
 * `ironmesh backup` and `ironmesh restore`: an online backup taken from a
 * running server, and its restore into an empty data directory. One file for
 * both: each is the other's inverse over the archive format of
 * `store/backup.ts`.
 */
import { Option } from "commander";
import type { Command } from "commander";
import { InvalidError } from "../core/errors.ts";
import { readBackup, restoreBackup } from "../store/backup.ts";
import { addConnectionOptions, verb, withClient } from "./client_support.ts";

/** The `backup` verb. */
export function backupCommand(): Command {
  const command = verb("backup")
    .description(
      "Take a consistent online backup (database and CA material) from a running server",
    )
    .requiredOption("--out <file>", "Where to write the archive (mode 0600; never overwritten)");
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const { out } = command.opts<{ out: string }>();
    const archive = await withClient(command, (client) => client.download("/v1/backup"));
    // Decode before writing, so a truncated or foreign answer never becomes a "backup".
    const checked = await readBackup(archive, out);
    try {
      await Deno.writeFile(out, archive, { mode: 0o600, createNew: true });
    } catch (error) {
      throw new InvalidError(`Cannot write backup "${out}": ${(error as Error).message}`);
    }
    console.log(
      `Backup written to ${out}: revision ${checked.revision}, ${checked.files.length} files, ${archive.length} bytes`,
    );
  });
}

/** The `restore` verb. */
export function restoreCommand(): Command {
  const command = verb("restore")
    .description(
      "Restore a backup into an empty data directory (the server must not be running on it)",
    )
    .argument("<file>", "Archive written by ironmesh backup")
    .addOption(
      new Option("--data-dir <dir>", "Empty data directory to restore into").env(
        "IRONMESH_DATA_DIR",
      )
        .makeOptionMandatory(),
    );
  return command.action(async (file: string) => {
    const { dataDir } = command.opts<{ dataDir: string }>();
    const bytes = await Deno.readFile(file).catch((error) => {
      throw new InvalidError(`Cannot read backup "${file}": ${error.message}`);
    });
    const archive = await readBackup(bytes, file);
    await restoreBackup(archive, dataDir);
    console.log(
      `Restored ${file} (revision ${archive.revision}, taken ${archive.createdAt}) into ${dataDir}`,
    );
  });
}
