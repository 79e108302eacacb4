/**
 * The policy verbs: `apply -f`, `delete`, `rollback`, `history`, `explain`
 * and `audit`. `apply` reads kubectl-style files (many `---`-separated
 * documents per file, several files) and sends them as one atomic batch, so
 * a file lands whole or not at all; every problem comes back located by
 * file, document and line.
 */
import { Command, Option } from "commander";
import type { ApiClient } from "../client/api_client.ts";
import { InvalidError } from "../core/errors.ts";
import type { FieldProblem } from "../core/errors.ts";
import {
  MESH_CONFIG_NAME,
  POLICY_KINDS,
  type PolicyKind,
  policyKindFromText,
} from "../core/policy/model.ts";
import type { ProxyPolicies } from "../core/policy/match.ts";
import { parseYamlDocuments, type SourceDocument } from "../core/validate.ts";
import type { ApplyResult, HistoryEntry } from "../policy/service.ts";
import type { AuditEntry } from "../store/store.ts";
import {
  addConnectionOptions,
  type ConnectionOptions,
  type Format,
  formatTable,
  outputOption,
  print,
  verb,
  withClient,
} from "./client_support.ts";
import { didYouMean } from "./suggest.ts";

/** The verbs of this file, for `cmd/main.ts`. */
export function policyCommands(): Command[] {
  return [
    applyCommand(),
    deleteCommand(),
    rollbackCommand(),
    historyCommand(),
    explainCommand(),
    auditCommand(),
  ];
}

/** The URL path of one policy: `KIND NAME`, where NAME is `NAMESPACE/NAME` or a name in `namespace`. */
export function policyPath(kindText: string, name: string, namespace?: string): string {
  const kind = policyKind(kindText);
  const segment = kind.toLowerCase();
  if (kind === "MeshConfig") return `/v1/policies/${segment}/${MESH_CONFIG_NAME}`;
  const slash = name.indexOf("/");
  const ns = slash >= 0 ? name.slice(0, slash) : namespace ?? "default";
  const bare = slash >= 0 ? name.slice(slash + 1) : name;
  return `/v1/policies/${segment}/${encodeURIComponent(ns)}/${encodeURIComponent(bare)}`;
}

function policyKind(text: string): PolicyKind {
  const kind = policyKindFromText(text);
  if (!kind) {
    throw new InvalidError(
      `Unknown policy kind "${text}"${
        didYouMean(text, POLICY_KINDS.map((k) => k.toLowerCase()))
      }: expected TrafficRoute, DestinationPolicy, AuthorizationPolicy, RateLimit or MeshConfig`,
    );
  }
  return kind;
}

function namespaceOption(): Option {
  return new Option("-n, --namespace <namespace>", 'Namespace of NAME (default "default")')
    .env("IRONMESH_NAMESPACE");
}

/** `--dry-run`, also from `IRONMESH_DRY_RUN=true`. */
function dryRunOption(description: string): Option {
  return new Option("--dry-run", description).env("IRONMESH_DRY_RUN");
}

// --- apply -------------------------------------------------------------------

/** A document read from a file, and where it came from. */
interface Located {
  file: string;
  doc: SourceDocument;
}

async function readDocuments(files: readonly string[]): Promise<Located[]> {
  const out: Located[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = file === "-"
        ? await new Response(Deno.stdin.readable).text()
        : await Deno.readTextFile(file);
    } catch (error) {
      throw new InvalidError(`Cannot read "${file}": ${(error as Error).message}`);
    }
    for (const doc of parseYamlDocuments(text, file)) out.push({ file, doc });
  }
  if (out.length === 0) throw new InvalidError(`No documents in ${files.join(", ")}`);
  return out;
}

