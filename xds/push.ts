/**
 * The push pipeline: keyed change events (`core/mesh_change.ts`) →
 * debounce (wait for quiet, never longer than a maximum; `debounce.ts`) →
 * the in-memory mesh view re-reads only the keys they name and says which
 * inputs moved (`mesh_view.ts`) → the resource cache drops what was built
 * from those inputs, and the snapshots of the proxies that used them
 * (`resource_cache.ts`) → the stream servers visit only those proxies'
 * streams and send only the resources whose version changed.
 *
 * So an endpoint-only change rebuilds the load assignments of one service
 * and reaches its subscribers as EDS only; a policy on one service touches
 * only the proxies that send to or serve it; a resource whose inputs did
 * not change keeps its body, its version and its encoded bytes; heartbeats
 * that change nothing never get here, because they commit nothing.
 */
import type { Logger } from "../core/log.ts";
import { mergeChanges, type MeshChange } from "../core/mesh_change.ts";
import type { ProxyPolicies } from "../core/policy/match.ts";
import { durationMs, EMPTY_POLICY_SET, type Policy, type PolicySet } from "../core/policy/model.ts";
import { parseSpiffeId } from "../core/spiffe_id.ts";
import type { ProxyChange } from "../policy/service.ts";
import type { Store } from "../store/store.ts";
import type { AdsServer, ProxyPeer } from "./ads_server.ts";
import { Debouncer, type Timers } from "./debounce.ts";
import { ruleProblems } from "./generate/envoy_rules.ts";
import { consistent, generateProxy } from "./generate/generate.ts";
import {
  type MeshService,
  type ProxyRequest,
  type ProxySnapshot,
  RESOURCE_KINDS,
} from "./generate/model.ts";
import { buildPushContext, type PushContext, serviceKey } from "./generate/push_context.ts";
import { type Dep, loadMeshView, type MeshState, type Trust, UNREGISTERED } from "./mesh_view.ts";
import { explainProxy, previewPolicies, type PreviewTarget } from "./preview.ts";
import { PartConflictError, PartedSnapshot } from "./proxyless_snapshot.ts";
import { ANY_DEP, CachedContext, DepCache } from "./resource_cache.ts";

/**
 * Why a push happened: a fixed set, so the metric's labels stay bounded.
 * `endpoints`: only instances changed (Istio's incremental EDS case);
 * `registry`: a service's shape or a node's setup changed.
 */
export type PushReason = "endpoints" | "registry" | "policy" | "trust";

/**
 * The reasons of a push, each once: from the inputs that moved (`deps`,
 * see `mesh_view.ts`), or, when none did, from the keys the change named.
 */
export function pushReasons(change: MeshChange, deps: ReadonlySet<Dep> = new Set()): PushReason[] {
  const reasons: PushReason[] = [];
  const moved = (test: (dep: Dep) => boolean) => [...deps].some(test);
  if (deps.size === 0) {
    if (change.services.length > 0) reasons.push("registry");
    else if (change.endpoints.length > 0 || change.nodes.length > 0) reasons.push("endpoints");
    if (change.policies.length > 0 || change.meshConfig) reasons.push("policy");
    if (change.trust) reasons.push("trust");
    return reasons;
  }
  if (moved((d) => d === "services" || d.startsWith("svc:") || d.startsWith("node:"))) {
    reasons.push("registry");
  } else if (moved((d) => d.startsWith("ep:"))) reasons.push("endpoints");
  if (moved((d) => d === "policies" || d === "mesh" || d.startsWith("pol:"))) {
    reasons.push("policy");
  }
  if (deps.has("trust")) reasons.push("trust");
  return reasons;
}

/** Options of {@link PushPipeline}. */
export interface PushOptions {
  store: Store;
  log: Logger;
  /** The mesh's trust domain and current bundle PEM. */
  trust: () => Trust;
  /** Wait this long without a change before pushing. Default: 100 ms. */
  debounceMs?: number;
  /** But never longer than this after the first change. Default: 1 s. */
  maxDelayMs?: number;
  /** Called after each push with its reason and duration. */
  pushed?: (reason: PushReason, ms: number) => void;
  /** The debounce's clock and timers. Default: the runtime's. */
  timers?: Timers;
  /**
   * After every push, compare the view with a fresh read of the store and
   * log an error naming what differs. Costs a full read per push: for
   * tests and debugging. Default: false.
   */
  selfCheck?: boolean;
  /**
   * The consistency check a snapshot must pass to be served. Default:
   * `consistent()` (`xds/generate/generate.ts`); tests pass a stand-in to
   * play a generator bug, which cannot be had on demand.
   */
  consistent?: (snapshot: ProxySnapshot) => string[];
  /**
   * Also hold every generated snapshot to Envoy's own validation rules (the
   * protoc-gen-validate annotations, `xds/generate/envoy_rules.ts`): one that
   * breaks a rule is not served, like an inconsistent one. Costs an encode
   * and a decode per new resource version: for tests and debugging.
   * Default: false.
   */
  envoyRules?: boolean;
}

