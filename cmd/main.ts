/**
 * The `ironmesh` program: one executable for the server, the agent and the
 * client verbs. Each verb lives in its own file and returns a commander
 * `Command`; this file only assembles them and turns errors into exit codes.
 */
import { Command, CommanderError } from "commander";
import { VERSION } from "../core/version.ts";
import { agentCommand } from "./agent.ts";
import { backupCommand, restoreCommand } from "./backup.ts";
import { caCommand } from "./ca.ts";
import { getCommand } from "./get.ts";
import { reportError } from "./output.ts";
import { policyCommands } from "./policy.ts";
import { serverCommand } from "./server.ts";
import { tokenCommand } from "./token.ts";
import { versionCommand } from "./version.ts";

function program(): Command {
  const root = new Command("ironmesh")
    .description("Service-mesh control plane for VMs and bare metal")
    .version(VERSION, "--version", "Print the version and exit")
    .showHelpAfterError()
    .exitOverride();
  const verbs = [
    serverCommand(),
    agentCommand(),
    getCommand(),
    tokenCommand(),
    caCommand(),
    backupCommand(),
    restoreCommand(),
    ...policyCommands(),
    versionCommand(),
  ];
  for (const verb of verbs) root.addCommand(verb);
  return root;
}

async function main(args: string[]): Promise<number> {
  try {
    await program().parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    return reportError(error);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
