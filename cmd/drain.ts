/**
 * `ironmesh drain KIND NAME` and `ironmesh undrain KIND NAME`: take a node (all its instances) or
 * one instance out of traffic and put it back, as `PATCH /v1/nodes/{name}` and
 * `PATCH /v1/instances/{id}` do. The object stays registered; its instances turn `draining`.
 */
import type { Command } from "commander";
import {
  addConnectionOptions,
  type ConnectionOptions,
  type Format,
  outputOption,
  print,
  verb,
  withClient,
} from "./client_support.ts";
import { kindNamed, KINDS, table } from "./kinds.ts";

/** The kinds that drain. */
export const DRAINABLE = ["nodes", "instances"] as const;

/** The `drain` and `undrain` verbs. */
export function drainCommands(): Command[] {
  return [drainVerb("drain", true), drainVerb("undrain", false)];
}

function drainVerb(name: "drain" | "undrain", draining: boolean): Command {
  const command = verb(name)
    .description(
      draining
        ? "Take a node (all its instances) or one instance out of traffic; it stays registered"
        : "Put a drained node or instance back into traffic",
    )
    .argument("<kind>", "node or instance")
    .argument("<name>", "a node name, or an instance id (e.g. web@vm-1)")
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async (kindText: string, id: string) => {
    const kind = kindNamed(kindText, DRAINABLE);
    const spec = KINDS[kind];
    const { output } = command.opts<ConnectionOptions & { output: Format }>();
    await withClient(command, async (client) => {
      const item = await client.request<Record<string, unknown>>(
        "PATCH",
        spec.itemPath(id),
        { body: { draining } },
      );
      print(output, item, table(spec, [item], output));
    });
  });
}