/** Nothing served at all: what a proxy gets when its first snapshot cannot be served. */
const EMPTY_SNAPSHOT: ProxySnapshot = Object.freeze({
  clusters: [],
  endpoints: [],
  listeners: [],
  routes: [],
  secrets: [],
});

/** The push pipeline; the stream servers ask it for snapshots. */
export class PushPipeline {
  readonly #options: PushOptions;
  readonly #debouncer: Debouncer<MeshChange>;
  #servers: AdsServer[] = [];
  #state: MeshState | null = null;
  #context: CachedContext | null = null;
  /** Sidecar snapshots, by snapshot key. */
  readonly #snapshots = new DepCache<ProxySnapshot>();
  /** Proxyless clients' snapshots, by snapshot key, kept per service (`proxyless_snapshot.ts`). */
  readonly #proxyless = new Map<string, ProxylessEntry>();
  /** Their parts, by `<snapshot key>\u0000<service key>`. */
  readonly #parts = new DepCache<ProxySnapshot>();
  /** The snapshot last served per key: what a proxy keeps when a new one cannot be served. */
  readonly #served = new Map<string, ProxySnapshot>();
  #running: Promise<void> = Promise.resolve();
  /** Resource versions found to keep Envoy's rules (`envoyRules`): content, so checked once. */
  readonly #ruleChecked = new Set<string>();

