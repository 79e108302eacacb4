/**
 * DestinationPolicy in Envoy terms: which settings a cluster gets (subsets,
 * load balancing, connection pool, outlier detection), the hash a route
 * feeds a hashing load balancer, and the priorities of locality-aware
 * endpoints. The policy is found by the shared match step
 * (`core/policy/match.ts`), never here.
 *
 * Sidecars and proxyless clients get the same cluster fields, except that
 * grpc-js-xds 1.14 ignores consecutive-error outlier detection, so a
 * proxyless cluster gets its failure-percentage equivalent instead.
 */
import { destinationPolicyFor } from "../../core/policy/match.ts";
import {
  type ConnectionPool,
  durationMs,
  type LoadBalancer,
  type LocalitySettings,
  type OutlierDetection,
} from "../../core/policy/model.ts";
import { duration } from "./envoy.ts";
import type { JsonObject, Locality, MeshService, MeshServicePort, ProxyRequest } from "./model.ts";
import { outboundClusterName } from "./names.ts";
import type { PushContext } from "./push_context.ts";

/** Who gets the configuration: an Envoy sidecar or a grpc-js-xds client. */
export type ProxyKind = ProxyRequest["kind"];

/**
 * One cluster of a service port: the whole port, or one subset of it. It
 * names the service rather than holding it, because a route may split to a
 * service the registry does not know (yet); such a cluster has no endpoints.
 */
export interface ClusterTarget {
  /** `outbound|<port>|<subset>|<service>.<namespace>`. */
  name: string;
  namespace: string;
  service: string;
  port: number;
  /** The subset's name; `""` for the whole port. */
  subset: string;
  /**
   * Endpoints must carry all these labels; `{}` selects every one, and
   * `null` none: the subset is not defined, so a route to it fails rather
   * than reaching instances it never meant.
   */
  selector: Readonly<Record<string, string>> | null;
}

/** The cluster of one subset (`""`: the whole port) of a service port. */
export function clusterTarget(
  push: PushContext,
  namespace: string,
  service: string,
  port: number,
  subset: string,
): ClusterTarget {
  return {
    name: outboundClusterName(service, namespace, port, subset),
    namespace,
    service,
    port,
    subset,
    selector: subsetSelector(push, namespace, service, subset),
  };
}

/** The clusters of a service port: the whole port, then each subset of its DestinationPolicy. */
export function clusterTargets(
  push: PushContext,
  service: MeshService,
  port: MeshServicePort,
): ClusterTarget[] {
  return ["", ...subsetNames(push, service.namespace, service.name)].map((subset) =>
    clusterTarget(push, service.namespace, service.name, port.port, subset)
  );
}

/** The traffic settings of one cluster, after overrides. */
export interface TrafficSettings {
  loadBalancer?: LoadBalancer;
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierDetection;
}

/**
 * The settings of one cluster: the service-wide ones, overridden by the
 * port's, then by the subset's. Each of `loadBalancer`, `connectionPool`
 * and `outlierDetection` is replaced whole, never merged field by field
 * (Istio's reading), so an override reads as complete on its own.
 */
export function trafficSettings(
  push: PushContext,
  namespace: string,
  service: string,
  port: number,
  subset: string,
): TrafficSettings {
  const spec = destinationPolicyFor(push.policies, namespace, service)?.spec;
  if (!spec) return {};
  const layers = [
    spec,
    spec.ports?.find((p) => p.port === port),
    subset === "" ? undefined : spec.subsets?.find((s) => s.name === subset),
  ];
  const out: TrafficSettings = {};
  for (const layer of layers) {
    if (layer?.loadBalancer) out.loadBalancer = layer.loadBalancer;
    if (layer?.connectionPool) out.connectionPool = layer.connectionPool;
    if (layer?.outlierDetection) out.outlierDetection = layer.outlierDetection;
  }
  return out;
}

function subsetNames(push: PushContext, namespace: string, service: string): string[] {
  const spec = destinationPolicyFor(push.policies, namespace, service)?.spec;
  return (spec?.subsets ?? []).map((s) => s.name);
}

