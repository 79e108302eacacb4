/**
 * One proxy's configuration from one push: run the proxy kind's generators
 * over the push context, then collect, version and sort what they emitted
 * into a snapshot that {@link consistent} can check before it is served.
 */
import { compareStrings, shortHash } from "./canonical.ts";
import { TYPE, typeUrl } from "./envoy.ts";
import {
  type Emitted,
  type Generator,
  type GeneratorSettings,
  normaliseInbound,
  PROXYLESS_GENERATORS,
  proxylessTargets,
  resolveUpstreams,
  SIDECAR_GENERATORS,
} from "./generators.ts";
import {
  type JsonObject,
  type JsonValue,
  type MeshView,
  type ProxyRequest,
  type ProxySnapshot,
  type Resource,
  RESOURCE_KINDS,
  type ResourceKind,
} from "./model.ts";
import { WORKLOAD_CERT_SECRET } from "./names.ts";
import { buildPushContext, type PushContext, versionOf } from "./push_context.ts";

/** Options of {@link generateProxy}. */
export interface GenerateOptions {
  /** How long Envoy waits for a TCP connection to an upstream host, in ms. Default: 5000. */
  connectTimeoutMs?: number;
}

/** The protobuf type of each list of a snapshot. */
export const TYPE_URLS: Readonly<Record<ResourceKind, string>> = {
  clusters: typeUrl(TYPE.cluster),
  endpoints: typeUrl(TYPE.clusterLoadAssignment),
  listeners: typeUrl(TYPE.listener),
  routes: typeUrl(TYPE.routeConfiguration),
  secrets: typeUrl(TYPE.secret),
};

function isPushContext(input: MeshView | PushContext): input is PushContext {
  return "endpointsByService" in input;
}

/**
 * The configuration of one proxy. Pass a {@link PushContext} built once per
 * push when generating for many proxies; a bare view is indexed on the spot.
 * The same input always gives the same snapshot, whatever the order of the
 * input's lists.
 */
export function generateProxy(
  view: MeshView | PushContext,
  request: ProxyRequest,
  options: GenerateOptions = {},
): ProxySnapshot {
  const push = isPushContext(view) ? view : buildPushContext(view);
  const settings: GeneratorSettings = { connectTimeoutMs: options.connectTimeoutMs ?? 5_000 };
  if (request.kind === "sidecar") {
    return assemble(
      push,
      runGenerators(SIDECAR_GENERATORS, {
        push,
        request,
        settings,
        inbound: normaliseInbound(request.inbound),
        upstreams: resolveUpstreams(push, request),
      }),
    );
  }
  return assemble(
    push,
    runGenerators(PROXYLESS_GENERATORS, {
      push,
      request,
      settings,
      targets: proxylessTargets(push, request),
    }),
  );
}

function runGenerators<C>(generators: readonly Generator<C>[], ctx: C): Emitted[] {
  return generators.flatMap((g) => g.generate(ctx));
}

function nameOf(kind: ResourceKind, body: JsonObject): string {
  const name = kind === "endpoints" ? body["cluster_name"] : body["name"];
  if (typeof name !== "string") throw new Error(`Generated ${kind} resource has no name`);
  return name;
}

/** Sorts and versions emitted bodies; the same resource emitted twice is kept once. */
function assemble(push: PushContext, emitted: readonly Emitted[]): ProxySnapshot {
  const byKind = new Map<ResourceKind, Map<string, Resource>>(
    RESOURCE_KINDS.map((k) => [k, new Map()]),
  );
  for (const { kind, body } of emitted) {
    const resources = byKind.get(kind)!;
    const name = nameOf(kind, body);
    const resource = { name, typeUrl: TYPE_URLS[kind], version: versionOf(push, body), body };
    const previous = resources.get(name);
    if (previous && previous.version !== resource.version) {
      throw new Error(`Generators built two different ${kind} resources named "${name}"`);
    }
    resources.set(name, resource);
  }
  const sorted = (kind: ResourceKind) =>
    [...byKind.get(kind)!.values()].sort((a, b) => compareStrings(a.name, b.name));
  return {
    clusters: sorted("clusters"),
    endpoints: sorted("endpoints"),
    listeners: sorted("listeners"),
    routes: sorted("routes"),
    secrets: sorted("secrets"),
  };
}

/**
 * The version of one list of resources, for a state-of-the-world response:
 * it changes exactly when a resource is added, removed or changed.
 */
