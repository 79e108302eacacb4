/**
 * The kinds the client verbs list and show: where each lives in the REST API,
 * which filters it takes, how one object is fetched by name, and its table
 * columns. `get` reads every kind through this table; `token list` reads the
 * tokens' row of it.
 */
import { InvalidError } from "../core/errors.ts";
import type { ApiToken, Instance, MeshNode, Service, Token } from "../core/model.ts";
import type { AnyPolicy, PolicyKind } from "../core/policy/model.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import { type Format, formatTable } from "./client_support.ts";
import { policyPath } from "./policy.ts";
import { didYouMean } from "./suggest.ts";

/** The filter flags of `get`. */
export const FILTERS = ["namespace", "service", "node", "health", "status", "selector"] as const;
/** One of {@link FILTERS}. */
export type Filter = typeof FILTERS[number];

/** The query parameter of each filter flag. */
export const FILTER_PARAMS: Record<Filter, string> = {
  namespace: "namespace",
  service: "service",
  node: "node",
  health: "health",
  status: "status",
  selector: "labelSelector",
};

/** How one kind is listed, fetched by name and shown as a table. */
export interface KindSpec<T> {
  path: string;
  filters: readonly Filter[];
  /** The path of one object; without it, `get KIND NAME` picks the object out of the list. */
  itemPath?: (name: string, namespace: string | undefined) => string;
  key: (item: Partial<T>) => string | undefined;
  columns: readonly string[];
  row: (item: Partial<T>) => unknown[];
  /** What `-o wide` adds after {@link columns}; none when absent. */
  wide?: { columns: readonly string[]; row: (item: Partial<T>) => unknown[] };
}

/** The spec of any kind. */
export type AnyKindSpec =
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
    wide: {
      columns: ["LABELS", "CREATED"],
      row: (p) => [formatLabels(p.metadata?.labels), p.metadata?.createdAt],
    },
  };
}

interface NamespaceSummary {
  name: string;
  services: number;
}

/** Every kind `get` knows, by the name it is typed as. */
export const KINDS = {
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
    wide: {
      columns: ["MANAGED-BY", "CREATED"],
      row: (s) => [s.managedBy, s.createdAt],
    },
  } satisfies KindSpec<Service>,
  instances: {
    path: "/v1/instances",
    filters: ["namespace", "service", "node", "health", "selector"],
    itemPath: (id) => `/v1/instances/${encodeURIComponent(id)}`,
    key: (i) => i.id,
    columns: ["ID", "SERVICE", "NAMESPACE", "NODE", "ADDRESS", "PORT", "HEALTH"],
    row: (i) => [i.id, i.service, i.namespace, i.node, i.address, i.port, i.health],
    wide: {
      columns: ["PROTOCOL", "INBOUND-PORT", "DRAINING", "CHECK", "LABELS"],
      row: (i) => [
        i.protocol,
        i.inboundPort,
        i.draining,
        i.check?.status,
        formatLabels(i.labels),
      ],
    },
  } satisfies KindSpec<Instance>,
  nodes: {
    path: "/v1/nodes",
    filters: ["status", "selector"],
    itemPath: (name) => `/v1/nodes/${encodeURIComponent(name)}`,
    key: (n) => n.name,
    columns: ["NAME", "STATUS", "DRAINING", "ADDRESSES", "LAST-HEARTBEAT", "CONDITIONS"],
    row: (n) => [
      n.name,
      n.status,
      n.draining,
      (n.addresses ?? []).join(","),
      n.lastHeartbeat,
      // Absent on nodes registered by an agent older than conditions.
      (n.conditions ?? []).map((c) => `${c.type}(${c.reason})`).join(",") || null,
    ],
    wide: {
      columns: ["HOSTNAME", "AGENT", "HEARTBEAT", "TTL", "LABELS", "UPSTREAMS"],
      row: (n) => [
        n.hostname,
        n.agentVersion,
        n.heartbeatIntervalMs === undefined ? null : `${n.heartbeatIntervalMs}ms`,
        n.ttlMs === undefined ? null : `${n.ttlMs}ms`,
        formatLabels(n.labels),
        (n.upstreams ?? []).map((u) => `${u.service}.${u.namespace}:${u.localPort}`).join(","),
      ],
    },
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
    wide: { columns: ["CREATED"], row: (t) => [t.createdAt] },
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
    wide: {
      columns: ["TYPES"],
      row: (p) => [(p.types ?? []).map((t) => t.typeUrl.split(".").pop()).join(",")],
    },
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
/** A name of {@link KINDS}. */
export type KindName = keyof typeof KINDS;

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

/**
 * The kind `text` names, aliases included, out of `allowed` (every kind by default); throws an
 * {@link InvalidError} that proposes the nearest kind and lists the allowed ones.
 */
export function kindNamed<K extends KindName = KindName>(
  text: string,
  allowed: readonly K[] = Object.keys(KINDS) as K[],
): K {
  const kind = Object.hasOwn(KINDS, text) ? text as KindName : KIND_ALIASES[text];
  if (kind !== undefined && (allowed as readonly KindName[]).includes(kind)) return kind as K;
  const names = [
    ...allowed,
    ...Object.entries(KIND_ALIASES).filter(([, k]) => (allowed as readonly string[]).includes(k))
      .map(([alias]) => alias),
  ];
  throw new InvalidError(
    `Unknown kind "${text}"${didYouMean(text, names)}: expected one of ${
      allowed.map((k) => `"${k}"`).join(", ")
    }`,
  );
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

/** The table of `items` of the kind `spec` describes; `format` `wide` adds the wide columns. */
export function table(spec: AnyKindSpec, items: unknown[], format: Format = "table"): string {
  return formatTable(headers(spec, format), items.map((item) => cells(spec, item, format)));
}

/** The column headers of `spec`'s table in `format`. */
export function headers(spec: AnyKindSpec, format: Format): string[] {
  return [...spec.columns, ...(format === "wide" ? spec.wide?.columns ?? [] : [])];
}

/** The cells of `item`'s row in `spec`'s table in `format`. */
export function cells(spec: AnyKindSpec, item: unknown, format: Format): string[] {
  const row = spec.row as (item: unknown) => unknown[];
  const wideRow = format === "wide" ? spec.wide?.row as (item: unknown) => unknown[] : undefined;
  return [...row(item), ...(wideRow?.(item) ?? [])].map(cell);
}

/** A table cell: one line, and `-` for nothing, so that `awk` sees every column. */
function cell(value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  return String(value).replace(/\s+/g, " ");
}

function formatLabels(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
}