/** The labels that select a subset's endpoints (see {@link ClusterTarget.selector}). */
function subsetSelector(
  push: PushContext,
  namespace: string,
  service: string,
  subset: string,
): Readonly<Record<string, string>> | null {
  if (subset === "") return {};
  const spec = destinationPolicyFor(push.policies, namespace, service)?.spec;
  const labels = spec?.subsets?.find((s) => s.name === subset)?.labels;
  // A copy: targets are shared and frozen, and the policy is the caller's.
  return labels ? { ...labels } : null;
}

/** The service's locality settings when locality-aware routing is on, else `undefined`. */
export function enabledLocality(
  push: PushContext,
  namespace: string,
  service: string,
): LocalitySettings | undefined {
  const locality = destinationPolicyFor(push.policies, namespace, service)?.spec.locality;
  return locality?.enabled ? locality : undefined;
}

/** The connect timeout of a cluster: the connection pool's, else the server's. */
export function connectTimeoutMs(settings: TrafficSettings, fallbackMs: number): number {
  const text = settings.connectionPool?.connectTimeout;
  return text === undefined ? fallbackMs : durationMs(text);
}

/** Envoy's default, used when outlier detection is on but names no error count. */
const DEFAULT_CONSECUTIVE_ERRORS = 5;

/**
 * gRPC ejects a host whose failure percentage is strictly greater than the
 * threshold; 99 ejects a host whose every call in the interval failed (at
 * most 100 calls), the closest gRPC has to "N failures in a row".
 */
const GRPC_FAILURE_THRESHOLD = 99;

function lbFields(lb: LoadBalancer | undefined): JsonObject {
  // ROUND_ROBIN is the default; written out it would be dropped on the wire anyway.
  if (!lb || lb.algorithm === "ROUND_ROBIN") return {};
  if (lb.algorithm === "RING_HASH") {
    return {
      lb_policy: "RING_HASH",
      ...(lb.minRingSize !== undefined
        ? { ring_hash_lb_config: { minimum_ring_size: lb.minRingSize } }
        : {}),
    };
  }
  // LEAST_REQUEST, RANDOM, MAGLEV: grpc-js-xds NACKs these, and that is intended: a
  // proxyless client must not silently balance otherwise than asked.
  return { lb_policy: lb.algorithm };
}

/**
 * Envoy lets 3 retries per cluster run at once and drops the rest without a
 * word (CircuitBreakers.Thresholds.max_retries); Istio's sidecars lift the
 * limit to the largest uint32 so that a route's `retries` hold for every
 * request, and so do ours unless the policy sets `maxRetries`.
 */
const UNLIMITED_RETRIES = 4_294_967_295;

function circuitBreakers(pool: ConnectionPool | undefined, kind: ProxyKind): JsonObject {
  const threshold: JsonObject = {
    ...(pool?.maxConnections !== undefined ? { max_connections: pool.maxConnections } : {}),
    ...(pool?.maxPendingRequests !== undefined
      ? { max_pending_requests: pool.maxPendingRequests }
      : {}),
    ...(pool?.maxRequests !== undefined ? { max_requests: pool.maxRequests } : {}),
    ...(pool?.maxRetries !== undefined
      ? { max_retries: pool.maxRetries }
      // grpc-js-xds reads only max_requests.
      : kind === "sidecar"
      ? { max_retries: UNLIMITED_RETRIES }
      : {}),
  };
  return Object.keys(threshold).length === 0
    ? {}
    : { circuit_breakers: { thresholds: [threshold] } };
}

function outlierDetection(od: OutlierDetection | undefined, kind: ProxyKind): JsonObject {
  if (!od) return {};
  const errors = od.consecutiveErrors ??
    (od.consecutiveGatewayErrors === undefined ? DEFAULT_CONSECUTIVE_ERRORS : undefined);
  const gateway = od.consecutiveGatewayErrors;
  const common: JsonObject = {
    ...(od.interval !== undefined ? { interval: duration(durationMs(od.interval)) } : {}),
    ...(od.baseEjectionTime !== undefined
      ? { base_ejection_time: duration(durationMs(od.baseEjectionTime)) }
      : {}),
    // A whole percentage of hosts; rounding down never ejects more than asked.
    ...(od.maxEjectionPercent !== undefined
      ? { max_ejection_percent: Math.floor(od.maxEjectionPercent) }
      : {}),
    // Success-rate ejection is on by default in Envoy and gRPC; the policy never asks for it.
    enforcing_success_rate: 0,
  };
  if (kind === "proxyless") {
    // grpc-js counts every call that ends other than OK as a failure, gateway errors included.
    const volume = Math.min(...[errors, gateway].filter((n) => n !== undefined));
    return {
      outlier_detection: {
        ...common,
        failure_percentage_threshold: GRPC_FAILURE_THRESHOLD,
        enforcing_failure_percentage: 100,
        failure_percentage_minimum_hosts: 1,
        failure_percentage_request_volume: volume,
      },
    };
  }
  return {
    outlier_detection: {
      // Envoy counts 5xx in a row by default; a policy naming only gateway errors turns that off.
      ...(errors !== undefined ? { consecutive_5xx: errors } : { enforcing_consecutive_5xx: 0 }),
      // Gateway-error ejection is off by default in Envoy; naming a count turns it on.
      ...(gateway !== undefined
        ? { consecutive_gateway_failure: gateway, enforcing_consecutive_gateway_failure: 100 }
        : {}),
      ...common,
    },
  };
}