export function typeVersion(resources: readonly Resource[]): string {
  return shortHash(resources.map((r) => `${r.name}\u0000${r.version}`).join("\u0000"));
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function visitObjects(value: JsonValue, visit: (obj: JsonObject) => void): void {
  if (Array.isArray(value)) {
    for (const item of value) visitObjects(item, visit);
  } else if (isObject(value)) {
    visit(value);
    for (const child of Object.values(value)) visitObjects(child, visit);
  }
}

/** Names a resource body refers to, by the kind of resource they name. */
interface References {
  routes: Set<string>;
  clusters: Set<string>;
  endpoints: Set<string>;
  secrets: Set<string>;
}

const TCP_PROXY_TYPE_URL = typeUrl(TYPE.tcpProxy);

function referencesOf(resource: Resource): References {
  const refs: References = {
    routes: new Set(),
    clusters: new Set(),
    endpoints: new Set(),
    secrets: new Set(),
  };
  visitObjects(resource.body, (obj) => {
    const rds = obj["rds"];
    if (isObject(rds) && typeof rds["route_config_name"] === "string") {
      refs.routes.add(rds["route_config_name"]);
    }
    const route = obj["route"];
    if (isObject(route) && typeof route["cluster"] === "string") {
      refs.clusters.add(route["cluster"]);
    }
    const weighted = obj["weighted_clusters"];
    if (isObject(weighted) && Array.isArray(weighted["clusters"])) {
      for (const c of weighted["clusters"]) {
        if (isObject(c) && typeof c["name"] === "string") refs.clusters.add(c["name"]);
      }
    }
    const mirrors = obj["request_mirror_policies"];
    if (Array.isArray(mirrors)) {
      for (const m of mirrors) {
        if (isObject(m) && typeof m["cluster"] === "string") refs.clusters.add(m["cluster"]);
      }
    }
    if (obj["@type"] === TCP_PROXY_TYPE_URL && typeof obj["cluster"] === "string") {
      refs.clusters.add(obj["cluster"]);
    }
    const eds = obj["eds_cluster_config"];
    if (obj["type"] === "EDS" && typeof obj["name"] === "string") {
      const serviceName = isObject(eds) ? eds["service_name"] : undefined;
      refs.endpoints.add(
        typeof serviceName === "string" && serviceName ? serviceName : obj["name"],
      );
    }
    if (isObject(obj["sds_config"]) && typeof obj["name"] === "string") {
      refs.secrets.add(obj["name"]);
    }
  });
  return refs;
}

const KIND_LABEL: Readonly<Record<ResourceKind, string>> = {
  clusters: "Cluster",
  endpoints: "Cluster load assignment",
  listeners: "Listener",
  routes: "Route configuration",
  secrets: "Secret",
};

const REFERENCE_LABEL: Readonly<Record<keyof References, string>> = {
  routes: "route configuration",
  clusters: "cluster",
  endpoints: "EDS resource",
  secrets: "secret",
};

/**
 * go-control-plane's `Consistent()`, a little wider: every route
 * configuration, cluster, EDS resource and secret that a resource names must
 * be in the snapshot, and names must be unique per kind. The secret
 * `default` is exempt: the host's agent serves it. Returns the problems;
 * empty means the snapshot may be served.
 */
export function consistent(snapshot: ProxySnapshot): string[] {
  const problems: string[] = [];
  const names = new Map<ResourceKind, Set<string>>();
  for (const kind of RESOURCE_KINDS) {
    const seen = new Set<string>();
    for (const r of snapshot[kind]) {
      if (seen.has(r.name)) problems.push(`${KIND_LABEL[kind]} "${r.name}" appears twice`);
      seen.add(r.name);
    }
    names.set(kind, seen);
  }
  for (const kind of RESOURCE_KINDS) {
    for (const resource of snapshot[kind]) {
      const refs = referencesOf(resource);
      for (const target of ["routes", "clusters", "endpoints", "secrets"] as const) {
        for (const name of [...refs[target]].sort(compareStrings)) {
          if (target === "secrets" && name === WORKLOAD_CERT_SECRET) continue;
          if (names.get(target)!.has(name)) continue;
          problems.push(
            `${KIND_LABEL[kind]} "${resource.name}" uses ${
              REFERENCE_LABEL[target]
            } "${name}", which is not in the snapshot`,
          );
        }
      }
    }
  }
  return problems;
}
