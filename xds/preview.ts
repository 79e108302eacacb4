/**
 * What the push pipeline tells operators without pushing: a dry run of a
 * policy change (which proxy configurations would differ, resource by
 * resource, with diffs) and `explain` (which policies apply to a proxy,
 * and why). Both read the mesh view; neither stores nor sends anything.
 */
import { proxylessGaps } from "../core/policy/proxyless_gaps.ts";
import { jsonDiff } from "../core/json_diff.ts";
import {
  explain,
  indexPolicies,
  type PolicyIndex,
  type ProxyPolicies,
  type ServiceRef,
  trafficRouteFor,
} from "../core/policy/match.ts";
import { type AnyPolicy, policyKey, type PolicySet } from "../core/policy/model.ts";
import type { ProxyChange, ResourceChange } from "../policy/service.ts";
import { type ProxySnapshot, RESOURCE_KINDS, type UpstreamEntry } from "./generate/model.ts";
import type { SidecarSetup } from "./mesh_view.ts";

/** A proxy configuration a dry run compares: its snapshot now and under the proposed policies. */
export interface PreviewTarget {
  kind: "sidecar" | "proxyless";
  /** The node of a sidecar; the namespace of proxyless clients. */
  target: string;
  /** Connected stream ids served this configuration. */
  connected: string[];
  /** The sidecar's setup; `undefined` for proxyless clients. */
  setup: SidecarSetup | undefined;
  now: () => ProxySnapshot;
  proposed: () => ProxySnapshot;
}

/**
 * Every proxy configuration that would differ if the mesh's policies went
 * from `current` to `proposed`, with the resources that would change. Only
 * targets the changed policies can touch are generated.
 */
export function previewPolicies(
  current: PolicySet,
  proposed: PolicySet,
  targets: Iterable<PreviewTarget>,
): ProxyChange[] {
  const keyOf = (p: AnyPolicy) => policyKey(p.kind, p.metadata.namespace, p.metadata.name);
  const before = new Map(allPolicies(current).map((p) => [keyOf(p), p]));
  const after = new Map(allPolicies(proposed).map((p) => [keyOf(p), p]));
  const changedKeys = [...new Set([...before.keys(), ...after.keys()])].filter((k) => {
    const a = before.get(k);
    const b = after.get(k);
    return !a || !b || jsonDiff(a.spec, b.spec).length > 0 ||
      jsonDiff(a.metadata.labels, b.metadata.labels).length > 0;
  });
  const affected = affectedBy(current, proposed, changedKeys);
  const out: ProxyChange[] = [];
  for (const t of targets) {
    if (!affected(t.kind, t.setup)) continue;
    const changes = snapshotChanges(t.now(), t.proposed());
    if (changes.length === 0) continue;
    out.push({ kind: t.kind, target: t.target, connected: [...t.connected].sort(), changes });
  }
  return out.sort((a, b) => a.kind.localeCompare(b.kind) || a.target.localeCompare(b.target));
}

/**
 * Which configurations a change from `before` to `after` of the policies
 * `keys` can alter: the sidecars that send to or serve a service those
 * policies name (or, through a TrafficRoute, send to it), the proxyless
 * clients when a client-side policy changed, and everyone when MeshConfig
 * did. A sidecar whose node is unknown (`setup` undefined) counts as affected.
 */
function affectedBy(
  before: PolicySet,
  after: PolicySet,
  keys: readonly string[],
): (kind: "sidecar" | "proxyless", setup: SidecarSetup | undefined) => boolean {
  const lookup = (set: PolicySet) =>
    new Map(
      allPolicies(set).map((p) => [policyKey(p.kind, p.metadata.namespace, p.metadata.name), p]),
    );
  const old = lookup(before);
  const now = lookup(after);
  // Client-side kinds shape what a proxy sends; server-side kinds what a sidecar receives.
  const sent = new Set<string>();
  const served = new Set<string>();
  const namespaces = new Set<string>();
  let mesh = false;
  for (const key of keys) {
    for (const p of [old.get(key), now.get(key)]) {
      if (!p) continue;
      const ns = p.metadata.namespace;
      if (p.kind === "MeshConfig") mesh = true;
      else if (p.kind === "TrafficRoute" || p.kind === "DestinationPolicy") {
        sent.add(`${ns}/${p.spec.service}`);
      } else if (p.spec.service === undefined) namespaces.add(ns);
      else served.add(`${ns}/${p.spec.service}`);
    }
  }
  const indexes = [indexPolicies(before), indexPolicies(after)];
  return (kind, setup) => {
    if (mesh) return true;
    if (kind === "proxyless") return sent.size > 0;
    if (!setup) return true;
    for (const u of setup.upstreams) {
      if (sent.has(`${u.namespace}/${u.service}`)) return true;
      for (const index of indexes) {
        for (const d of routeDestinations(index, u)) if (sent.has(d)) return true;
      }
    }
    return setup.inbound.some((e) =>
      served.has(`${e.namespace}/${e.service}`) || namespaces.has(e.namespace)
    );
  };
}

