/** `ironmesh ca status|rotate`: the mesh CA's rotation stage, and starting a root rotation. */
import type { Command } from "commander";
import * as cli from "./client_support.ts";

/** The `ca` verb and its subcommands. */
export function caCommand(): Command {
  return cli.verb("ca")
    .description("The mesh certificate authority: status and root rotation")
    .addCommand(caStatusCommand())
    .addCommand(caRotateCommand());
}

function caStatusCommand(): Command {
  const command = cli.verb("status")
    .description(
      "Show the rotation stage, the roots' fingerprints and how many leaves chain to each root",
    )
    .addOption(cli.outputOption());
  cli.addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const { output } = command.opts<{ output: cli.Format }>();
    const status = await cli.withClient(
      command,
      (client) => client.request<CaStatus>("GET", "/v1/ca/status"),
    );
    cli.print(output, status, caStatusText(status));
  });
}

function caRotateCommand(): Command {
  const command = cli.verb("rotate")
    .description(
      "Start a staged root rotation: publish a new root, switch signing once every live node trusts it, retire the old root once every live leaf is reissued",
    );
  cli.addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const status = await cli.withClient(
      command,
      (client) => client.request<CaStatus>("POST", "/v1/ca/rotation"),
    );
    console.log(caStatusText(status));
  });
}

interface CaStatus {
  stage: string;
  signingRoot: string;
  generations: { id: number; stage: string; rootFingerprint: string; rootNotAfter: string }[];
  leaves: number;
  leavesByRoot: Record<string, number>;
  leavesOnOtherRoots: number;
  nodesAwaitingBundle: string[];
}

function caStatusText(status: CaStatus): string {
  const rows = status.generations.filter((g) => g.stage !== "retired").map((g) => [
    String(g.id),
    g.stage,
    g.rootFingerprint,
    g.rootNotAfter,
    String(status.leavesByRoot[g.rootFingerprint] ?? 0),
  ]);
  const lines = [
    `Stage:                 ${status.stage}`,
    `Live leaves:           ${status.leaves} (${status.leavesOnOtherRoots} not yet on the signing root)`,
    `Nodes awaiting bundle: ${
      status.nodesAwaitingBundle.length ? status.nodesAwaitingBundle.join(", ") : "none"
    }`,
    "",
    cli.formatTable(["GEN", "STAGE", "ROOT SHA-256", "ROOT EXPIRES", "LEAVES"], rows),
  ];
  return lines.join("\n");
}
