/**
 * The "match" step: which policies apply to a service, and so to a proxy.
 * The xDS generators use it to build configuration and `explain` (REST
 * `GET /v1/proxies/{id}/policies`, `ironmesh explain`) uses it to tell an
 * operator why, so the two can never disagree.
 *
 * Client-side kinds (TrafficRoute, DestinationPolicy) shape the traffic a
 * proxy sends to a service; server-side kinds (AuthorizationPolicy,
 * RateLimit) guard the traffic a sidecar receives for a local instance.
 * MeshConfig applies to every proxy. A service has at most one TrafficRoute,
 * one DestinationPolicy and one RateLimit (validation refuses a second), and
 * any number of AuthorizationPolicies: its own and its namespace's.
 */
import type { ProxylessGap } from "./proxyless_gaps.ts";
import type { PolicyKind, PolicySet } from "./model.ts";
import type { Policy } from "./model.ts";

/** `<namespace>/<service>`. */
function key(namespace: string, service: string): string {
  return `${namespace}/${service}`;
}

/** A {@link PolicySet} indexed by destination service; build once per push. */
export interface PolicyIndex {
  readonly set: PolicySet;
  readonly trafficRoute: ReadonlyMap<string, Policy<"TrafficRoute">>;
  readonly destinationPolicy: ReadonlyMap<string, Policy<"DestinationPolicy">>;
  readonly rateLimit: ReadonlyMap<string, Policy<"RateLimit">>;
  /** Service-specific policies by `<namespace>/<service>`, namespace-wide ones by `<namespace>/`. */
  readonly authorization: ReadonlyMap<string, readonly Policy<"AuthorizationPolicy">[]>;
}

function firstByService<K extends "TrafficRoute" | "DestinationPolicy" | "RateLimit">(
  policies: readonly Policy<K>[],
): Map<string, Policy<K>> {
  const out = new Map<string, Policy<K>>();
  for (const p of policies) {
    const k = key(p.metadata.namespace, p.spec.service);
    // The set is sorted by name, so the first name wins should two ever coexist.
    if (!out.has(k)) out.set(k, p);
  }
  return out;
}

/** Indexes `set`. */
export function indexPolicies(set: PolicySet): PolicyIndex {
  const authorization = new Map<string, Policy<"AuthorizationPolicy">[]>();
  for (const p of set.authorizationPolicies) {
    const k = key(p.metadata.namespace, p.spec.service ?? "");
    const list = authorization.get(k);
    if (list) list.push(p);
    else authorization.set(k, [p]);
  }
  return {
    set,
    trafficRoute: firstByService(set.trafficRoutes),
    destinationPolicy: firstByService(set.destinationPolicies),
    rateLimit: firstByService(set.rateLimits),
    authorization,
  };
}

/** The TrafficRoute of a service, if any. */
export function trafficRouteFor(
  index: PolicyIndex,
  namespace: string,
  service: string,
): Policy<"TrafficRoute"> | undefined {
  return index.trafficRoute.get(key(namespace, service));
}

/** The DestinationPolicy of a service, if any. */
export function destinationPolicyFor(
  index: PolicyIndex,
  namespace: string,
  service: string,
): Policy<"DestinationPolicy"> | undefined {
  return index.destinationPolicy.get(key(namespace, service));
}

/** The RateLimit of a service, if any. */
export function rateLimitFor(
  index: PolicyIndex,
  namespace: string,
  service: string,
): Policy<"RateLimit"> | undefined {
  return index.rateLimit.get(key(namespace, service));
}

/** The AuthorizationPolicies guarding a service: namespace-wide ones first, each group by name. */
export function authorizationPoliciesFor(
  index: PolicyIndex,
  namespace: string,
  service: string,
): Policy<"AuthorizationPolicy">[] {
  return [
    ...index.authorization.get(key(namespace, "")) ?? [],
    ...index.authorization.get(key(namespace, service)) ?? [],
  ];
}

/** A service as a proxy relates to it. */
export interface ServiceRef {
  namespace: string;
  service: string;
}

/** What a proxy sends to and receives for: the input of {@link explain}. */
export interface ProxyServices {
  /** Services it sends to (a sidecar's upstreams; every gRPC service for a proxyless client). */
  outbound: readonly ServiceRef[];
  /** Services of the instances behind it (a sidecar's inbound listeners). */
  inbound: readonly ServiceRef[];
}

/** One policy that applies to a proxy, and why. */
export interface AppliedPolicy {
  kind: PolicyKind;
  namespace: string;
  name: string;
  revision: number;
  /** `outbound` (traffic it sends), `inbound` (traffic it receives) or `mesh`. */
  direction: "outbound" | "inbound" | "mesh";
  /** The service it applies through; `""` for MeshConfig. */
  service: string;
  reason: string;
}

function applied(
  p: Policy,
  direction: AppliedPolicy["direction"],
  service: ServiceRef | null,
  reason: string,
): AppliedPolicy {
  return {
    kind: p.kind,
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    revision: p.metadata.revision,
    direction,
    service: service ? `${service.service}.${service.namespace}` : "",
    reason,
  };
}

/**
 * Every policy that shapes a proxy's configuration, and why, in a stable
 * order: MeshConfig, then outbound services, then inbound ones.
 */
export function explain(index: PolicyIndex, proxy: ProxyServices): AppliedPolicy[] {
  const out: AppliedPolicy[] = [];
  const mesh = index.set.meshConfig;
  if (mesh) out.push(applied(mesh, "mesh", null, "MeshConfig applies to every proxy"));
  const seen = new Set<string>();
  for (const s of proxy.outbound) {
    const k = key(s.namespace, s.service);
    if (seen.has(`out ${k}`)) continue;
    seen.add(`out ${k}`);
    const host = `${s.service}.${s.namespace}`;
    const route = trafficRouteFor(index, s.namespace, s.service);
    if (route) {
      out.push(applied(route, "outbound", s, `routes requests this proxy sends to ${host}`));
    }
    const dest = destinationPolicyFor(index, s.namespace, s.service);
    if (dest) {
      out.push(applied(dest, "outbound", s, `sets subsets and load balancing for ${host}`));
    }
  }
  for (const s of proxy.inbound) {
    const k = key(s.namespace, s.service);
    if (seen.has(`in ${k}`)) continue;
    seen.add(`in ${k}`);
    const host = `${s.service}.${s.namespace}`;
    for (const p of authorizationPoliciesFor(index, s.namespace, s.service)) {
      // A namespace-wide policy guards every service served here: list it once.
      if (p.spec.service === undefined) {
        if (seen.has(`ns ${p.metadata.namespace}/${p.metadata.name}`)) continue;
        seen.add(`ns ${p.metadata.namespace}/${p.metadata.name}`);
      }
      const scope = p.spec.service === undefined
        ? `every service of namespace ${s.namespace}`
        : host;
      out.push(
        applied(p, "inbound", s, `${p.spec.action}s requests to ${scope}, served by this proxy`),
      );
    }
    const limit = rateLimitFor(index, s.namespace, s.service);
    if (limit) out.push(applied(limit, "inbound", s, `limits requests to ${host} at this proxy`));
  }
  return out;
}

/** The answer of `GET /v1/proxies/{id}/policies` and `ironmesh explain`. */
export interface ProxyPolicies extends ProxyServices {
  /** The stream id when connected, else the node name. */
  id: string;
  node: string;
  kind: "sidecar" | "proxyless";
  policies: AppliedPolicy[];
  /** Proxyless only: what of those policies it cannot honour (`proxyless_gaps.ts`). */
  notHonoured?: ProxylessGap[];
}
