/**
 * Resources cached by their inputs, across pushes (Kuma's hash-skip, at the
 * grain of one resource). It is a layer over the pure generators, which
 * already build every shared resource through `shared()` under a key that
 * names its proxy-side inputs: here the push context they read is one
 * long-lived object over the in-memory mesh view, and every read of it —
 * a service, a service's endpoints, the policies of a service, MeshConfig,
 * the trust bundle — is recorded as a dependency of the value being built.
 * A change drops exactly the values (and the proxy snapshots) that read
 * what it moved; everything else is served from memory, so a push costs
 * what the change costs, and a body that did not change is the very same
 * object, with the same version and the same encoded bytes.
 */
import type { PolicyIndex } from "../core/policy/match.ts";
import { indexPolicies } from "../core/policy/match.ts";
import type { MeshConfigSpec, PolicySet } from "../core/policy/model.ts";
import type { MeshEndpoint, MeshService, MeshView } from "./generate/model.ts";
import type { PushContext } from "./generate/push_context.ts";
import type { Dep, MeshState } from "./mesh_view.ts";

/** Depends on everything: dropped by any change. */
export const ANY_DEP: Dep = "*";

/**
 * Records dependencies into nested frames: a value built inside another
 * value's build adds its dependencies to the outer one too.
 */
export class DepTracker {
  readonly #frames: Set<Dep>[] = [];

  /** Notes that the value being built read `dep`. */
  record(dep: Dep): void {
    this.#frames.at(-1)?.add(dep);
  }

  /** Notes every one of `deps`. */
  recordAll(deps: Iterable<Dep>): void {
    const frame = this.#frames.at(-1);
    if (frame) { for (const d of deps) frame.add(d); }
  }

  /** Starts a frame; returns its depth for {@link DepTracker.unwind}. */
  begin(): number {
    this.#frames.push(new Set());
    return this.#frames.length - 1;
  }

  /** Ends the innermost frame, adds its dependencies to the enclosing one, and returns them. */
  end(): Set<Dep> {
    const frame = this.#frames.pop()!;
    this.recordAll(frame);
    return frame;
  }

  /** Drops frames down to `depth` (after a build threw). */
  unwind(depth: number): void {
    this.#frames.length = Math.min(this.#frames.length, depth);
  }
}

/** A read-only view of a map whose every read is recorded. */
class TrackedMap<V> implements ReadonlyMap<string, V> {
  readonly #backing: () => ReadonlyMap<string, V>;
  readonly #tracker: DepTracker;
  readonly #prefix: string;
  readonly #whole: Dep;

  constructor(
    backing: () => ReadonlyMap<string, V>,
    tracker: DepTracker,
    prefix: string,
    whole: Dep,
  ) {
    this.#backing = backing;
    this.#tracker = tracker;
    this.#prefix = prefix;
    this.#whole = whole;
  }

  get(key: string): V | undefined {
    this.#tracker.record(this.#prefix + key);
    return this.#backing().get(key);
  }
  has(key: string): boolean {
    this.#tracker.record(this.#prefix + key);
    return this.#backing().has(key);
  }
  get size(): number {
    this.#tracker.record(this.#whole);
    return this.#backing().size;
  }
  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void): void {
    this.#tracker.record(this.#whole);
    this.#backing().forEach((v, k) => fn(v, k, this));
  }
  entries(): MapIterator<[string, V]> {
    this.#tracker.record(this.#whole);
    return this.#backing().entries();
  }
  keys(): MapIterator<string> {
    this.#tracker.record(this.#whole);
    return this.#backing().keys();
  }
  values(): MapIterator<V> {
    this.#tracker.record(this.#whole);
    return this.#backing().values();
  }
  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }
}

/**
 * The memo of `shared()` (`xds/generate/push_context.ts`), kept across
 * pushes: each value remembers what its build read, and a hit hands those
 * reads on to whoever asked.
 */
class DepMemo extends Map<string, unknown> {
  readonly #tracker: DepTracker;
  readonly #deps = new Map<string, Set<Dep>>();
  readonly #users = new Map<Dep, Set<string>>();

  constructor(tracker: DepTracker) {
    super();
    this.#tracker = tracker;
  }

  /** `shared()` asks first: a hit records the value's dependencies, a miss opens its build's frame. */
  override has(key: string): boolean {
    const deps = this.#deps.get(key);
    if (deps) {
      this.#tracker.recordAll(deps);
      return true;
    }
    this.#tracker.begin();
    return false;
  }

  /** `shared()` stores the built value: its frame closes with what the build read. */
  override set(key: string, value: unknown): this {
    const deps = this.#tracker.end();
    this.#deps.set(key, deps);
    for (const d of deps) {
      let users = this.#users.get(d);
      if (!users) this.#users.set(d, users = new Set());
      users.add(key);
    }
    return super.set(key, value);
  }

  /** Forgets every value that read one of `deps`. */
  invalidate(deps: Iterable<Dep>): void {
    for (const dep of deps) {
      for (const key of this.#users.get(dep) ?? []) {
        for (const d of this.#deps.get(key) ?? []) {
          if (d !== dep) this.#users.get(d)?.delete(key);
        }
        this.#deps.delete(key);
        super.delete(key);
      }
      this.#users.delete(dep);
    }
  }
}

