/**
 * The generators, Kuma style: each one builds one slice of a proxy's
 * configuration, and the two ordered lists below read as the table of
 * contents of what a sidecar and a proxyless client receive.
 */
import { ENVOY_ADMIN } from "../../core/envoy_bootstrap.ts";
import { parseSpiffeId } from "../../core/spiffe_id.ts";
import { rbacFilters } from "./authorization.ts";
import { compareStrings } from "./canonical.ts";
import {
  type ClusterTarget,
  clusterTargets,
  clusterTrafficFields,
  connectTimeoutMs,
  enabledLocality,
  localityPriorities,
  type ProxyKind,
  tcpHashPolicies,
  trafficSettings,
} from "./destination.ts";
import { removesServerHeader, sidecarConnectionManager } from "./connection_manager.ts";
import { upstreamMtls } from "./envoy.ts";
import { proxylessMtls, serverListeners, upstreamProviderTls } from "./proxyless_security.ts";
import type {
  InboundEntry,
  JsonObject,
  Locality,
  MeshEndpoint,
  MeshService,
  MeshServicePort,
  ProxylessRequest,
  ResourceKind,
  SidecarRequest,
} from "./model.ts";
import { inboundClusterName, routeConfigName, serviceHost } from "./names.ts";
import { type PushContext, serviceKey, shared, sortedPorts } from "./push_context.ts";
import { type InboundRateLimit, inboundRateLimit } from "./rate_limit.ts";
import {
  apiListener,
  appRoute,
  clusterLoadAssignment,
  edsCluster,
  inboundCluster,
  inboundListener,
  inboundRoutes,
  isHttp,
  type LbHost,
  outboundListener,
  rootCaSecret,
  routeConfiguration,
  usesHttp2,
} from "./resources.ts";
import { type RoutePlan, routePlan } from "./route_rules.ts";

/** One resource body a generator emits, with the list it belongs to. */
export interface Emitted {
  kind: ResourceKind;
  body: JsonObject;
}

/** Settings every generator sees, defaults applied. */
export interface GeneratorSettings {
  connectTimeoutMs: number;
}

/** A service port a proxy reaches, with its clusters. */
export interface ServiceTarget {
  service: MeshService;
  port: MeshServicePort;
  /**
   * Every cluster the proxy needs for it: the port's own, its subsets', and
   * those its routes split or mirror to (maybe of other services), so that
   * every cluster a route names is in the snapshot.
   */
  clusters: readonly ClusterTarget[];
}

/** A sidecar upstream resolved against the registry. */
export interface ResolvedUpstream extends ServiceTarget {
  localPort: number;
}

/** A service port a proxyless client may dial, with the listener names that lead to it. */
export interface ProxylessTarget extends ServiceTarget {
  listenerNames: readonly string[];
}

/** What a sidecar's generators read: its request, normalised and resolved once. */
export interface SidecarContext {
  push: PushContext;
  request: SidecarRequest;
  settings: GeneratorSettings;
  /** One entry per inbound port, sorted by it. */
  inbound: readonly InboundEntry[];
  /** One entry per local port, sorted by it; upstreams naming an unknown service or port are left out. */
  upstreams: readonly ResolvedUpstream[];
}

/** What a proxyless client's generators read. */
export interface ProxylessContext {
  push: PushContext;
  request: ProxylessRequest;
  settings: GeneratorSettings;
  /** One entry per service with a gRPC or HTTP/2 port, sorted by namespace and name. */
  targets: readonly ProxylessTarget[];
}

/** One named step of generation. */
export interface Generator<C> {
  name: string;
  generate: (ctx: C) => Emitted[];
}

