/** `ironmesh token create|list|revoke`: API tokens and join tokens. */
import { Command, Option } from "commander";
import { ServerError } from "../client/api_client.ts";
import { parseDuration } from "../core/duration.ts";
import { systemClock } from "../core/clock.ts";
import { InvalidError } from "../core/errors.ts";
import { decodeJoinToken } from "../core/join_token.ts";
import { ROLES } from "../core/model.ts";
import {
  addConnectionOptions,
  type ConnectionOptions,
  type Format,
  outputOption,
  print,
  verb,
  withClient,
} from "./client_support.ts";
import { installLine, pinnedRootLines } from "./install_line.ts";
import { KINDS, table } from "./kinds.ts";

interface TokenCreateOptions extends ConnectionOptions {
  kind: "api" | "join";
  role?: string;
  node?: string;
  ttl?: string;
  description?: string;
  namespace?: string;
  serviceAccount?: string;
  uses?: string;
  printInstall?: boolean;
}

/** The `token` verb and its subcommands. */
export function tokenCommand(): Command {
  return verb("token")
    .description("Create, list and revoke API tokens and join tokens")
    .addCommand(tokenCreateCommand())
    .addCommand(tokenListCommand())
    .addCommand(tokenRevokeCommand());
}

function tokenCreateCommand(): Command {
  const command = verb("create")
    .description(
      "Create a token and print only its secret on stdout, for T=$(ironmesh token create …)",
    )
    .addOption(
      new Option("--kind <kind>", "Kind of token").choices(["api", "join"]).default("api")
        .env("IRONMESH_TOKEN_KIND"),
    )
    .addOption(
      new Option("--role <role>", "Role of an API token (required for --kind api)").choices(ROLES)
        .env("IRONMESH_TOKEN_ROLE"),
    )
    .addOption(
      new Option(
        "--node <name>",
        "The only node the token may register (agent API tokens) or enrol (join tokens)",
      ).env("IRONMESH_TOKEN_NODE"),
    )
    .addOption(
      new Option(
        "--ttl <duration>",
        'Lifetime, e.g. "24h" (default: no expiry for API tokens, 1h for join tokens)',
      ).env("IRONMESH_TOKEN_TTL"),
    )
    .addOption(
      new Option("--namespace <ns>", 'Join tokens: namespace of the identity (default: "default")')
        .env("IRONMESH_TOKEN_NAMESPACE"),
    )
    .addOption(
      new Option(
        "--service-account <sa>",
        "Join tokens: service account of the identity (required)",
      )
        .env("IRONMESH_TOKEN_SERVICE_ACCOUNT"),
    )
    .addOption(
      new Option("--uses <n>", "Join tokens: how many hosts may enrol with it (default: 1)")
        .env("IRONMESH_TOKEN_USES"),
    )
    .addOption(
      new Option("--description <text>", "What the token is for").env("IRONMESH_TOKEN_DESCRIPTION"),
    )
    .addOption(
      new Option(
        "--print-install",
        "Join tokens: print the line that installs an agent with it from this server, trusting only the root the token pins",
      ).env("IRONMESH_TOKEN_PRINT_INSTALL"),
    );
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const options = command.opts<TokenCreateOptions>();
    if (options.ttl !== undefined && parseDuration(options.ttl) === undefined) {
      throw new InvalidError(
        `Invalid TTL "${options.ttl}": expected a duration such as "24h" or "90m"`,
      );
    }
    const common = {
      ...(options.node === undefined ? {} : { node: options.node }),
      ...(options.description === undefined ? {} : { description: options.description }),
      ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
    };
    if (options.printInstall && options.kind !== "join") {
      throw new InvalidError('Option "--print-install" goes with "--kind join"');
    }
    let body: Record<string, unknown>;
    if (options.kind === "join") {
      if (options.serviceAccount === undefined) {
        throw new InvalidError('Option "--service-account" is required for join tokens');
      }
      const uses = options.uses === undefined ? 1 : Number(options.uses);
      if (!Number.isInteger(uses) || uses < 1) {
        throw new InvalidError(`Invalid --uses "${options.uses}": expected a whole number from 1`);
      }
      body = {
        kind: "join",
        serviceAccount: options.serviceAccount,
        uses,
        ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        ...common,
      };
    } else {
      if (options.role === undefined) {
        throw new InvalidError(
          `Option "--role" is required for API tokens: one of ${
            ROLES.map((r) => `"${r}"`).join(", ")
          }`,
        );
      }
      body = { kind: "api", role: options.role, ...common };
    }
    const printed = await withClient(command, async (client) => {
      const created = await client.request<{ token?: unknown }>("POST", "/v1/tokens", { body });
      if (typeof created?.token !== "string") {
        throw new ServerError(`The server's answer to "POST /v1/tokens" holds no token`, 201);
      }
      if (!options.printInstall) return created.token;
      const claims = decodeJoinToken(created.token, systemClock);
      const server = claims.srv[0];
      if (server === undefined) {
        throw new InvalidError(
          "The join token names no server URL: start the server with --advertise https://HOST:PORT",
        );
      }
      const roots = await client.request<{ roots?: { pem?: unknown }[] }>("GET", "/v1/ca/roots");
      const pems = (roots?.roots ?? []).flatMap((r) => typeof r.pem === "string" ? [r.pem] : []);
      const rootPem = await pinnedRootLines(claims, pems);
      return installLine({ token: created.token, server, rootPem });
    });
    console.log(printed);
  });
}

function tokenListCommand(): Command {
  const command = verb("list")
    .description("List API tokens (never their secrets)")
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const { output } = command.opts<{ output: Format }>();
    await withClient(command, async (client) => {
      const items = await client.list<Record<string, unknown>>(KINDS.tokens.path);
      print(output, { items }, table(KINDS.tokens, items, output));
    });
  });
}

function tokenRevokeCommand(): Command {
  const command = verb("revoke")
    .description("Revoke an API token; requests with it fail from then on")
    .argument("<id>", "Id of the token, as `ironmesh token list` shows it");
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async (id: string) => {
    await withClient(
      command,
      (client) => client.request("DELETE", `/v1/tokens/${encodeURIComponent(id)}`),
    );
    console.log(`Token "${id}" revoked`);
  });
}