/**
 * A {@link PushContext} over a {@link MeshState} that lives as long as the
 * pipeline: its lookups read the state as it is now and record what they
 * read; its memo keeps values until what they read changes.
 */
export class CachedContext implements PushContext {
  readonly tracker = new DepTracker();
  readonly #state: MeshState;
  readonly #memo: DepMemo;
  #index: PolicyIndex;
  #policies: PolicyIndex;
  readonly serviceByKey: ReadonlyMap<string, MeshService>;
  readonly endpointsByService: ReadonlyMap<string, readonly MeshEndpoint[]>;
  readonly versions = new WeakMap<object, string>();
  readonly view: MeshView;

  constructor(state: MeshState) {
    this.#state = state;
    this.#memo = new DepMemo(this.tracker);
    const tracker = this.tracker;
    this.serviceByKey = new TrackedMap(() => state.serviceByKey, tracker, "svc:", "services");
    this.endpointsByService = new TrackedMap(
      () => state.endpointsByService,
      tracker,
      "ep:",
      ANY_DEP,
    );
    this.#index = indexPolicies(state.policies);
    this.#policies = this.#trackedIndex();
    // The generators read the trust domain and bundle from the view; the rest of it is the
    // whole mesh, which nothing should need while generating.
    this.view = {
      get trustDomain() {
        tracker.record("trust");
        return state.trust.trustDomain;
      },
      get trustBundlePem() {
        tracker.record("trust");
        return state.trust.bundlePem;
      },
      get services() {
        tracker.record(ANY_DEP);
        return state.services;
      },
      get endpoints() {
        tracker.record(ANY_DEP);
        return state.view().endpoints;
      },
      get policies() {
        tracker.record("policies");
        return state.policies;
      },
    };
  }

  get services(): readonly MeshService[] {
    this.tracker.record("services");
    return this.#state.services;
  }

  get policies(): PolicyIndex {
    return this.#policies;
  }

  get mesh(): MeshConfigSpec {
    this.tracker.record("mesh");
    return this.#index.set.meshConfig?.spec ?? {};
  }

  get memo(): Map<string, unknown> {
    return this.#memo;
  }

  /**
   * The same context as seen by a generation that concerns `service` only:
   * its service list is that one service (a proxyless client's part).
   */
  scoped(service: MeshService): PushContext {
    const key = `svc:${service.namespace}/${service.name}`;
    const services = () => {
      this.tracker.record(key);
      return [service];
    };
    const policies = () => this.policies;
    const mesh = () => this.mesh;
    return {
      view: this.view,
      get services() {
        return services();
      },
      serviceByKey: this.serviceByKey,
      endpointsByService: this.endpointsByService,
      get policies() {
        return policies();
      },
      get mesh() {
        return mesh();
      },
      memo: this.memo,
      versions: this.versions,
    };
  }

  /** Forgets what read `deps`; re-indexes the policies when they moved. */
  invalidate(deps: ReadonlySet<Dep>): void {
    if (deps.has("policies")) this.#index = indexPolicies(this.#state.policies);
    this.#memo.invalidate([...deps, ANY_DEP]);
  }

  #trackedIndex(): PolicyIndex {
    const tracker = this.tracker;
    const current = () => this.#index;
    // Keys as `policyDep()` names them: a policy dirties the lookups of its own kind only.
    const map = <V>(kind: string, pick: (index: PolicyIndex) => ReadonlyMap<string, V>) =>
      new TrackedMap(() => pick(current()), tracker, `pol:${kind}:`, "policies");
    return {
      get set(): PolicySet {
        tracker.record("policies");
        return current().set;
      },
      trafficRoute: map("TrafficRoute", (i) => i.trafficRoute),
      destinationPolicy: map("DestinationPolicy", (i) => i.destinationPolicy),
      rateLimit: map("RateLimit", (i) => i.rateLimit),
      authorization: map("AuthorizationPolicy", (i) => i.authorization),
    };
  }
}

/** Values with the dependencies they were built from; dropped when one of those moves. */
export class DepCache<V> {
  readonly #entries = new Map<string, { value: V; deps: ReadonlySet<Dep> }>();
  readonly #users = new Map<Dep, Set<string>>();

  get(key: string): V | undefined {
    return this.#entries.get(key)?.value;
  }

  set(key: string, value: V, deps: ReadonlySet<Dep>): void {
    this.delete(key);
    this.#entries.set(key, { value, deps });
    for (const d of deps) {
      let users = this.#users.get(d);
      if (!users) this.#users.set(d, users = new Set());
      users.add(key);
    }
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    for (const d of entry.deps) this.#users.get(d)?.delete(key);
  }

  /** Drops the entries that depend on one of `deps`; returns their keys. */
  invalidate(deps: Iterable<Dep>): Set<string> {
    const dropped = new Set<string>();
    for (const dep of deps) {
      for (const key of [...this.#users.get(dep) ?? []]) {
        dropped.add(key);
        this.delete(key);
      }
      this.#users.delete(dep);
    }
    return dropped;
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }
}