/** True when `labels` carries every label of `selector`. */
export function matchesSelector(
  labels: Readonly<Record<string, string>>,
  selector: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function routeName(target: Pick<ServiceTarget, "service" | "port">): string {
  return routeConfigName(target.service.name, target.service.namespace, target.port.port);
}

/** The routes of a service port for a proxy of `kind`, built once per push. */
function sharedRoutePlan(
  push: PushContext,
  service: MeshService,
  port: MeshServicePort,
  kind: ProxyKind,
): RoutePlan {
  return shared(
    push,
    `${kind} route plan ${routeName({ service, port })}`,
    () => routePlan(push, service, port, kind),
  );
}

/** A service port's {@link ServiceTarget.clusters}, once per push; only HTTP ports have routes. */
function targetClusters(
  push: PushContext,
  service: MeshService,
  port: MeshServicePort,
  kind: ProxyKind,
): readonly ClusterTarget[] {
  return shared(push, `${kind} clusters ${routeName({ service, port })}`, () => {
    const all = [
      ...clusterTargets(push, service, port),
      ...(isHttp(port.protocol) ? sharedRoutePlan(push, service, port, kind).clusters : []),
    ];
    return all.filter((c, i) => all.findIndex((d) => d.name === c.name) === i);
  });
}

/**
 * The endpoints of `cluster` that may get traffic: healthy, selected, and
 * speaking the port's protocol. Membership goes by protocol, not port
 * number: on VMs one service's instances may listen on different ports (two
 * on one host must), and each endpoint carries its own port.
 */
function liveEndpoints(push: PushContext, cluster: ClusterTarget): MeshEndpoint[] {
  const { selector } = cluster;
  const key = serviceKey(cluster.service, cluster.namespace);
  const port = push.serviceByKey.get(key)?.ports.find((p) => p.port === cluster.port);
  if (!port || selector === null) return [];
  return (push.endpointsByService.get(key) ?? []).filter((e) =>
    e.healthy && e.protocol === port.protocol && matchesSelector(e.labels, selector)
  );
}

/**
 * The SPIFFE IDs a sidecar accepts from a service's peers: those of all its
 * endpoints, whatever their health, so that a health change touches only EDS.
 */
export function serviceIdentities(push: PushContext, service: MeshService): string[] {
  const all = push.endpointsByService.get(serviceKey(service.name, service.namespace)) ?? [];
  return [...new Set(all.map((e) => e.identity))].sort(compareStrings);
}

/**
 * Inbound entries, one per inbound port (the lowest id wins a clash), sorted
 * by port.
 */
export function normaliseInbound(entries: readonly InboundEntry[]): InboundEntry[] {
  const sorted = [...entries].sort((a, b) =>
    a.inboundPort - b.inboundPort || compareStrings(a.id, b.id)
  );
  return sorted.filter((e, i) => i === 0 || sorted[i - 1]!.inboundPort !== e.inboundPort);
}

/**
 * Upstreams resolved against the registry, one per local port (the first by
 * namespace and name wins a clash). An upstream whose service or port is
 * unknown gets no listener until the service appears: the app sees its
 * connection refused rather than a proxy with nowhere to send it. Nor does
 * one on a port the host already uses (a local app's, an inbound
 * listener's, Envoy's admin): Envoy would fail to bind it and refuse the
 * whole listener update. The agent refuses such a configuration; this
 * guards against an agent that did not.
 */
export function resolveUpstreams(push: PushContext, request: SidecarRequest): ResolvedUpstream[] {
  const taken = new Set([
    ENVOY_ADMIN.port,
    ...request.inbound.flatMap((e) => [e.appPort, e.inboundPort]),
  ]);
  const sorted = [...request.upstreams].filter((u) => !taken.has(u.localPort)).sort((a, b) =>
    a.localPort - b.localPort || compareStrings(a.namespace, b.namespace) ||
    compareStrings(a.service, b.service) || (a.port ?? 0) - (b.port ?? 0)
  );
  const out: ResolvedUpstream[] = [];
  for (const u of sorted) {
    if (out.at(-1)?.localPort === u.localPort) continue;
    const service = push.serviceByKey.get(serviceKey(u.service, u.namespace));
    if (!service) continue;
    const ports = sortedPorts(service);
    const port = u.port === undefined ? ports[0] : ports.find((p) => p.port === u.port);
    if (!port) continue;
    out.push({
      localPort: u.localPort,
      service,
      port,
      clusters: targetClusters(push, service, port, "sidecar"),
    });
  }
  return out;
}

/**
 * What a proxyless client can dial: each service's lowest gRPC or HTTP/2
 * port, as `<name>.<namespace>` and, in the client's own namespace, `<name>`.
 */
export function proxylessTargets(push: PushContext, request: ProxylessRequest): ProxylessTarget[] {
  const ownNamespace = parseSpiffeId(request.identity)?.namespace;
  const out: ProxylessTarget[] = [];
  for (const service of push.services) {
    const port = sortedPorts(service).find((p) => usesHttp2(p.protocol));
    if (!port) continue;
    const names = [serviceHost(service.name, service.namespace)];
    if (service.namespace === ownNamespace) names.push(service.name);
    out.push({
      service,
      port,
      clusters: targetClusters(push, service, port, "proxyless"),
      listenerNames: names.sort(compareStrings),
    });
  }
  return out;
}

/**
 * The locality-aware endpoints of `cluster` as `caller` sees them, or all
 * at priority 0 when its service's DestinationPolicy does not enable
 * locality. The memo key names the caller's locality only when it matters,
 * so that callers share one body wherever they can.
 */
function sharedLoadAssignment(
  push: PushContext,
  kind: ProxyKind,
  cluster: ClusterTarget,
  caller: Locality | undefined,
  hostOf: (e: MeshEndpoint) => LbHost | undefined,
  variant = "",
): JsonObject {
  const locality = enabledLocality(push, cluster.namespace, cluster.service);
  const from = caller ?? { region: "", zone: "" };
  const key = `${kind}${variant} endpoints ${cluster.name}` +
    (locality ? ` from ${JSON.stringify([from.region, from.zone])}` : "");
  return shared(push, key, () => {
    const hosts = liveEndpoints(push, cluster).flatMap((e) => hostOf(e) ?? []);
    const priorityOf = locality
      ? localityPriorities(locality, from, hosts.map((h) => h.locality))
      : undefined;
    return clusterLoadAssignment(cluster.name, hosts, priorityOf);
  });
}

/**
 * An outbound cluster; `transportSocket` is built only when the body is. A
 * sidecar must be told to speak HTTP/2; a gRPC client always does.
 */
function outboundCluster(
  ctx: { push: PushContext; settings: GeneratorSettings },
  kind: ProxyKind,
  cluster: ClusterTarget,
  transportSocket: (service: MeshService | undefined) => JsonObject | undefined,
  variant = "",
): JsonObject {
  const { push } = ctx;
  const fallbackMs = ctx.settings.connectTimeoutMs;
  return shared(push, `${kind}${variant} cluster ${cluster.name} ${fallbackMs}`, () => {
    const service = push.serviceByKey.get(serviceKey(cluster.service, cluster.namespace));
    const port = service?.ports.find((p) => p.port === cluster.port);
    const settings = trafficSettings(
      push,
      cluster.namespace,
      cluster.service,
      cluster.port,
      cluster.subset,
    );
    const socket = transportSocket(service);
    return edsCluster(cluster.name, {
      connectTimeoutMs: connectTimeoutMs(settings, fallbackMs),
      ...(socket ? { transportSocket: socket } : {}),
      http2: kind === "sidecar" && port !== undefined && usesHttp2(port.protocol),
      traffic: clusterTrafficFields(settings, kind),
    });
  });
}

function defaultCluster(target: ServiceTarget): string {
  return target.clusters[0]!.name;
}

/** The RateLimit of an HTTP inbound entry's service: its filter and routes, once per push. */
function sharedInboundRateLimit(push: PushContext, entry: InboundEntry): InboundRateLimit {
  const { service, namespace, inboundPort, appPort } = entry;
  const key = `inbound rate limit ${JSON.stringify([namespace, service, inboundPort, appPort])}`;
  return shared(
    push,
    key,
    () => inboundRateLimit(push, entry, (match) => appRoute(inboundClusterName(appPort), match)),
  );
}

/**
 * Peers reach local instances through `inbound|<port>`: mTLS (and plaintext
 * too when the mesh is PERMISSIVE), RBAC from AuthorizationPolicies, then
 * the RateLimit's filter and routes to the app (HTTP), or TCP proxying.
 */
function sidecarInboundListeners(ctx: SidecarContext): Emitted[] {
  const { push } = ctx;
  const host = ctx.request.hostAddress;
  return ctx.inbound.map((entry): Emitted => {
    const { service, namespace, inboundPort, appPort, protocol } = entry;
    // Peers dial the instance's registered address: an IPv6 one needs an IPv6 socket.
    const ipv6 = (push.endpointsByService.get(serviceKey(service, namespace)) ?? []).some((e) =>
      e.node === ctx.request.node && e.port === appPort && e.address.includes(":")
    );
    const key = `inbound listener ${
      JSON.stringify([host, namespace, service, inboundPort, appPort, protocol, ipv6])
    }`;
    return {
      kind: "listeners",
      body: shared(push, key, () => {
        const http = isHttp(protocol);
        const limits = http ? sharedInboundRateLimit(push, entry).filters : [];
        return inboundListener(entry, host, push.view.trustDomain, {
          permissive: push.mesh.mtls?.mode === "PERMISSIVE",
          ipv6,
          filters: [...rbacFilters(push, entry, http), ...limits],
          connectionManager: sidecarConnectionManager(push.mesh, { grpc: protocol === "grpc" }),
        });
      }),
    };
  });
}

/** The routes of each HTTP inbound listener, with the RateLimit's buckets, over RDS. */
function sidecarInboundRoutes(ctx: SidecarContext): Emitted[] {
  return ctx.inbound.filter((e) => isHttp(e.protocol)).map((entry) => ({
    kind: "routes",
    body: shared(
      ctx.push,
      `inbound routes ${
        JSON.stringify([entry.namespace, entry.service, entry.inboundPort, entry.appPort])
      }`,
      () => inboundRoutes(entry, sharedInboundRateLimit(ctx.push, entry).routes),
    ),
  }));
}

/** Each local app port as a STATIC cluster on loopback. */
function sidecarInboundClusters(ctx: SidecarContext): Emitted[] {
  const byAppPort = new Map<number, InboundEntry>();
  for (const e of ctx.inbound) if (!byAppPort.has(e.appPort)) byAppPort.set(e.appPort, e);
  return [...byAppPort.values()].map((e) => ({
    kind: "clusters",
    body: inboundCluster(e.appPort, e.protocol, ctx.settings.connectTimeoutMs),
  }));
}

/** Each upstream on `127.0.0.1:<localPort>`. */
function sidecarOutboundListeners(ctx: SidecarContext): Emitted[] {
  const { push } = ctx;
  return ctx.upstreams.map((u) => {
    const http = isHttp(u.port.protocol);
    const routes = http ? sharedRoutePlan(push, u.service, u.port, "sidecar").routes : [];
    const { namespace, name } = u.service;
    const lb = http
      ? undefined
      : trafficSettings(push, namespace, name, u.port.port, "").loadBalancer;
    return {
      kind: "listeners",
      body: outboundListener(u.localPort, {
        protocol: u.port.protocol,
        cluster: defaultCluster(u),
        routeConfig: routeName(u),
        connectionManager: sidecarConnectionManager(push.mesh, {
          removesServerHeader: removesServerHeader(routes),
          grpc: u.port.protocol === "grpc",
        }),
        tcpHashPolicy: tcpHashPolicies(lb),
      }),
    };
  });
}

/** HTTP upstreams route through RDS, by their TrafficRoute's rules and MeshConfig's defaults. */
function sidecarOutboundRoutes(ctx: SidecarContext): Emitted[] {
  return ctx.upstreams.filter((u) => isHttp(u.port.protocol)).map((u) => ({
    kind: "routes",
    body: shared(
      ctx.push,
      `sidecar route ${routeName(u)}`,
      () =>
        routeConfiguration(
          routeName(u),
          ["*"],
          sharedRoutePlan(ctx.push, u.service, u.port, "sidecar").routes,
        ),
    ),
  }));
}

/** EDS clusters with mTLS that checks the peers' exact SPIFFE IDs. */
function sidecarOutboundClusters(ctx: SidecarContext): Emitted[] {
  const trustDomain = ctx.push.view.trustDomain;
  return ctx.upstreams.flatMap((u) =>
    u.clusters.map((c): Emitted => ({
      kind: "clusters",
      body: outboundCluster(ctx, "sidecar", c, (service) =>
        upstreamMtls(trustDomain, service ? serviceIdentities(ctx.push, service) : [])),
    }))
  );
}

/** Healthy peers at their sidecar's inbound port; peers without a sidecar cannot speak mTLS. */
function sidecarOutboundEndpoints(ctx: SidecarContext): Emitted[] {
  return ctx.upstreams.flatMap((u) =>
    u.clusters.map((c): Emitted => ({
      kind: "endpoints",
      body: sharedLoadAssignment(ctx.push, "sidecar", c, ctx.request.locality, (e) =>
        e.inboundPort === null
          ? undefined
          : { address: e.address, port: e.inboundPort, locality: e.locality }),
    }))
  );
}

/** The trust bundle; the workload certificate `default` comes from the host's agent. */
function sidecarTrustBundle(ctx: SidecarContext): Emitted[] {
  const body = shared(ctx.push, "root ca", () => rootCaSecret(ctx.push.view.trustBundlePem));
  return [{ kind: "secrets", body }];
}

/** The table of contents of a sidecar's configuration. */
export const SIDECAR_GENERATORS: readonly Generator<SidecarContext>[] = [
  { name: "inbound listeners", generate: sidecarInboundListeners },
  { name: "inbound routes", generate: sidecarInboundRoutes },
  { name: "inbound clusters", generate: sidecarInboundClusters },
  { name: "outbound listeners", generate: sidecarOutboundListeners },
  { name: "outbound routes", generate: sidecarOutboundRoutes },
  { name: "outbound clusters", generate: sidecarOutboundClusters },
  { name: "outbound endpoints", generate: sidecarOutboundEndpoints },
  { name: "trust bundle", generate: sidecarTrustBundle },
];

/** One API listener per name a client may dial. */
function proxylessListeners(ctx: ProxylessContext): Emitted[] {
  return ctx.targets.flatMap((t) =>
    t.listenerNames.map((name): Emitted => ({
      kind: "listeners",
      body: shared(ctx.push, `proxyless listener ${name} ${routeName(t)}`, () =>
        apiListener(name, routeName(t))),
    }))
  );
}

/** One virtual host whose domains are the dial targets (grpc-js matches the target's path). */
function proxylessRoutes(ctx: ProxylessContext): Emitted[] {
  return ctx.targets.map((t) => ({
    kind: "routes",
    body: shared(
      ctx.push,
      `proxyless route ${routeName(t)} ${t.listenerNames.join(" ")}`,
      () =>
        routeConfiguration(
          routeName(t),
          t.listenerNames,
          sharedRoutePlan(ctx.push, t.service, t.port, "proxyless").routes,
        ),
    ),
  }));
}

/** The server Listeners of the gRPC instances, for proxyless servers (`proxyless_security.ts`). */
function proxylessServerListeners(ctx: ProxylessContext): Emitted[] {
  return serverListeners(ctx.push, ctx.push.services, ctx.request).map((body) => ({
    kind: "listeners",
    body,
  }));
}

/**
 * EDS clusters: with mesh mTLS (STRICT, and a client that has the
 * bootstrap's certificate provider) checking the peers' exact SPIFFE IDs,
 * else plaintext, for `XdsChannelCredentials`' fallback or insecure
 * channel credentials.
 */
function proxylessClusters(ctx: ProxylessContext): Emitted[] {
  const mtls = proxylessMtls(ctx.push, ctx.request);
  const trustDomain = mtls ? ctx.push.view.trustDomain : "";
  return ctx.targets.flatMap((t) =>
    t.clusters.map((c): Emitted => ({
      kind: "clusters",
      body: mtls
        ? outboundCluster(ctx, "proxyless", c, (service) =>
          upstreamProviderTls(
            trustDomain,
            service ? serviceIdentities(ctx.push, service) : [],
          ), " mtls")
        : outboundCluster(ctx, "proxyless", c, () => undefined),
    }))
  );
}

/**
 * Healthy instances at their app port; over mTLS, an instance behind a
 * sidecar at the sidecar's inbound port, since its app port speaks
 * plaintext to its sidecar only.
 */
function proxylessEndpoints(ctx: ProxylessContext): Emitted[] {
  const mtls = proxylessMtls(ctx.push, ctx.request);
  return ctx.targets.flatMap((t) =>
    t.clusters.map((c): Emitted => ({
      kind: "endpoints",
      body: sharedLoadAssignment(ctx.push, "proxyless", c, ctx.request.locality, (e) => ({
        address: e.address,
        port: mtls ? e.inboundPort ?? e.port : e.port,
        locality: e.locality,
      }), mtls ? " mtls" : ""),
    }))
  );
}

/** The table of contents of a proxyless gRPC client's configuration. */
export const PROXYLESS_GENERATORS: readonly Generator<ProxylessContext>[] = [
  { name: "api listeners", generate: proxylessListeners },
  { name: "server listeners", generate: proxylessServerListeners },
  { name: "routes", generate: proxylessRoutes },
  { name: "clusters", generate: proxylessClusters },
  { name: "endpoints", generate: proxylessEndpoints },
];
