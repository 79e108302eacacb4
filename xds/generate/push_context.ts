/**
 * The push context: a {@link MeshView} indexed once per push and shared by
 * every proxy's generation (Istio's `PushContext`), so that per-proxy work
 * is lookups, not scans of the whole registry, and a resource that many
 * proxies share (a service's cluster and endpoints) is built and hashed once
 * per push rather than once per proxy.
 */
import { indexPolicies, type PolicyIndex } from "../../core/policy/match.ts";
import { EMPTY_POLICY_SET, type MeshConfigSpec } from "../../core/policy/model.ts";
import { compareStrings, contentVersion } from "./canonical.ts";
import type { JsonObject, MeshEndpoint, MeshService, MeshServicePort, MeshView } from "./model.ts";

/** A {@link MeshView} with its lookups; build it with {@link buildPushContext}. */
export interface PushContext {
  readonly view: MeshView;
  /** Services sorted by namespace, then name. */
  readonly services: readonly MeshService[];
  /** Key: {@link serviceKey}. */
  readonly serviceByKey: ReadonlyMap<string, MeshService>;
  /** Every endpoint of a service, sorted (see {@link compareEndpoints}). Key: {@link serviceKey}. */
  readonly endpointsByService: ReadonlyMap<string, readonly MeshEndpoint[]>;
  /** The view's policies by service: the match step that `explain` shares (`core/policy/match.ts`). */
  readonly policies: PolicyIndex;
  /** The MeshConfig's spec; `{}` (every default) when there is none. */
  readonly mesh: MeshConfigSpec;
  /** Values built once per push; see {@link shared}. */
  readonly memo: Map<string, unknown>;
  /** Content versions of bodies already hashed in this push; see {@link versionOf}. */
  readonly versions: WeakMap<object, string>;
}

/** `<namespace>/<name>`: the key of a service in the push context's maps. */
export function serviceKey(name: string, namespace: string): string {
  return `${namespace}/${name}`;
}

/** A total order of endpoints, so that any input order gives the same output. */
export function compareEndpoints(a: MeshEndpoint, b: MeshEndpoint): number {
  return compareStrings(a.locality.region, b.locality.region) ||
    compareStrings(a.locality.zone, b.locality.zone) ||
    compareStrings(a.address, b.address) ||
    a.port - b.port ||
    (a.inboundPort ?? 0) - (b.inboundPort ?? 0) ||
    compareStrings(a.node, b.node) ||
    compareStrings(a.identity, b.identity) ||
    Number(b.healthy) - Number(a.healthy);
}

/** Indexes `view` for a push. */
export function buildPushContext(view: MeshView): PushContext {
  const services = [...view.services].sort((a, b) =>
    compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name)
  );
  const serviceByKey = new Map<string, MeshService>();
  for (const s of services) {
    const key = serviceKey(s.name, s.namespace);
    if (!serviceByKey.has(key)) serviceByKey.set(key, s);
  }
  const endpointsByService = new Map<string, MeshEndpoint[]>();
  for (const e of view.endpoints) {
    const key = serviceKey(e.service, e.namespace);
    const list = endpointsByService.get(key);
    if (list) list.push(e);
    else endpointsByService.set(key, [e]);
  }
  for (const list of endpointsByService.values()) list.sort(compareEndpoints);
  const policies = indexPolicies(view.policies ?? EMPTY_POLICY_SET);
  return {
    view,
    services: [...serviceByKey.values()],
    serviceByKey,
    endpointsByService,
    policies,
    mesh: policies.set.meshConfig?.spec ?? {},
    memo: new Map(),
    versions: new WeakMap(),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * The value under `key` in this push, built by `build` the first time. The
 * key must name everything the value depends on beyond the push's view.
 * The value is frozen: it is shared by the snapshots of many proxies.
 */
export function shared<T>(push: PushContext, key: string, build: () => T): T {
  if (push.memo.has(key)) return push.memo.get(key) as T;
  const value = deepFreeze(build());
  push.memo.set(key, value);
  return value;
}

/** The content version of `body`, hashed once per push for a shared body. */
export function versionOf(push: PushContext, body: JsonObject): string {
  const known = push.versions.get(body);
  if (known !== undefined) return known;
  const version = contentVersion(body);
  push.versions.set(body, version);
  return version;
}

/** The ports of `service`, lowest first. */
export function sortedPorts(service: MeshService): MeshServicePort[] {
  return [...service.ports].sort((a, b) => a.port - b.port);
}