/** `file:line:column: document N (Kind ns/name): /pointer: message`, from a batch pointer. */
function locate(docs: readonly Located[], problem: FieldProblem): string {
  const m = /^\/items\/(\d+)(.*)$/.exec(problem.pointer);
  const source = m ? docs[Number(m[1])] : undefined;
  if (!m || !source) return `${problem.pointer || "/"}: ${problem.message}`;
  const pointer = m[2]!;
  const { line, column } = source.doc.locate(pointer);
  const value = source.doc.value as {
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown };
  };
  const what = [
    typeof value?.kind === "string" ? value.kind : "",
    [value?.metadata?.namespace, value?.metadata?.name].filter((v) => typeof v === "string")
      .join("/"),
  ].filter(Boolean).join(" ");
  return `${source.file}:${line}:${column}: document ${source.doc.index + 1}${
    what ? ` (${what})` : ""
  }: ${pointer || "/"}: ${problem.message}`;
}

function applyCommand(): Command {
  const command = verb("apply")
    .description(
      "Create or update policies from YAML files (many documents per file, '---' separated), atomically",
    )
    .addOption(
      new Option("-f, --filename <file...>", "Files to apply; - reads standard input")
        .makeOptionMandatory().env("IRONMESH_APPLY_FILENAME"),
    )
    .addOption(
      dryRunOption("Validate and show which proxies would change, without storing anything"),
    )
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const options = command.opts<
      ConnectionOptions & { filename: string[]; dryRun?: boolean; output: Format }
    >();
    const docs = await readDocuments(options.filename);
    await withClient(command, async (client) => {
      let result: ApplyResult;
      try {
        result = await client.request<ApplyResult>("POST", "/v1/policies", {
          body: { items: docs.map((d) => d.doc.value) },
          query: { dryRun: options.dryRun ? "true" : undefined },
        });
      } catch (error) {
        if (error instanceof InvalidError && error.problems.length > 0) {
          const lines = error.problems.map((p) => `  ${locate(docs, p)}`);
          throw new InvalidError(
            `Nothing was applied: ${error.problems.length} problem${
              error.problems.length === 1 ? "" : "s"
            }:\n${lines.join("\n")}`,
            error.problems,
          );
        }
        throw error;
      }
      for (const w of result.warnings) console.error(`Warning: ${locate(docs, w)}`);
      print(options.output, result, applyTable(result));
    });
  });
}

function applyTable(result: ApplyResult): string {
  const suffix = result.dryRun ? " (dry run)" : "";
  const lines = result.items.map((i) =>
    `${i.kind.toLowerCase()}/${i.namespace ? `${i.namespace}/` : ""}${i.name} ${i.action}${
      i.revision !== null ? ` (revision ${i.revision})` : ""
    }${suffix}`
  );
  if (result.proxies) {
    if (result.proxies.length === 0) lines.push("No proxy configuration would change.");
    for (const p of result.proxies) {
      const who = p.connected.length > 0 ? ` [connected: ${p.connected.join(", ")}]` : "";
      lines.push(`${p.kind} ${p.target}${who}:`);
      for (const c of p.changes) {
        lines.push(
          `  ${c.op === "added" ? "+" : c.op === "removed" ? "-" : "~"} ${c.type} ${c.name}`,
        );
        for (const d of c.diff ?? []) {
          lines.push(`      ${d.pointer}: ${show(d.before)} -> ${show(d.after)}`);
        }
      }
    }
  }
  return lines.join("\n");
}

