/**
 * The client verbs of `ironmesh`: `get`, `token`, `ca`, `backup`, `restore`
 * and `version`, plus the policy verbs of `policy.ts`. They talk to
 * a running server over the REST API through {@link ApiClient}; every flag
 * also reads an `IRONMESH_*` environment variable, so scripts and CI can set
 * the server and token once.
 */
import { Command, Option } from "commander";
import { ApiClient, ServerError } from "../client/api_client.ts";
import { parseDuration } from "../core/duration.ts";
import { InvalidError, NotFoundError } from "../core/errors.ts";
import type { ApiToken, Instance, MeshNode, Service, Token } from "../core/model.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import { ROLES } from "../core/model.ts";
import {
  addConnectionOptions,
  type ConnectionOptions,
  type Format,
  FORMATS,
  formatTable,
  print,
  verb,
  withClient,
} from "./client_support.ts";
import { policyCommands, policyPath } from "./policy.ts";
import type { AnyPolicy, PolicyKind } from "../core/policy/model.ts";
import { VERSION } from "../core/version.ts";
import { readBackup, restoreBackup } from "../store/backup.ts";

/** The client verbs, for `cmd/main.ts` to add to the root command. */
export function clientCommands(): Command[] {
  return [
    getCommand(),
    tokenCommand(),
    caCommand(),
    backupCommand(),
    restoreCommand(),
    ...policyCommands(),
    versionCommand(),
  ];
}

// --- get ---------------------------------------------------------------------

const FILTERS = ["namespace", "service", "node", "health", "status", "selector"] as const;
type Filter = typeof FILTERS[number];

/** The query parameter of each filter flag. */
const FILTER_PARAMS: Record<Filter, string> = {
  namespace: "namespace",
  service: "service",
  node: "node",
  health: "health",
  status: "status",
  selector: "labelSelector",
};

/** How one kind is listed, fetched by name and shown as a table. */
interface KindSpec<T> {
  path: string;
  filters: readonly Filter[];
  /** The path of one object; without it, `get KIND NAME` picks the object out of the list. */
  itemPath?: (name: string, namespace: string | undefined) => string;
  key: (item: Partial<T>) => string | undefined;
  columns: readonly string[];
  row: (item: Partial<T>) => unknown[];
}

type AnyKindSpec =
  | KindSpec<Service>
  | KindSpec<Instance>
  | KindSpec<MeshNode>
  | KindSpec<Token>
  | KindSpec<ProxyStatus>
  | KindSpec<NamespaceSummary>
  | KindSpec<AnyPolicy>;

/** How a policy kind is listed and fetched. */
function policySpec(kind: PolicyKind): KindSpec<AnyPolicy> {
  const segment = kind.toLowerCase();
  return {
    path: `/v1/policies/${segment}`,
    filters: kind === "MeshConfig" ? [] : ["namespace"],
    itemPath: (name, namespace) => policyPath(segment, name, namespace),
    key: (p) => `${p.metadata?.namespace}/${p.metadata?.name}`,
    columns: ["NAMESPACE", "NAME", "SERVICE", "REVISION", "UPDATED", "BY"],
    row: (p) => [
      p.metadata?.namespace,
      p.metadata?.name,
      p.spec && "service" in p.spec ? p.spec.service : null,
      p.metadata?.revision,
      p.metadata?.updatedAt,
      p.metadata?.updatedBy,
    ],
  };
}

interface NamespaceSummary {
  name: string;
  services: number;
}