/** The Cluster fields of `settings`: load balancing, circuit breakers, outlier detection. */
export function clusterTrafficFields(settings: TrafficSettings, kind: ProxyKind): JsonObject {
  return {
    ...lbFields(settings.loadBalancer),
    ...circuitBreakers(settings.connectionPool, kind),
    ...outlierDetection(settings.outlierDetection, kind),
  };
}

/**
 * The route's `hash_policy` that feeds a RING_HASH or MAGLEV cluster. gRPC
 * hashes only headers and its channel id: a source-IP hash becomes the
 * channel id (one client channel sticks to one host, as one source address
 * does), and a cookie hash has no gRPC form, so proxyless calls hash at
 * random.
 */
export function hashPolicies(lb: LoadBalancer | undefined, kind: ProxyKind): JsonObject[] {
  if (!lb?.hash || (lb.algorithm !== "RING_HASH" && lb.algorithm !== "MAGLEV")) return [];
  const { header, cookie, sourceIp } = lb.hash;
  if (header !== undefined) return [{ header: { header_name: header } }];
  if (cookie !== undefined) {
    if (kind === "proxyless") return [];
    return [{
      cookie: {
        name: cookie.name,
        ...(cookie.ttl !== undefined ? { ttl: duration(durationMs(cookie.ttl)) } : {}),
        ...(cookie.path ? { path: cookie.path } : {}),
      },
    }];
  }
  if (sourceIp) {
    return kind === "proxyless"
      ? [{ filter_state: { key: "io.grpc.channel_id" } }]
      : [{ connection_properties: { source_ip: true } }];
  }
  return [];
}

/**
 * The `hash_policy` of a `tcp_proxy` in front of a RING_HASH or MAGLEV
 * cluster. Without one, Envoy's TCP proxy hands the load balancer no hash
 * and it picks a host at random (TcpProxy.hash_policy in
 * api/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto); a
 * connection has no headers or cookies, so it hashes on the client's
 * address whatever the policy's key (validation warns about that).
 */
export function tcpHashPolicies(lb: LoadBalancer | undefined): JsonObject[] {
  return lb?.algorithm === "RING_HASH" || lb?.algorithm === "MAGLEV" ? [{ source_ip: {} }] : [];
}

/**
 * The priority of each locality as seen from `caller`: its zone first, then
 * the rest of its region, then the failover regions of its region in the
 * order listed, then everything else. Priorities count from 0 without gaps
 * over `present`, the localities that have endpoints, because grpc-js-xds
 * refuses a priority without its predecessor (and Envoy expects none
 * skipped). A caller of unknown region prefers nothing: all get priority 0.
 */
export function localityPriorities(
  settings: LocalitySettings,
  caller: Locality,
  present: readonly Locality[],
): (locality: Locality) => number {
  if (caller.region === "") return () => 0;
  const failover = [
    ...new Set(
      (settings.failover ?? []).filter((f) => f.from === caller.region && f.to !== caller.region)
        .map((f) => f.to),
    ),
  ];
  const rank = (l: Locality): number => {
    if (l.region === caller.region) return caller.zone !== "" && l.zone === caller.zone ? 0 : 1;
    const i = failover.indexOf(l.region);
    return 2 + (i < 0 ? failover.length : i);
  };
  const ranks = [...new Set(present.map(rank))].sort((a, b) => a - b);
  return (l) => ranks.indexOf(rank(l));
}