  constructor(options: PushOptions) {
    this.#options = options;
    this.#debouncer = new Debouncer({
      merge: mergeChanges,
      fire: (change, firstAt) => {
        this.#running = this.#running.then(() => this.#push(change, firstAt)).catch((error) =>
          this.#options.log.error("Push failed: proxies keep their last configuration", { error })
        );
      },
      timing: () => this.#timing(),
      ...(options.timers ? { timers: options.timers } : {}),
    });
  }

  /** Loads the mesh view and connects the stream servers. */
  async start(servers: AdsServer[]): Promise<void> {
    this.#servers = servers;
    this.#state = await loadMeshView(this.#options.store, this.#options.trust());
    this.#context = new CachedContext(this.#state);
  }

  /** Stops pending pushes. */
  stop(): void {
    this.#debouncer.stop();
  }

  /** Records a change; the push follows once changes pause (or the maximum delay is reached). */
  changed(change: MeshChange): void {
    this.#debouncer.add(change);
  }

  /**
   * Re-reads every key the view holds or the store holds, for a view that
   * lost track of writes (another replica's, pruned from the shared log
   * before this one read them): what changed since is pushed as usual.
   */
  async reload(): Promise<void> {
    const fresh = await loadMeshView(this.#options.store, this.#options.trust());
    this.changed(mergeChanges(this.#started().keys(), fresh.keys()));
  }

  /** Pushes what is pending now, and resolves once every push so far is done. */
  async settle(): Promise<void> {
    this.#debouncer.flush();
    await this.#running;
  }

  /** The mesh's MeshConfig, or `null`. */
  meshConfig(): Policy<"MeshConfig"> | null {
    return this.#state?.policies.meshConfig ?? null;
  }

  /** Debounce settings: MeshConfig's `push` when set, else the server's flags. */
  #timing(): { debounceMs: number; maxDelayMs: number } {
    const push = this.meshConfig()?.spec.push;
    return {
      debounceMs: push?.debounce !== undefined
        ? durationMs(push.debounce)
        : this.#options.debounceMs ?? 100,
      maxDelayMs: push?.maxDelay !== undefined
        ? durationMs(push.maxDelay)
        : this.#options.maxDelayMs ?? 1_000,
    };
  }

  async #push(change: MeshChange, causedAt: number): Promise<void> {
    const start = performance.now();
    const state = this.#started();
    const deps = await state.apply(this.#options.store, change, this.#options.trust());
    if (deps.size > 0) {
      this.#context!.invalidate(deps);
      const keys = this.#snapshots.invalidate([...deps, ANY_DEP]);
      for (const part of this.#parts.invalidate([...deps, ANY_DEP])) {
        const [key, service] = part.split(PART_SEPARATOR) as [string, string];
        this.#proxyless.get(key)?.dirty.add(service);
        keys.add(key);
      }
      if (deps.has("services")) {
        for (const [key, entry] of this.#proxyless) {
          entry.reconcile = true;
          keys.add(key);
        }
      }
      const nodes = new Set<string>();
      for (const d of deps) {
        if (!d.startsWith("node:")) continue;
        const node = d.slice("node:".length);
        nodes.add(node);
        // A node that left keeps nothing here: its name may never come back.
        if (!state.sidecars.has(node)) this.#served.delete(`sidecar|${node}`);
      }
      for (const server of this.#servers) await server.push(causedAt, { keys, nodes });
    }
    const ms = performance.now() - start;
    const reasons = pushReasons(change, deps);
    for (const reason of reasons) this.#options.pushed?.(reason, ms);
    this.#options.log.debug("Pushed", { reasons, moved: deps.size, ms: Math.round(ms) });
    if (this.#options.selfCheck) {
      await this.checkView().catch((error) =>
        this.#options.log.error("The mesh view differs from the store", { error })
      );
    }
  }

  /**
   * Compares the view with a fresh read of the store; throws naming the
   * first difference. Call it when no push is pending (see {@link settle}).
   */
  async checkView(): Promise<void> {
    const state = this.#started();
    const fresh = await loadMeshView(this.#options.store, this.#options.trust());
    const a = state.fingerprint();
    const b = fresh.fingerprint();
    if (a === b) return;
    let at = 0;
    while (at < a.length && a[at] === b[at]) at++;
    throw new Error(
      `The in-memory mesh view differs from the store at character ${at}: view has "${
        a.slice(Math.max(0, at - 80), at + 80)
      }", the store "${b.slice(Math.max(0, at - 80), at + 80)}"`,
    );
  }

  #started(): MeshState {
    if (!this.#state) throw new Error("The push pipeline has not started");
    return this.#state;
  }

  /**
   * The snapshot cache key of a peer: its node for a sidecar; for proxyless
   * clients their namespace and locality, the only inputs they differ by.
   */
  snapshotKey(peer: ProxyPeer): string {
    if (peer.kind === "sidecar") return `sidecar|${peer.node}`;
    const namespace = parseSpiffeId(peer.identity)?.namespace ?? "";
    const { region, zone } = this.#started().locality(peer.node);
    return `proxyless|${namespace}|${region}|${zone}${peer.mtls ? "|mtls" : ""}`;
  }

  /**
   * A proxy's snapshot: from the cache while nothing it was built from
   * changed, else generated over the cached resources. Proxyless clients of
   * one namespace and locality share one snapshot. A sidecar gets its
   * node's setup from the registry: inbound listeners for the instances
   * that declare an inbound port, and the node's upstreams; a node not
   * registered yet gets neither until its registration is pushed.
   */
  snapshotFor(peer: ProxyPeer): ProxySnapshot {
    const key = this.snapshotKey(peer);
    if (peer.kind === "proxyless") return this.#proxylessSnapshot(key, peer);
    const cached = this.#snapshots.get(key);
    if (cached) return cached;
    const generated = this.#generate(key, peer);
    const last = this.#served.get(key);
    // Regenerated to the same content (an input moved, but not in a way this proxy sees): the
    // proxy keeps the very same snapshot, so the stream servers have nothing to look at.
    const snapshot = last && sameContent(last, generated.snapshot) ? last : generated.snapshot;
    this.#snapshots.set(key, snapshot, generated.deps);
    this.#served.set(key, snapshot);
    return snapshot;
  }

  /** A proxyless snapshot with the parts a change reached regenerated, and services added or gone. */
  #proxylessSnapshot(key: string, peer: ProxyPeer): ProxySnapshot {
    let entry = this.#proxyless.get(key);
    if (!entry) {
      entry = { parted: new PartedSnapshot(), dirty: new Set(), reconcile: true };
      this.#proxyless.set(key, entry);
    }
    if (!entry.reconcile && entry.dirty.size === 0) return entry.parted.snapshot;
    const state = this.#started();
    const next = new Map<string, ProxySnapshot | null>();
    if (entry.reconcile) {
      for (const service of entry.parted.keys()) {
        if (!state.serviceByKey.has(service)) next.set(service, null);
      }
      for (const service of state.serviceByKey.keys()) {
        if (!this.#parts.get(partKey(key, service))) entry.dirty.add(service);
      }
    }
    const request = this.#request(peer);
    for (const service of entry.dirty) {
      const found = state.serviceByKey.get(service);
      if (!found) {
        this.#parts.delete(partKey(key, service));
        next.set(service, null);
        continue;
      }
      next.set(service, this.#part(key, request, found, entry.parted.part(service)));
    }
    entry.dirty.clear();
    entry.reconcile = false;
    try {
      entry.parted.replace(next);
    } catch (error) {
      if (!(error instanceof PartConflictError)) throw error;
      this.#options.log.error("Inconsistent xDS snapshot: not served", {
        proxy: key,
        problems: [error.message],
      });
      for (const service of next.keys()) this.#parts.delete(partKey(key, service));
      for (const service of next.keys()) entry.dirty.add(service);
    }
    return entry.parted.snapshot;
  }

  /**
   * One service's part of a proxyless snapshot (`null`: nothing, as for a
   * service without a gRPC port). A part that cannot be generated or is
   * inconsistent is not served: the clients keep `last`.
   */
  #part(
    key: string,
    request: ProxyRequest,
    service: MeshService,
    last: ProxySnapshot | undefined,
  ): ProxySnapshot | null {
    const context = this.#context!;
    const id = partKey(key, serviceKey(service.name, service.namespace));
    const depth = context.tracker.begin();
    let part: ProxySnapshot;
    try {
      part = generateProxy(context.scoped(service), request);
    } catch (error) {
      context.tracker.unwind(depth);
      this.#options.log.error("Cannot generate a proxy's configuration: it keeps its last one", {
        proxy: key,
        service: id,
        error,
      });
      this.#parts.set(id, last ?? EMPTY_SNAPSHOT, new Set([ANY_DEP]));
      return last ?? null;
    }
    const deps = context.tracker.end();
    const problems = this.#problems(part);
    if (problems.length > 0) {
      this.#options.log.error("Inconsistent xDS snapshot: not served", {
        proxy: key,
        service: id,
        problems,
      });
      this.#parts.set(id, last ?? EMPTY_SNAPSHOT, new Set([ANY_DEP]));
      return last ?? null;
    }
    this.#parts.set(id, part, deps);
    return RESOURCE_KINDS.every((kind) => part[kind].length === 0) ? null : part;
  }

  #request(peer: ProxyPeer): ProxyRequest {
    const state = this.#started();
    const locality = state.locality(peer.node);
    return peer.kind === "proxyless"
      ? {
        kind: "proxyless",
        node: peer.node,
        identity: peer.identity,
        locality,
        ...(peer.mtls ? { mtls: true } : {}),
      }
      : {
        kind: "sidecar",
        node: peer.node,
        identity: peer.identity,
        locality,
        ...(state.sidecars.get(peer.node) ?? UNREGISTERED),
      };
  }

  #generate(key: string, peer: ProxyPeer): { snapshot: ProxySnapshot; deps: Set<Dep> } {
    const context = this.#context!;
    const request = this.#request(peer);
    const depth = context.tracker.begin();
    let snapshot: ProxySnapshot;
    let deps: Set<Dep>;
    try {
      snapshot = generateProxy(context, request);
      deps = context.tracker.end();
    } catch (error) {
      context.tracker.unwind(depth);
      // A generator bug (or a stored policy no generator can compile) must not stall every
      // proxy's push: this proxy keeps what it had; without that, it gets the mesh's defaults.
      this.#options.log.error("Cannot generate a proxy's configuration: it keeps its last one", {
        proxy: key,
        error,
      });
      return { snapshot: this.#fallback(key, request), deps: new Set([ANY_DEP]) };
    }
    if (peer.kind === "sidecar") deps.add(`node:${peer.node}`);
    // go-control-plane's Consistent(): every referenced route and endpoint list must exist.
    // A gap is a generator bug; serving it would break the proxy's traffic, so it keeps its last.
    const problems = this.#problems(snapshot);
    if (problems.length > 0) {
      this.#options.log.error("Inconsistent xDS snapshot: not served", {
        proxy: key,
        problems,
      });
      return { snapshot: this.#served.get(key) ?? EMPTY_SNAPSHOT, deps: new Set([ANY_DEP]) };
    }
    return { snapshot, deps };
  }

  /** Why a generated snapshot must not be served; empty when it may. */
  #problems(snapshot: ProxySnapshot): string[] {
    const problems = (this.#options.consistent ?? consistent)(snapshot);
    if (!this.#options.envoyRules) return problems;
    return [...problems, ...ruleProblems(snapshot, this.#ruleChecked)];
  }

  #fallback(key: string, request: ProxyRequest): ProxySnapshot {
    const last = this.#served.get(key);
    if (last) return last;
    try {
      return generateProxy(this.#fromScratch(EMPTY_POLICY_SET), request);
    } catch {
      return EMPTY_SNAPSHOT;
    }
  }

  /** A push context over the whole view with `policies`, built on the spot: dry runs only. */
  #fromScratch(policies: PolicySet): PushContext {
    return buildPushContext({ ...this.#started().view(), policies });
  }

  /**
   * A dry run: every proxy configuration that would differ if the mesh's
   * policies were `policies`, with the resources that would change. Nothing
   * is stored or pushed.
   */
  preview(policies: PolicySet): ProxyChange[] {
    const state = this.#started();
    let proposed: PushContext | null = null;
    const connected = new Map<string, string[]>();
    const proxyless = new Map<string, ProxyPeer>();
    for (const server of this.#servers) {
      for (const s of server.status()) {
        const key = this.snapshotKey(s);
        connected.set(key, [...connected.get(key) ?? [], s.id]);
        if (s.kind === "proxyless") {
          proxyless.set(key, {
            kind: "proxyless",
            node: s.node,
            identity: s.identity,
            ...(s.mtls ? { mtls: true } : {}),
          });
        }
      }
    }
    const target = (key: string, peer: ProxyPeer): PreviewTarget => ({
      kind: peer.kind,
      target: peer.kind === "sidecar" ? peer.node : parseSpiffeId(peer.identity)?.namespace ?? "",
      connected: connected.get(key) ?? [],
      setup: peer.kind === "sidecar" ? state.sidecars.get(peer.node) : undefined,
      now: () => this.snapshotFor(peer),
      proposed: () => generateProxy(proposed ??= this.#fromScratch(policies), this.#request(peer)),
    });
    const targets: PreviewTarget[] = [];
    for (const node of state.sidecars.keys()) {
      targets.push(target(`sidecar|${node}`, { kind: "sidecar", node, identity: "" }));
    }
    for (const [key, peer] of proxyless) targets.push(target(key, peer));
    return previewPolicies(state.policies, policies, targets);
  }

  /**
   * The policies that apply to a proxy and why: `id` is a connected proxy's
   * stream id or a node name (its sidecar, connected or not).
   */
  explain(id: string): ProxyPolicies | null {
    const state = this.#state;
    if (!state) return null;
    const status = this.#servers.flatMap((s) => s.status()).find((s) => s.id === id);
    const node = status?.node ?? id;
    const kind = status?.kind ?? "sidecar";
    // A proxyless proxy also serves: its node's gRPC instances get server Listeners.
    const served = kind === "proxyless"
      ? state.view().endpoints.filter((e) => e.node === node && e.protocol === "grpc")
        .map((e) => ({ namespace: e.namespace, service: e.service }))
      : [];
    return explainProxy(
      { id: status?.id ?? node, node, kind },
      {
        services: state.services,
        policies: state.policies,
        setup: state.sidecars.get(node),
        served,
      },
    );
  }
}

/** A proxyless snapshot under construction: its parts, and which need regenerating. */
interface ProxylessEntry {
  parted: PartedSnapshot;
  /** Services whose part a change reached. */
  dirty: Set<string>;
  /** Services were added or removed: parts to add or drop. */
  reconcile: boolean;
}

const PART_SEPARATOR = "\u0000";

function partKey(snapshotKey: string, service: string): string {
  return `${snapshotKey}${PART_SEPARATOR}${service}`;
}

/** True when two snapshots hold the same resources at the same versions. */
function sameContent(a: ProxySnapshot, b: ProxySnapshot): boolean {
  return RESOURCE_KINDS.every((kind) => {
    const x = a[kind];
    const y = b[kind];
    return x.length === y.length &&
      x.every((r, i) => r.name === y[i]!.name && r.version === y[i]!.version);
  });
}
