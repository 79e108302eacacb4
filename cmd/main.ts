/**
 * The `ironmesh` program: one executable for the server, the agent and the
 * client verbs. Each verb lives in its own file and returns a commander
 * `Command`; this file only assembles them and turns errors into exit codes.
 */
import { Command, CommanderError } from "commander";
import { VERSION } from "../core/version.ts";
import { reportError } from "./output.ts";

/**
 * Where each verb lives, loaded only when it runs: the server and the agent pull in gRPC, the
 * CA and the store, and a client verb that loaded them all would take three times as long
 * (docs/benchmarks.md, "CLI round trip"). The name is the verb's own, as its file declares it;
 * `main_test.ts` checks that they agree.
 */
export const VERBS: Readonly<Record<string, () => Promise<Command[]>>> = {
  server: async () => [(await import("./server.ts")).serverCommand()],
  agent: async () => [(await import("./agent.ts")).agentCommand()],
  get: async () => [(await import("./get.ts")).getCommand()],
  token: async () => [(await import("./token.ts")).tokenCommand()],
  ca: async () => [(await import("./ca.ts")).caCommand()],
  backup: async () => [(await import("./backup.ts")).backupCommand()],
  restore: async () => [(await import("./backup.ts")).restoreCommand()],
  migrate: async () => [(await import("./migrate.ts")).migrateCommand()],
  apply: policyVerb("apply"),
  delete: policyVerb("delete"),
  rollback: policyVerb("rollback"),
  history: policyVerb("history"),
  explain: policyVerb("explain"),
  audit: policyVerb("audit"),
  drain: async () => (await import("./drain.ts")).drainCommands().slice(0, 1),
  undrain: async () => (await import("./drain.ts")).drainCommands().slice(1),
  completion: async () => [
    (await import("./completion.ts")).completionCommand(() => program([])),
  ],
  version: async () => [(await import("./version.ts")).versionCommand()],
};

function policyVerb(name: string): () => Promise<Command[]> {
  return async () =>
    (await import("./policy.ts")).policyCommands().filter((c) => c.name() === name);
}

/**
 * The program with the verb `args` names, or with every verb when they name none (help, a
 * typo that gets a did-you-mean, `--version`).
 */
export async function program(args: readonly string[]): Promise<Command> {
  const root = new Command("ironmesh")
    .description("Service-mesh control plane for VMs and bare metal")
    .version(VERSION, "--version", "Print the version and exit")
    .showHelpAfterError()
    .exitOverride();
  const first = args[0];
  const loaders = first !== undefined && Object.hasOwn(VERBS, first)
    ? [VERBS[first]!]
    : Object.values(VERBS);
  for (const load of loaders) {
    for (const verb of await load()) root.addCommand(verb);
  }
  return root;
}

async function main(args: string[]): Promise<number> {
  try {
    await (await program(args)).parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    return reportError(error);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