function show(value: unknown): string {
  if (value === undefined) return "(none)";
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

// --- delete, rollback, history -------------------------------------------------

/** Registry objects `delete` also removes, by the path of one object. */
const DELETABLE: Readonly<Record<string, (name: string, namespace?: string) => string>> = {
  service: (name, namespace) => {
    const slash = name.indexOf("/");
    const ns = slash >= 0 ? name.slice(0, slash) : namespace ?? "default";
    const bare = slash >= 0 ? name.slice(slash + 1) : name;
    return `/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(bare)}`;
  },
  node: (name) => `/v1/nodes/${encodeURIComponent(name)}`,
  token: (id) => `/v1/tokens/${encodeURIComponent(id)}`,
};

function deleteCommand(): Command {
  const command = verb("delete")
    .description(
      "Delete a policy, a service, a node (decommissioning it: its certificates are revoked) or a token",
    )
    .argument(
      "<kind>",
      "trafficroute, destinationpolicy, authorizationpolicy, ratelimit, meshconfig, service, " +
        "node or token",
    )
    .argument(
      "[name]",
      "NAMESPACE/NAME or NAME (in --namespace) for policies and services; none for meshconfig",
    )
    .addOption(namespaceOption())
    .addOption(dryRunOption("Policies: show which proxies would change, without deleting"))
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async (kind: string, name: string | undefined) => {
    const options = command.opts<
      ConnectionOptions & { namespace?: string; dryRun?: boolean; output: Format }
    >();
    const registryPath = DELETABLE[kind.replace(/s$/, "")];
    if (registryPath) {
      if (name === undefined) throw new InvalidError(`Missing NAME: which ${kind} to delete`);
      if (options.dryRun) throw new InvalidError(`--dry-run applies to policies only`);
      await withClient(command, async (client) => {
        await client.request("DELETE", registryPath(name, options.namespace));
        const result = { kind: kind.replace(/s$/, ""), name, action: "deleted" };
        print(options.output, result, `${result.kind}/${name} deleted`);
      });
      return;
    }
    const path = policyPath(kind, requireName(kind, name), options.namespace);
    await withClient(command, async (client) => {
      const result = await client.request<ApplyResult>("DELETE", path, {
        query: { dryRun: options.dryRun ? "true" : undefined },
      });
      print(options.output, result, applyTable(result));
    });
  });
}

function requireName(kind: string, name: string | undefined): string {
  if (name !== undefined) return name;
  if (policyKind(kind) === "MeshConfig") return MESH_CONFIG_NAME;
  throw new InvalidError(`Missing NAME: ${kind} policies are named`);
}

function rollbackCommand(): Command {
  const command = verb("rollback")
    .description("Store an earlier revision of a policy again, as a new revision")
    .argument(
      "<kind>",
      "trafficroute, destinationpolicy, authorizationpolicy, ratelimit, meshconfig",
    )
    .argument("[name]", "NAMESPACE/NAME or NAME (in --namespace); none for meshconfig")
    .addOption(
      new Option("--to <revision>", "The revision to restore (see `ironmesh history`)")
        .makeOptionMandatory().env("IRONMESH_ROLLBACK_TO"),
    )
    .addOption(namespaceOption())
    .addOption(dryRunOption("Show which proxies would change, without storing anything"))
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async (kind: string, name: string | undefined) => {
    const options = command.opts<
      ConnectionOptions & { to: string; namespace?: string; dryRun?: boolean; output: Format }
    >();
    const revision = Number(options.to);
    if (!Number.isInteger(revision) || revision < 1) {
      throw new InvalidError(`Invalid --to "${options.to}": must be a revision number (1 or more)`);
    }
    const path = policyPath(kind, requireName(kind, name), options.namespace);
    await withClient(command, async (client) => {
      const result = await client.request<Record<string, unknown>>("POST", `${path}/rollback`, {
        body: { revision },
        query: { dryRun: options.dryRun ? "true" : undefined },
      });
      const meta = (result as { metadata?: { revision?: number } }).metadata;
      const text = "dryRun" in result
        ? applyTable(result as unknown as ApplyResult)
        : `${kind.toLowerCase()}/${
          name ?? MESH_CONFIG_NAME
        } rolled back to the content of revision ${revision} (now revision ${meta?.revision})`;
      print(options.output, result, text);
    });
  });
}