const KINDS = {
  services: {
    path: "/v1/services",
    filters: ["namespace", "selector"],
    itemPath: servicePath,
    key: (s) => `${s.namespace}/${s.name}`,
    columns: ["NAMESPACE", "NAME", "PORTS", "LABELS"],
    row: (s) => [
      s.namespace,
      s.name,
      (s.ports ?? []).map((p) => `${p.port}/${p.protocol}`).join(","),
      formatLabels(s.labels),
    ],
  } satisfies KindSpec<Service>,
  instances: {
    path: "/v1/instances",
    filters: ["namespace", "service", "node", "health", "selector"],
    itemPath: (id) => `/v1/instances/${encodeURIComponent(id)}`,
    key: (i) => i.id,
    columns: ["ID", "SERVICE", "NAMESPACE", "NODE", "ADDRESS", "PORT", "HEALTH"],
    row: (i) => [i.id, i.service, i.namespace, i.node, i.address, i.port, i.health],
  } satisfies KindSpec<Instance>,
  nodes: {
    path: "/v1/nodes",
    filters: ["status", "selector"],
    itemPath: (name) => `/v1/nodes/${encodeURIComponent(name)}`,
    key: (n) => n.name,
    columns: ["NAME", "STATUS", "DRAINING", "ADDRESSES", "LAST-HEARTBEAT"],
    row: (n) => [n.name, n.status, n.draining, (n.addresses ?? []).join(","), n.lastHeartbeat],
  } satisfies KindSpec<MeshNode>,
  tokens: {
    path: "/v1/tokens",
    filters: [],
    itemPath: (id) => `/v1/tokens/${encodeURIComponent(id)}`,
    key: (t) => t.id,
    columns: ["ID", "KIND", "GRANTS", "NODE", "USES", "EXPIRES", "REVOKED", "DESCRIPTION"],
    row: (t) => [
      t.id,
      t.kind,
      t.kind === "join"
        ? `ns/${t.namespace}/sa/${t.serviceAccount}`
        : (t as Partial<ApiToken>).role,
      t.node,
      t.kind === "join" ? `${t.used}/${t.uses}` : null,
      t.expiresAt ?? "never",
      t.revokedAt,
      t.description,
    ],
  } satisfies KindSpec<Token>,
  proxies: {
    path: "/v1/proxies",
    filters: [],
    key: (p) => p.id,
    columns: ["ID", "NODE", "KIND", "IDENTITY", "SYNCED", "NACK", "CONNECTED"],
    row: (p) => [
      p.id,
      p.node,
      p.kind,
      p.identity,
      `${(p.types ?? []).filter((t) => t.inSync).length}/${(p.types ?? []).length}`,
      (p.types ?? []).find((t) => t.lastNack)?.lastNack?.message ?? null,
      p.connectedAt,
    ],
  } satisfies KindSpec<ProxyStatus>,
  namespaces: {
    path: "/v1/namespaces",
    filters: [],
    key: (n) => n.name,
    columns: ["NAME", "SERVICES"],
    row: (n) => [n.name, n.services],
  } satisfies KindSpec<NamespaceSummary>,
  trafficroutes: policySpec("TrafficRoute"),
  destinationpolicies: policySpec("DestinationPolicy"),
  authorizationpolicies: policySpec("AuthorizationPolicy"),
  ratelimits: policySpec("RateLimit"),
  meshconfig: policySpec("MeshConfig"),
} as const;
type KindName = keyof typeof KINDS;

/** Singular and short spellings people type out of habit from kubectl. */
const KIND_ALIASES: Record<string, KindName> = {
  service: "services",
  svc: "services",
  proxy: "proxies",
  instance: "instances",
  node: "nodes",
  token: "tokens",
  namespace: "namespaces",
  ns: "namespaces",
  trafficroute: "trafficroutes",
  tr: "trafficroutes",
  destinationpolicy: "destinationpolicies",
  dp: "destinationpolicies",
  authorizationpolicy: "authorizationpolicies",
  ap: "authorizationpolicies",
  ratelimit: "ratelimits",
  rl: "ratelimits",
  meshconfigs: "meshconfig",
};

function kindNamed(text: string): KindName {
  const kind = Object.hasOwn(KINDS, text) ? text as KindName : KIND_ALIASES[text];
  if (kind === undefined) {
    throw new InvalidError(
      `Unknown kind "${text}": expected one of ${
        Object.keys(KINDS).map((k) => `"${k}"`).join(", ")
      }`,
    );
  }
  return kind;
}

/** `namespace/name`, or `name` in `namespace` (default `default`). */
function servicePath(name: string, namespace: string | undefined): string {
  const slash = name.indexOf("/");
  let ns = namespace ?? "default";
  let service = name;
  if (slash >= 0) {
    ns = name.slice(0, slash);
    service = name.slice(slash + 1);
    if (namespace !== undefined && namespace !== ns) {
      throw new InvalidError(
        `Service "${name}" names namespace "${ns}" but --namespace is "${namespace}"`,
      );
    }
  }
  return `/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(service)}`;
}

type GetOptions = ConnectionOptions & { output: Format } & { [F in Filter]?: string };

