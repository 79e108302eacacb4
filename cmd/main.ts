/**
 * The `ironmesh` program: one executable for the server, the agent and the
 * client verbs. Each verb lives in its own file and returns a commander
 * `Command`; this file only assembles them and turns errors into exit codes.
 */
import { Command, CommanderError } from "commander";
import { VERSION } from "../core/version.ts";
import { agentCommand } from "./agent.ts";
import { clientCommands } from "./client.ts";
import { serverCommand } from "./server.ts";
import { reportError } from "./output.ts";

function program(): Command {
  const root = new Command("ironmesh")
    .description("Service-mesh control plane for VMs and bare metal")
    .version(VERSION, "--version", "Print the version and exit")
    .showHelpAfterError()
    .exitOverride();
  root.addCommand(serverCommand());
  root.addCommand(agentCommand());
  for (const command of clientCommands()) root.addCommand(command);
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
