/**
 * The generators, Kuma style: each one builds one slice of a proxy's
 * configuration, and the two ordered lists below read as the table of
 * contents of what a sidecar and a proxyless client receive.
 */
import { parseSpiffeId } from "../../core/spiffe_id.ts";
import { compareStrings } from "./canonical.ts";
import { upstreamMtls } from "./envoy.ts";
import type {
  InboundEntry,
  JsonObject,
  MeshEndpoint,
  MeshService,
  MeshServicePort,
  ProxylessRequest,
  ResourceKind,
  SidecarRequest,
} from "./model.ts";
import { outboundClusterName, routeConfigName, serviceHost } from "./names.ts";
import { type PushContext, serviceKey, shared, sortedPorts } from "./push_context.ts";
import {
  apiListener,
  clusterLoadAssignment,
  edsCluster,
  inboundCluster,
  inboundListener,
  isHttp,
  type LbHost,
  outboundListener,
  rootCaSecret,
  routeConfiguration,
  usesHttp2,
} from "./resources.ts";

/** One resource body a generator emits, with the list it belongs to. */
export interface Emitted {
  kind: ResourceKind;
  body: JsonObject;
}

/** Settings every generator sees, defaults applied. */
export interface GeneratorSettings {
  connectTimeoutMs: number;
}

/** A cluster of a service port: today one per port; DestinationPolicy subsets will add more. */
export interface ClusterTarget {
  name: string;
  /** Endpoints must carry all these labels; `{}` selects every endpoint. */
  selector: Readonly<Record<string, string>>;
}

/** A service port a proxy reaches, with its clusters. */
export interface ServiceTarget {
  service: MeshService;
  port: MeshServicePort;
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

/** The clusters of a service port. The subset slot of the name stays empty until subsets exist. */
export function clusterTargets(service: MeshService, port: MeshServicePort): ClusterTarget[] {
  return [{ name: outboundClusterName(service.name, service.namespace, port.port), selector: {} }];
}

/**
 * The endpoints of `cluster` that may get traffic: healthy, selected, and
 * speaking the port's protocol. Membership goes by protocol, not port
 * number: on VMs one service's instances may listen on different ports (two
 * on one host must), and each endpoint carries its own port.
 */
function liveEndpoints(
  push: PushContext,
  target: ServiceTarget,
  cluster: ClusterTarget,
): MeshEndpoint[] {
  const all = push.endpointsByService.get(
    serviceKey(target.service.name, target.service.namespace),
  );
  return (all ?? []).filter((e) =>
    e.healthy && e.protocol === target.port.protocol && matchesSelector(e.labels, cluster.selector)
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
 * connection refused rather than a proxy with nowhere to send it.
 */
export function resolveUpstreams(push: PushContext, request: SidecarRequest): ResolvedUpstream[] {
  const sorted = [...request.upstreams].sort((a, b) =>
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
    out.push({ localPort: u.localPort, service, port, clusters: clusterTargets(service, port) });
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
      clusters: clusterTargets(service, port),
      listenerNames: names.sort(compareStrings),
    });
  }
  return out;
}

function routeName(target: ServiceTarget): string {
  return routeConfigName(target.service.name, target.service.namespace, target.port.port);
}

function defaultCluster(target: ServiceTarget): string {
  return target.clusters[0]!.name;
}

/** Peers reach local instances through `inbound|<port>` with mTLS. */
function sidecarInboundListeners(ctx: SidecarContext): Emitted[] {
  return ctx.inbound.map((entry) => ({
    kind: "listeners",
    body: inboundListener(entry, ctx.request.hostAddress, ctx.push.view.trustDomain),
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
  return ctx.upstreams.map((u) => ({
    kind: "listeners",
    body: outboundListener(u.localPort, {
      protocol: u.port.protocol,
      cluster: defaultCluster(u),
      routeConfig: routeName(u),
    }),
  }));
}

/** HTTP upstreams route through RDS; the route timeout is off so gRPC streams live on. */
function sidecarOutboundRoutes(ctx: SidecarContext): Emitted[] {
  return ctx.upstreams.filter((u) => isHttp(u.port.protocol)).map((u) => ({
    kind: "routes",
    body: shared(
      ctx.push,
      `sidecar route ${routeName(u)}`,
      () => routeConfiguration(routeName(u), ["*"], defaultCluster(u), { timeoutMs: 0 }),
    ),
  }));
}

/** EDS clusters with mTLS that checks the peers' exact SPIFFE IDs. */
function sidecarOutboundClusters(ctx: SidecarContext): Emitted[] {
  const timeout = ctx.settings.connectTimeoutMs;
  return ctx.upstreams.flatMap((u) =>
    u.clusters.map((c): Emitted => ({
      kind: "clusters",
      body: shared(ctx.push, `sidecar cluster ${c.name} ${timeout}`, () =>
        edsCluster(c.name, {
          connectTimeoutMs: timeout,
          transportSocket: upstreamMtls(
            ctx.push.view.trustDomain,
            serviceIdentities(ctx.push, u.service),
          ),
          http2: usesHttp2(u.port.protocol),
        })),
    }))
  );
}

/** Healthy peers at their sidecar's inbound port; peers without a sidecar cannot speak mTLS. */
function sidecarOutboundEndpoints(ctx: SidecarContext): Emitted[] {
  return ctx.upstreams.flatMap((u) =>
    u.clusters.map((c): Emitted => ({
      kind: "endpoints",
      body: shared(ctx.push, `sidecar endpoints ${c.name}`, () =>
        clusterLoadAssignment(
          c.name,
          liveEndpoints(ctx.push, u, c).flatMap((e): LbHost[] =>
            e.inboundPort === null
              ? []
              : [{ address: e.address, port: e.inboundPort, locality: e.locality }]
          ),
        )),
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
      () => routeConfiguration(routeName(t), t.listenerNames, defaultCluster(t), { prefix: "" }),
    ),
  }));
}

/** Plaintext EDS clusters: grpc-js-xds clients dial with insecure channel credentials. */
function proxylessClusters(ctx: ProxylessContext): Emitted[] {
  return ctx.targets.flatMap((t) =>
    t.clusters.map((c): Emitted => ({
      kind: "clusters",
      body: shared(ctx.push, `proxyless cluster ${c.name} ${ctx.settings.connectTimeoutMs}`, () =>
        edsCluster(c.name, { connectTimeoutMs: ctx.settings.connectTimeoutMs })),
    }))
  );
}

/** Healthy instances at their app port. */
function proxylessEndpoints(ctx: ProxylessContext): Emitted[] {
  return ctx.targets.flatMap((t) =>
    t.clusters.map((c): Emitted => ({
      kind: "endpoints",
      body: shared(ctx.push, `proxyless endpoints ${c.name}`, () =>
        clusterLoadAssignment(
          c.name,
          liveEndpoints(ctx.push, t, c).map((e) => ({
            address: e.address,
            port: e.port,
            locality: e.locality,
          })),
        )),
    }))
  );
}

/** The table of contents of a proxyless gRPC client's configuration. */
export const PROXYLESS_GENERATORS: readonly Generator<ProxylessContext>[] = [
  { name: "api listeners", generate: proxylessListeners },
  { name: "routes", generate: proxylessRoutes },
  { name: "clusters", generate: proxylessClusters },
  { name: "endpoints", generate: proxylessEndpoints },
];
