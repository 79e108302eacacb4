/** `ironmesh get KIND [NAME]`: lists the objects of a kind, or shows one. */
import { Command, Option } from "commander";
import type { ApiClient } from "../client/api_client.ts";
import { InvalidError, NotFoundError } from "../core/errors.ts";
import * as cli from "./client_support.ts";
import {
  type AnyKindSpec,
  type Filter,
  FILTER_PARAMS,
  FILTERS,
  type KindName,
  kindNamed,
  KINDS,
  table,
} from "./kinds.ts";
import { watchList } from "./watch.ts";

/** The registry kinds whose lists answer blocking queries (every policy kind does too). */
const WATCHABLE: readonly KindName[] = ["services", "instances", "nodes"];

type GetOptions =
  & cli.ConnectionOptions
  & { output: cli.Format; watch?: boolean }
  & {
    [F in Filter]?: string;
  };

/** The `get` verb. */
export function getCommand(): Command {
  const command = cli.verb("get")
    .description("List the objects of a kind, or show one by name")
    .argument(
      "<kind>",
      "services, instances, nodes, proxies, tokens, namespaces, trafficroutes, " +
        "destinationpolicies, authorizationpolicies, ratelimits or meshconfig",
    )
    .argument(
      "[name]",
      "services: NAMESPACE/NAME or NAME (in --namespace); instances: ID (e.g. web@vm-1); " +
        "nodes: NAME; tokens: ID; namespaces: NAME; policies: NAMESPACE/NAME or NAME " +
        "(in --namespace)",
    )
    .addOption(cli.outputOption())
    .addOption(
      new Option(
        "-n, --namespace <namespace>",
        "Only this namespace (services, instances); for a service NAME, its namespace " +
          '(default "default")',
      ).env("IRONMESH_NAMESPACE"),
    )
    .addOption(
      new Option("--service <name>", "Only this service (instances)").env("IRONMESH_GET_SERVICE"),
    )
    .addOption(new Option("--node <name>", "Only this node (instances)").env("IRONMESH_GET_NODE"))
    .addOption(
      new Option("--health <health>", "Only this health (instances)")
        .choices(["healthy", "unhealthy", "draining"]).env("IRONMESH_GET_HEALTH"),
    )
    .addOption(
      new Option("--status <status>", "Only this status (nodes)").choices(["alive", "stale"])
        .env("IRONMESH_GET_STATUS"),
    )
    .addOption(
      new Option(
        "-l, --selector <selector>",
        'Label selector, e.g. "version=v1,env!=prod" (services, instances, nodes)',
      ).env("IRONMESH_GET_SELECTOR"),
    )
    .addOption(
      new Option(
        "-w, --watch",
        "After the list, print each change as it happens (services, instances, nodes, " +
          "policies), until interrupted",
      ),
    );
  cli.addConnectionOptions(command, { serverDefault: true });
  return command.action(async (kindText: string, name: string | undefined) => {
    const options = command.opts<GetOptions>();
    const kind = kindNamed(kindText);
    const spec: AnyKindSpec = KINDS[kind];
    const allowed: readonly Filter[] = name === undefined
      ? spec.filters
      : kind === "services" || spec.path.startsWith("/v1/policies/")
      ? ["namespace"]
      : [];
    const query: Record<string, string> = {};
    for (const filter of FILTERS) {
      const value = options[filter];
      if (value === undefined) continue;
      if (!allowed.includes(filter)) {
        // A filter exported in the environment applies where it can and is ignored elsewhere.
        if (command.getOptionValueSource(filter) !== "cli") continue;
        throw new InvalidError(
          name === undefined
            ? `Option "--${filter}" does not apply to ${kind}`
            : `Option "--${filter}" cannot be combined with a name`,
        );
      }
      query[FILTER_PARAMS[filter]] = value;
    }
    if (options.watch) {
      if (name !== undefined) {
        throw new InvalidError(
          `Option "--watch" watches a list: leave out NAME "${name}" and filter instead`,
        );
      }
      if (!WATCHABLE.includes(kind) && !spec.path.startsWith("/v1/policies/")) {
        throw new InvalidError(
          `Option "--watch" does not apply to ${kind}: only to services, instances, nodes ` +
            "and policies",
        );
      }
      await cli.withClient(
        command,
        (client) => watchList(client, spec, { query, format: options.output }),
      );
      return;
    }
    await cli.withClient(command, async (client) => {
      if (name === undefined) {
        const items = await client.list<Record<string, unknown>>(spec.path, query);
        cli.print(options.output, { items }, table(spec, items, options.output));
        return;
      }
      const item = spec.itemPath
        ? await client.request<Record<string, unknown>>(
          "GET",
          spec.itemPath(name, options.namespace),
        )
        : await findByKey(client, spec, kind, name);
      cli.print(options.output, item, table(spec, [item], options.output));
    });
  });
}

async function findByKey(
  client: ApiClient,
  spec: AnyKindSpec,
  kind: KindName,
  name: string,
): Promise<Record<string, unknown>> {
  const items = await client.list<Record<string, unknown>>(spec.path);
  const found = items.find((item) => (spec.key as (i: unknown) => unknown)(item) === name);
  if (found === undefined) {
    const what = kind === "proxies" ? "proxy" : kind.replace(/s$/, "");
    throw new NotFoundError(`${what[0]?.toUpperCase()}${what.slice(1)} "${name}" not found`);
  }
  return found;
}