/** What `explain` needs to know about one proxy. */
export interface ExplainTarget {
  id: string;
  node: string;
  kind: "sidecar" | "proxyless";
}

/**
 * The policies that apply to a proxy and why: a sidecar through its
 * upstreams and inbound instances, a proxyless client through every service
 * it may dial (those with a gRPC or HTTP/2 port).
 */
export function explainProxy(
  target: ExplainTarget,
  mesh: {
    services: readonly {
      namespace: string;
      name: string;
      ports: readonly { protocol: string }[];
    }[];
    policies: PolicySet;
    setup: SidecarSetup | undefined;
    /** Proxyless: the gRPC services with instances on the node, which its proxyless servers serve. */
    served?: readonly ServiceRef[];
  },
): ProxyPolicies | null {
  let services: { outbound: ServiceRef[]; inbound: ServiceRef[] };
  if (target.kind === "proxyless") {
    services = {
      outbound: mesh.services
        .filter((s) => s.ports.some((p) => p.protocol === "grpc" || p.protocol === "http2"))
        .map((s) => ({ namespace: s.namespace, service: s.name })),
      inbound: uniqueRefs(mesh.served ?? []),
    };
  } else {
    if (!mesh.setup) return null;
    services = {
      outbound: uniqueRefs(mesh.setup.upstreams),
      inbound: uniqueRefs(mesh.setup.inbound),
    };
  }
  const index = indexPolicies(mesh.policies);
  return {
    id: target.id,
    node: target.node,
    kind: target.kind,
    ...services,
    policies: explain(index, services),
    ...(target.kind === "proxyless" ? { notHonoured: proxylessGaps(index, services) } : {}),
  };
}

/** Each service once, in first-seen order (several instances of one service share a node). */
function uniqueRefs(entries: readonly { namespace: string; service: string }[]): ServiceRef[] {
  const seen = new Map<string, ServiceRef>();
  for (const e of entries) {
    const key = `${e.namespace}/${e.service}`;
    if (!seen.has(key)) seen.set(key, { namespace: e.namespace, service: e.service });
  }
  return [...seen.values()];
}

function allPolicies(set: PolicySet | undefined): AnyPolicy[] {
  if (!set) return [];
  return [
    ...set.trafficRoutes,
    ...set.destinationPolicies,
    ...set.authorizationPolicies,
    ...set.rateLimits,
    ...(set.meshConfig ? [set.meshConfig] : []),
  ];
}

/** The services (`namespace/name`) a TrafficRoute of `upstream` splits or mirrors to. */
function routeDestinations(index: PolicyIndex, upstream: UpstreamEntry): string[] {
  const route = trafficRouteFor(index, upstream.namespace, upstream.service);
  if (!route) return [];
  const out: string[] = [];
  for (const rule of route.spec.rules) {
    for (const d of [...rule.split ?? [], ...rule.mirror ? [rule.mirror] : []]) {
      out.push(`${d.namespace ?? upstream.namespace}/${d.service ?? upstream.service}`);
    }
  }
  return out;
}

/** What differs between two snapshots of one proxy, resource by resource. */
function snapshotChanges(before: ProxySnapshot, after: ProxySnapshot): ResourceChange[] {
  const out: ResourceChange[] = [];
  for (const type of RESOURCE_KINDS) {
    const was = new Map(before[type].map((r) => [r.name, r]));
    const now = new Map(after[type].map((r) => [r.name, r]));
    for (const name of [...new Set([...was.keys(), ...now.keys()])].sort()) {
      const a = was.get(name);
      const b = now.get(name);
      if (!a) out.push({ type, name, op: "added" });
      else if (!b) out.push({ type, name, op: "removed" });
      else if (a.version !== b.version) {
        out.push({ type, name, op: "changed", diff: jsonDiff(a.body, b.body) });
      }
    }
  }
  return out;
}