function getCommand(): Command {
  const command = verb("get")
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
    .addOption(
      new Option("-o, --output <format>", "Output format").choices(FORMATS).default("table")
        .env("IRONMESH_OUTPUT"),
    )
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
    );
  addConnectionOptions(command, { serverDefault: true });
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
    await withClient(command, async (client) => {
      if (name === undefined) {
        const items = await client.list<Record<string, unknown>>(spec.path, query);
        print(options.output, { items }, table(spec, items));
        return;
      }
      const item = spec.itemPath
        ? await client.request<Record<string, unknown>>(
          "GET",
          spec.itemPath(name, options.namespace),
        )
        : await findByKey(client, spec, kind, name);
      print(options.output, item, table(spec, [item]));
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

function table(spec: AnyKindSpec, items: unknown[]): string {
  const row = spec.row as (item: unknown) => unknown[];
  return formatTable(spec.columns, items.map((item) => row(item).map(cell)));
}

/** A table cell: one line, and `-` for nothing, so that `awk` sees every column. */
function cell(value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  return String(value).replace(/\s+/g, " ");
}

function formatLabels(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
}

// --- token -------------------------------------------------------------------

interface TokenCreateOptions extends ConnectionOptions {
  kind: "api" | "join";
  role?: string;
  node?: string;
  ttl?: string;
  description?: string;
  namespace?: string;
  serviceAccount?: string;
  uses?: string;
}

function tokenCommand(): Command {
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
    const created = await withClient(
      command,
      (client) => client.request<{ token?: unknown }>("POST", "/v1/tokens", { body }),
    );
    if (typeof created?.token !== "string") {
      throw new ServerError(`The server's answer to "POST /v1/tokens" holds no token`, 201);
    }
    console.log(created.token);
  });
}

function tokenListCommand(): Command {
  const command = verb("list")
    .description("List API tokens (never their secrets)")
    .addOption(
      new Option("-o, --output <format>", "Output format").choices(FORMATS).default("table")
        .env("IRONMESH_OUTPUT"),
    );
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const { output } = command.opts<{ output: Format }>();
    await withClient(command, async (client) => {
      const items = await client.list<Record<string, unknown>>(KINDS.tokens.path);
      print(output, { items }, table(KINDS.tokens, items));
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

// --- version -----------------------------------------------------------------

function versionCommand(): Command {
  const command = verb("version")
    .description("Print the version of this program and, with --server, of the server");
  addConnectionOptions(command, { serverDefault: false });
  return command.action(async () => {
    console.log(`ironmesh ${VERSION}`);
    if (command.opts<ConnectionOptions>().server === undefined) return;
    const answer = await withClient(
      command,
      (client) => client.request<{ version?: unknown }>("GET", "/v1/version"),
    );
    if (typeof answer?.version !== "string") {
      throw new ServerError(`The server's answer to "GET /v1/version" holds no version`, 200);
    }
    console.log(`server ${answer.version}`);
  });
}

// --- ca ----------------------------------------------------------------------

function caCommand(): Command {
  return verb("ca")
    .description("The mesh certificate authority: status and root rotation")
    .addCommand(caStatusCommand())
    .addCommand(caRotateCommand());
}

function caStatusCommand(): Command {
  const command = verb("status")
    .description(
      "Show the rotation stage, the roots' fingerprints and how many leaves chain to each root",
    )
    .addOption(
      new Option("-o, --output <format>", "Output format").choices(FORMATS).default("table")
        .env("IRONMESH_OUTPUT"),
    );
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const { output } = command.opts<{ output: Format }>();
    const status = await withClient(
      command,
      (client) => client.request<CaStatus>("GET", "/v1/ca/status"),
    );
    print(output, status, caStatusText(status));
  });
}

function caRotateCommand(): Command {
  const command = verb("rotate")
    .description(
      "Start a staged root rotation: publish a new root, switch signing once every live node trusts it, retire the old root once every live leaf is reissued",
    );
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const status = await withClient(
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
    formatTable(["GEN", "STAGE", "ROOT SHA-256", "ROOT EXPIRES", "LEAVES"], rows),
  ];
  return lines.join("\n");
}

// --- backup and restore --------------------------------------------------------

function backupCommand(): Command {
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

function restoreCommand(): Command {
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