function historyCommand(): Command {
  const command = verb("history")
    .description("Every revision of a policy: who, when, and what changed")
    .argument(
      "<kind>",
      "trafficroute, destinationpolicy, authorizationpolicy, ratelimit, meshconfig",
    )
    .argument("[name]", "NAMESPACE/NAME or NAME (in --namespace); none for meshconfig")
    .addOption(namespaceOption())
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async (kind: string, name: string | undefined) => {
    const options = command.opts<ConnectionOptions & { namespace?: string; output: Format }>();
    const path = policyPath(kind, requireName(kind, name), options.namespace);
    await withClient(command, async (client) => {
      const items = await client.list<HistoryEntry>(`${path}/history`);
      const rows = items.map((h) => [
        String(h.revision),
        h.op,
        h.at,
        h.actor,
        h.changes.length === 0 ? "-" : h.changes.map((c) => c.pointer || "/").join(" "),
      ]);
      print(
        options.output,
        { items },
        formatTable(["REVISION", "OP", "AT", "BY", "CHANGED"], rows),
      );
    });
  });
}

// --- explain, audit ------------------------------------------------------------

function explainCommand(): Command {
  const command = verb("explain")
    .description("Which policies apply to a proxy, and why")
    .argument("<proxy>", "A proxy id (see `ironmesh get proxies`) or a node name")
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async (proxy: string) => {
    const options = command.opts<ConnectionOptions & { output: Format }>();
    await withClient(command, async (client: ApiClient) => {
      const result = await client.request<ProxyPolicies>(
        "GET",
        `/v1/proxies/${encodeURIComponent(proxy)}/policies`,
      );
      const header = `${result.kind} ${result.node} (${result.id}): sends to ${
        result.outbound.map((s) => `${s.service}.${s.namespace}`).join(", ") || "nothing"
      }; serves ${
        result.inbound.map((s) => `${s.service}.${s.namespace}`).join(", ") || "nothing"
      }`;
      const rows = result.policies.map((p) => [
        p.kind,
        p.namespace ? `${p.namespace}/${p.name}` : p.name,
        String(p.revision),
        p.direction,
        p.reason,
      ]);
      const body = rows.length === 0
        ? "No policy applies: mesh defaults everywhere."
        : formatTable(["KIND", "NAME", "REVISION", "DIRECTION", "WHY"], rows);
      const gaps = result.notHonoured ?? [];
      const notHonoured = gaps.length === 0
        ? ""
        : `\nNot honoured by proxyless gRPC:\n${
          formatTable(
            ["KIND", "NAME", "FIELD", "INSTEAD"],
            gaps.map((g) => [
              g.kind,
              g.namespace ? `${g.namespace}/${g.name}` : g.name,
              g.field || "(all)",
              g.effect,
            ]),
          )
        }`;
      print(options.output, result, `${header}\n${body}${notHonoured}`);
    });
  });
}

function auditCommand(): Command {
  const command = verb("audit")
    .description("The audit log of policy writes, refused ones included")
    .addOption(
      new Option("--outcome <outcome>", "Only ok or refused writes").choices(["ok", "refused"]),
    )
    .addOption(new Option("--limit <n>", "At most this many entries").default("100"))
    .addOption(outputOption());
  addConnectionOptions(command, { serverDefault: true });
  return command.action(async () => {
    const options = command.opts<
      ConnectionOptions & { outcome?: string; after?: string; limit: string; output: Format }
    >();
    await withClient(command, async (client) => {
      const page = await client.request<{ items: AuditEntry[] }>("GET", "/v1/audit", {
        query: { outcome: options.outcome, after: options.after, limit: options.limit },
      });
      const rows = page.items.map((a) => [
        String(a.id),
        a.at,
        a.actor,
        a.action,
        `${a.kind}${a.namespace ? ` ${a.namespace}/` : " "}${a.name}`,
        `${a.outcome} ${a.status}`,
        a.revision === null ? "-" : String(a.revision),
        a.detail.replace(/\s+/g, " "),
      ]);
      print(
        options.output,
        page,
        formatTable(["ID", "AT", "BY", "ACTION", "POLICY", "OUTCOME", "REVISION", "DETAIL"], rows),
      );
    });
  });
}
