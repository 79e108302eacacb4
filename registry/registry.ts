import type { Clock } from "../core/clock.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  UnavailableError,
} from "../core/errors.ts";
import { instanceHealth, nodeLiveness } from "../core/health.ts";
import { matchesSelector, type Selector } from "../core/labels.ts";
import type { Logger } from "../core/log.ts";
import type { MeshChange } from "../core/mesh_change.ts";
import {
  type CheckStatus,
  type Health,
  type Heartbeat,
  type Instance,
  instanceId,
  type MeshNode,
  type NodeRegistration,
  type NodeStatus,
  type Service,
  type ServicePort,
  type ServicePut,
} from "../core/model.ts";
import type { Expectation, Store, Write } from "../store/store.ts";
import { changeOfWrites } from "./changes.ts";
import { ChangeFeed } from "./feed.ts";

/** The caller of a registry write, as far as the registry cares. */
export interface Actor {
  tokenId: string;
  role: string;
  node: string | null;
}

/** Options of {@link Registry}. */
export interface RegistryOptions {
  clock: Clock;
  log: Logger;
  /** A node silent this long is removed with its instances. Default: 72h. */
  reapAfterMs?: number;
  /** How often liveness is evaluated. Default: 1s. */
  sweepIntervalMs?: number;
  /** How often heartbeat times are written to the store in one batch. Default: 1s. */
  flushIntervalMs?: number;
}

/** Default reap period: Consul's `reconnect_timeout`, so a host down for a long weekend keeps its record. */
export const DEFAULT_REAP_AFTER_MS = 72 * 3_600_000;

/** Filters of a list call. */
export interface ListFilter {
  namespace?: string;
  service?: string;
  node?: string;
  health?: Health;
  status?: NodeStatus;
  selector?: Selector;
  after?: string;
  limit: number;
}

/** A page of a list. */
export interface Page<T> {
  items: T[];
  /** Key to continue after, or `null` on the last page. */
  next: string | null;
  revision: number;
}

/** Preconditions of a write, from `If-Match` / `If-None-Match: *`. */
export interface WritePreconditions {
  ifMatch?: number;
  ifNoneMatch?: boolean;
}

/** What the heartbeat hot path keeps per node, so most heartbeats never touch the store. */
interface Live {
  owner: string;
  lastBeatMs: number;
  status: NodeStatus;
  ttlMs: number;
  checks: Map<string, CheckStatus>;
  dirty: boolean;
}

const MAX_PAGE_SCAN = 100_000;
/** Heartbeat times written per transaction when flushing. */
const FLUSH_CHUNK = 500;

/**
 * The service registry: nodes, their instances and the services they form,
 * with health driven by agent heartbeats.
 *
 * Hot path: a heartbeat that changes no check status is a map lookup and a
 * timestamp update; heartbeat times reach the store in one batch per flush
 * interval, and no revision is bumped, so no watcher wakes and (later) no
 * xDS push happens. Only a status change costs a store commit.
 */
export class Registry {
  readonly feed = new ChangeFeed();
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #reapAfterMs: number;
  readonly #sweepIntervalMs: number;
  readonly #flushIntervalMs: number;
  readonly #live = new Map<string, Live>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #listeners = new Set<(change: MeshChange) => void>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #stopped = false;

  constructor(store: Store, options: RegistryOptions) {
    this.#store = store;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#reapAfterMs = options.reapAfterMs ?? DEFAULT_REAP_AFTER_MS;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 1_000;
    this.#flushIntervalMs = options.flushIntervalMs ?? 1_000;
  }

  /**
   * Loads liveness state and starts the sweep and flush timers. Every node
   * starts with a fresh heartbeat clock: a server outage is not the agents'
   * fault, so they get a full TTL to reach the restarted server.
   */
  async start(): Promise<void> {
    const now = this.#clock.now();
    this.feed.publish(await this.#store.revision());
    for await (const node of this.#all("node")) {
      const checks = new Map<string, CheckStatus>();
      for (const inst of await this.#store.list("instance", { node: node.name, limit: 10_000 })) {
        checks.set(localIdOf(inst.id), inst.check.status);
      }
      this.#live.set(node.name, {
        owner: node.owner,
        lastBeatMs: now,
        status: node.status,
        ttlMs: node.ttlMs,
        checks,
        dirty: false,
      });
    }
    this.#timers = [
      setInterval(() => this.#guard("sweep", () => this.sweep()), this.#sweepIntervalMs),
      setInterval(() => this.#guard("flush", () => this.flush()), this.#flushIntervalMs),
    ];
  }

  /** Stops the timers, writes pending heartbeat times and ends every watch. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await Promise.allSettled([...this.#locks.values()]);
    await this.flush();
    this.feed.close();
  }

  async *#all<K extends "node" | "instance" | "service">(kind: K) {
    let after: string | undefined;
    while (true) {
      const page = await this.#store.list(kind, { limit: 1000, ...(after ? { after } : {}) });
      yield* page;
      if (page.length < 1000) return;
      after = keyOfAny(page.at(-1)!);
    }
  }

  #guard(what: string, fn: () => Promise<unknown>): void {
    fn().catch((error) => this.#log.error(`Registry ${what} failed`, { error: String(error) }));
  }

  /** Runs `fn` after every earlier call for the same node, so writes to one node never interleave. */
  #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => {});
    this.#locks.set(key, tail);
    tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return next;
  }

  /**
   * Calls `listener` with the keys of every committed change, after the
   * feed has its revision. Returns the function that stops it.
   */
  subscribe(listener: (change: MeshChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Commits `writes`; `gone` are the instances it deletes, so the change names their services. */
  async #commit(
    writes: Write[],
    expect: Expectation[] = [],
    gone: readonly Instance[] = [],
  ): Promise<number> {
    if (this.#stopped) throw new UnavailableError("The server is shutting down");
    const before = this.feed.revision;
    const revision = await this.#store.commit({ writes, expect });
    if (revision !== before) {
      this.feed.publish(revision);
      const change = changeOfWrites(writes, gone);
      for (const listener of this.#listeners) listener(change);
    }
    return revision;
  }

  #iso(ms = this.#clock.now()): string {
    return new Date(ms).toISOString();
  }

  // ---- reads -------------------------------------------------------------

  /** Services, filtered and paged. */
  listServices(filter: ListFilter): Promise<Page<Service>> {
    const selector = filter.selector;
    return this.#page(
      "service",
      filter,
      selector ? (s) => matchesSelector(selector, s.labels) : undefined,
      (s) => `${s.namespace}/${s.name}`,
      {
        ...(filter.namespace !== undefined ? { namespace: filter.namespace } : {}),
      },
    );
  }

  /** Nodes, filtered and paged. */
  listNodes(filter: ListFilter): Promise<Page<MeshNode>> {
    const { selector, status } = filter;
    const where = selector || status
      ? (n: MeshNode) =>
        (!selector || matchesSelector(selector, n.labels)) && (!status || n.status === status)
      : undefined;
    return this.#page("node", filter, where, (n) => n.name, {});
  }

  /** Instances, filtered and paged. */
  listInstances(filter: ListFilter): Promise<Page<Instance>> {
    const selector = filter.selector;
    const indexed = {
      ...(filter.namespace !== undefined ? { namespace: filter.namespace } : {}),
      ...(filter.service !== undefined ? { service: filter.service } : {}),
      ...(filter.node !== undefined ? { node: filter.node } : {}),
      ...(filter.health !== undefined ? { health: filter.health } : {}),
    };
    return this.#page(
      "instance",
      filter,
      selector ? (i) => matchesSelector(selector, i.labels) : undefined,
      (i) => i.id,
      indexed,
    );
  }

  async #page<K extends "node" | "instance" | "service", T extends Service | MeshNode | Instance>(
    kind: K,
    filter: ListFilter,
    where: ((v: T) => boolean) | undefined,
    key: (v: T) => string,
    indexed: { namespace?: string; service?: string; node?: string; health?: Health },
  ): Promise<Page<T>> {
    const revision = this.feed.revision;
    const items = await this.#store.list(kind, {
      ...indexed,
      ...(filter.after !== undefined ? { after: filter.after } : {}),
      limit: Math.min(filter.limit + 1, MAX_PAGE_SCAN),
      ...(where ? { where: where as (v: unknown) => boolean } : {}),
    }) as T[];
    const more = items.length > filter.limit;
    const page = more ? items.slice(0, filter.limit) : items;
    return { items: page, next: more ? key(page.at(-1)!) : null, revision };
  }

  /** One service. */
  async getService(namespace: string, name: string): Promise<Service> {
    const service = await this.#store.get("service", `${namespace}/${name}`);
    if (!service) {
      throw new NotFoundError(`Service "${name}" does not exist in namespace "${namespace}"`);
    }
    return service;
  }

  /** One node. */
  async getNode(name: string): Promise<MeshNode> {
    const node = await this.#store.get("node", name);
    if (!node) throw new NotFoundError(`Node "${name}" is not registered`);
    const live = this.#live.get(name);
    return live ? { ...node, lastHeartbeat: this.#iso(live.lastBeatMs) } : node;
  }

  /** One instance. */
  async getInstance(id: string): Promise<Instance> {
    const instance = await this.#store.get("instance", id);
    if (!instance) throw new NotFoundError(`Instance "${id}" does not exist`);
    return instance;
  }

  /** Namespaces that hold at least one service, with their service counts. */
  async namespaces(): Promise<{ name: string; services: number }[]> {
    const counts = new Map<string, number>();
    for await (const s of this.#all("service")) {
      counts.set(s.namespace, (counts.get(s.namespace) ?? 0) + 1);
    }
    return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([name, services]) => ({
      name,
      services,
    }));
  }

  /** Names of the nodes heartbeating within their TTL now. */
  aliveNodes(): string[] {
    return [...this.#live].filter(([, live]) => live.status === "alive").map(([name]) => name);
  }

  /** Number of nodes the heartbeat path tracks. */
  get liveNodes(): number {
    return this.#live.size;
  }

  // ---- services ----------------------------------------------------------

  /**
   * Creates or replaces a service an operator declares. Ports already used by
   * registered instances stay (with their protocol); declaring one of them
   * with another protocol is a conflict, since the instances speak theirs.
   */
  putService(
    namespace: string,
    name: string,
    body: ServicePut,
    pre: WritePreconditions,
  ): Promise<{ service: Service; created: boolean }> {
    return this.#serial(`service:${namespace}/${name}`, async () => {
      const key = `${namespace}/${name}`;
      const existing = await this.#store.get("service", key);
      const ports = new Map<number, ServicePort>();
      body.ports.forEach((p, i) => {
        if (ports.has(p.port)) {
          throw new InvalidError(`Port ${p.port} is declared twice`, [{
            pointer: `/ports/${i}/port`,
            message: `Port ${p.port} is declared twice`,
          }]);
        }
        ports.set(p.port, p);
      });
      for (
        const inst of await this.#store.list("instance", {
          namespace,
          service: name,
          limit: MAX_PAGE_SCAN,
        })
      ) {
        const declared = ports.get(inst.port);
        if (declared && declared.protocol !== inst.protocol) {
          throw new ConflictError(
            `Port ${inst.port} of service "${name}" is registered as ${inst.protocol} by instance "${inst.id}", not ${declared.protocol}`,
          );
        }
        if (!declared) ports.set(inst.port, { port: inst.port, protocol: inst.protocol });
      }
      const service: Service = {
        namespace,
        name,
        ports: [...ports.values()].sort((a, b) => a.port - b.port),
        labels: sortKeys(body.labels),
        managedBy: "api",
        createdAt: existing?.createdAt ?? this.#iso(),
        revision: 0,
      };
      const expect = expectation("service", key, existing, pre);
      if (existing && sameContent(existing, service)) {
        await this.#commit([], expect);
        return { service: existing, created: false };
      }
      const revision = await this.#commit([{ op: "put", kind: "service", value: service }], expect);
      return { service: { ...service, revision }, created: !existing };
    });
  }

  /** Deletes a service that has no instances left. */
  deleteService(namespace: string, name: string, pre: WritePreconditions): Promise<void> {
    return this.#serial(`service:${namespace}/${name}`, async () => {
      const key = `${namespace}/${name}`;
      const existing = await this.#store.get("service", key);
      if (!existing) {
        throw new NotFoundError(`Service "${name}" does not exist in namespace "${namespace}"`);
      }
      const remaining = await this.#store.list("instance", { namespace, service: name, limit: 1 });
      if (remaining.length > 0) {
        throw new ConflictError(
          `Service "${name}" in namespace "${namespace}" still has instances (e.g. "${
            remaining[0]!.id
          }"): deregister them first`,
        );
      }
      await this.#commit(
        [{ op: "delete", kind: "service", key }],
        expectation("service", key, existing, pre),
      );
    });
  }

  // ---- nodes: registration, heartbeats, drain, removal --------------------

  #checkOwner(actor: Actor, name: string, owner: string | undefined): void {
    if (actor.role !== "agent") return;
    if (actor.node !== null && actor.node !== name) {
      throw new ForbiddenError(`This agent is bound to node "${actor.node}", not "${name}"`);
    }
    if (owner !== undefined && owner !== actor.tokenId) {
      throw new ForbiddenError(`Node "${name}" is registered by another agent token`);
    }
  }

  /**
   * Registers a node with its whole set of instances (idempotent: the same
   * registration twice changes nothing and bumps no revision). Instances not
   * in the set are removed. An operator's drain survives re-registration.
   * The sidecar's side of the registration (each instance's `inboundPort`,
   * the node's `upstreams`) is content like any other field: changing it
   * bumps the revision, and so reaches the node's sidecar with the next push.
   */
  register(
    name: string,
    reg: NodeRegistration,
    actor: Actor,
  ): Promise<{ node: MeshNode; instances: Instance[] }> {
    return this.#serial(`node:${name}`, async () => {
      const existing = await this.#store.get("node", name);
      this.#checkOwner(actor, name, existing?.owner);
      const nowMs = this.#clock.now();
      const now = this.#iso(nowMs);
      const node: MeshNode = {
        name,
        hostname: reg.hostname,
        addresses: reg.addresses,
        labels: sortKeys(reg.labels),
        agentVersion: reg.agentVersion,
        heartbeatIntervalMs: reg.heartbeatInterval,
        ttlMs: 3 * reg.heartbeatInterval,
        status: "alive",
        draining: existing?.draining ?? false,
        owner: existing?.owner ?? actor.tokenId,
        // Built key by key, so that equal registrations compare equal in sameContent().
        upstreams: reg.upstreams.map((u) => ({
          service: u.service,
          namespace: u.namespace,
          localPort: u.localPort,
          ...(u.port !== undefined ? { port: u.port } : {}),
        })),
        conditions: reg.conditions.map((c) => ({
          type: c.type,
          reason: c.reason,
          message: c.message,
        })),
        registeredAt: existing?.registeredAt ?? now,
        lastHeartbeat: now,
        revision: existing?.revision ?? 0,
      };
      const before = new Map(
        (await this.#store.list("instance", { node: name, limit: 10_000 })).map((i) => [i.id, i]),
      );
      const writes: Write[] = [];
      if (!existing || !sameContent(existing, node, ["lastHeartbeat"])) {
        writes.push({ op: "put", kind: "node", value: node });
      }
      const instances: Instance[] = [];
      const inUse = new Set<string>();
      for (const [i, r] of reg.instances.entries()) {
        const id = instanceId(r.id, name);
        const old = before.get(id);
        const sameCheck = old && old.check.status === r.check && old.check.output === r.output;
        const draining = old?.draining ?? false;
        const inst: Instance = {
          id,
          node: name,
          namespace: r.namespace,
          service: r.service,
          address: r.address ?? reg.addresses[0]!,
          port: r.port,
          inboundPort: r.inboundPort ?? null,
          protocol: r.protocol,
          labels: sortKeys(r.labels),
          check: {
            status: r.check,
            output: r.output,
            updatedAt: sameCheck ? old.check.updatedAt : now,
          },
          draining,
          health: instanceHealth({
            check: r.check,
            instanceDraining: draining,
            nodeDraining: node.draining,
            nodeStatus: "alive",
          }),
          revision: old?.revision ?? 0,
        };
        await this.#admitToService(inst, i, writes, now);
        inUse.add(`${inst.namespace}/${inst.service}`);
        instances.push(inst);
        if (!old || !sameContent(old, inst)) {
          writes.push({ op: "put", kind: "instance", value: inst });
        }
      }
      const kept = new Set(instances.map((i) => i.id));
      const removed = [...before.values()].filter((i) => !kept.has(i.id));
      for (const old of removed) writes.push({ op: "delete", kind: "instance", key: old.id });
      writes.push(...await this.#orphanedServices(removed, name, inUse));
      const revision = await this.#commit(writes, [{
        kind: "node",
        key: name,
        revision: existing?.revision ?? null,
      }], removed);
      this.#live.set(name, {
        owner: node.owner,
        lastBeatMs: nowMs,
        status: "alive",
        ttlMs: node.ttlMs,
        checks: new Map(reg.instances.map((r) => [r.id, r.check])),
        dirty: existing !== null && writes.every((w) => w.kind !== "node"),
      });
      if (writes.length > 0) {
        this.#log.info("Node registered", { node: name, instances: instances.length, revision });
      }
      const stamp = <T extends { revision: number }>(v: T, changed: boolean): T =>
        changed ? { ...v, revision } : v;
      const changedIds = new Set(
        writes.filter((w) => w.op === "put" && w.kind === "instance").map((w) =>
          (w as { value: Instance }).value.id
        ),
      );
      return {
        node: stamp(node, writes.some((w) => w.kind === "node")),
        instances: instances.map((inst) => stamp(inst, changedIds.has(inst.id))),
      };
    });
  }

  /** Makes sure the instance's service exists and agrees on the port's protocol. */
  async #admitToService(
    inst: Instance,
    index: number,
    writes: Write[],
    now: string,
  ): Promise<void> {
    const key = `${inst.namespace}/${inst.service}`;
    const queued = writes.find((w) =>
      w.op === "put" && w.kind === "service" &&
      `${w.value.namespace}/${w.value.name}` === key
    ) as { value: Service } | undefined;
    const service = queued?.value ?? await this.#store.get("service", key);
    const port = service?.ports.find((p) => p.port === inst.port);
    if (port && port.protocol !== inst.protocol) {
      throw new InvalidError(
        `Service "${inst.service}" in namespace "${inst.namespace}" has port ${inst.port} as ${port.protocol}, not ${inst.protocol}`,
        [{
          pointer: `/instances/${index}/protocol`,
          message: `Port ${inst.port} of service "${key}" is ${port.protocol}`,
        }],
      );
    }
    if (port) return;
    const updated: Service = service
      ? {
        ...service,
        ports: [...service.ports, { port: inst.port, protocol: inst.protocol }].sort((a, b) =>
          a.port - b.port
        ),
      }
      : {
        namespace: inst.namespace,
        name: inst.service,
        ports: [{ port: inst.port, protocol: inst.protocol }],
        labels: {},
        managedBy: "registry",
        createdAt: now,
        revision: 0,
      };
    if (queued) queued.value = updated;
    else writes.push({ op: "put", kind: "service", value: updated });
  }

  /**
   * Deletes agent-created services whose last instance is among `removed`,
   * unless the same write keeps using them (`inUse`, keys `namespace/name`).
   */
  async #orphanedServices(
    removed: Instance[],
    node: string,
    inUse: Set<string> = new Set(),
  ): Promise<Write[]> {
    const writes: Write[] = [];
    const seen = new Set<string>(inUse);
    for (const inst of removed) {
      const key = `${inst.namespace}/${inst.service}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const service = await this.#store.get("service", key);
      if (!service || service.managedBy !== "registry") continue;
      const others = await this.#store.list("instance", {
        namespace: inst.namespace,
        service: inst.service,
        limit: 1,
        where: (i) => i.node !== node,
      });
      if (others.length === 0) writes.push({ op: "delete", kind: "service", key });
    }
    return writes;
  }

  /**
   * Records a heartbeat. Throws `NotFoundError` for an unknown node and
   * `ConflictError` for an unknown instance: both tell the agent to
   * re-register (e.g. after the server lost its data).
   */
  heartbeat(
    name: string,
    beat: Heartbeat,
    actor: Actor,
  ): Promise<{ ttlMs: number; changed: boolean }> {
    const live = this.#live.get(name);
    if (!live) {
      return Promise.reject(
        new NotFoundError(`Node "${name}" is not registered: register it first`),
      );
    }
    try {
      this.#checkOwner(actor, name, live.owner);
    } catch (error) {
      return Promise.reject(error);
    }
    let changed = live.status !== "alive";
    for (const check of beat.checks) {
      const known = live.checks.get(check.id);
      if (known === undefined) {
        return Promise.reject(
          new ConflictError(
            `Instance "${instanceId(check.id, name)}" is not registered: re-register the node`,
          ),
        );
      }
      if (known !== check.status) changed = true;
    }
    // Only a heartbeat the server accepts keeps the node alive.
    live.lastBeatMs = this.#clock.now();
    live.dirty = true;
    if (!changed) return Promise.resolve({ ttlMs: live.ttlMs, changed: false });
    return this.#serial(`node:${name}`, () => this.#applyBeat(name, beat)).then(() => ({
      ttlMs: live.ttlMs,
      changed: true,
    }));
  }

  async #applyBeat(name: string, beat: Heartbeat): Promise<void> {
    const live = this.#live.get(name);
    const node = await this.#store.get("node", name);
    if (!live || !node) return;
    const now = this.#iso();
    const statuses = new Map(beat.checks.map((c) => [c.id, c]));
    const writes: Write[] = [];
    const wasStale = node.status !== "alive";
    const aliveNode: MeshNode = {
      ...node,
      status: "alive",
      lastHeartbeat: this.#iso(live.lastBeatMs),
    };
    if (wasStale) writes.push({ op: "put", kind: "node", value: aliveNode });
    for (const inst of await this.#store.list("instance", { node: name, limit: 10_000 })) {
      const reported = statuses.get(localIdOf(inst.id));
      const check = reported && reported.status !== inst.check.status
        ? { status: reported.status, output: reported.output, updatedAt: now }
        : inst.check;
      const health = instanceHealth({
        check: check.status,
        instanceDraining: inst.draining,
        nodeDraining: node.draining,
        nodeStatus: "alive",
      });
      if (check !== inst.check || health !== inst.health) {
        writes.push({ op: "put", kind: "instance", value: { ...inst, check, health } });
      }
    }
    await this.#commit(writes, [{ kind: "node", key: name, revision: node.revision }]);
    live.status = "alive";
    for (const c of beat.checks) live.checks.set(c.id, c.status);
    if (writes.length > 0) {
      this.#log.info("Health changed", { node: name, changes: writes.length });
    }
  }

  /**
   * Writes pending heartbeat times to the store, in chunks with a yield to
   * the event loop between them: one transaction for 5,000 nodes held the
   * loop for tens of milliseconds, which showed as the heartbeat p99.
   */
  async flush(): Promise<void> {
    const touches = [];
    for (const [name, live] of this.#live) {
      if (!live.dirty) continue;
      live.dirty = false;
      touches.push({ name, lastHeartbeat: this.#iso(live.lastBeatMs) });
    }
    for (let i = 0; i < touches.length; i += FLUSH_CHUNK) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      await this.#store.touchNodes(touches.slice(i, i + FLUSH_CHUNK));
    }
  }

  /**
   * Applies liveness: nodes silent past their TTL turn stale (their
   * instances unhealthy), nodes silent past the reap period are removed.
   */
  async sweep(): Promise<void> {
    const now = this.#clock.now();
    for (const [name, live] of [...this.#live]) {
      const state = nodeLiveness(live.lastBeatMs, now, {
        ttlMs: live.ttlMs,
        reapAfterMs: this.#reapAfterMs,
      });
      if (state === "reap") {
        await this.#serial(`node:${name}`, () => this.#remove(name, "reaped"));
      } else if (state === "stale" && live.status === "alive") {
        await this.#serial(`node:${name}`, () => this.#markStale(name, live));
      }
    }
  }

  async #markStale(name: string, live: Live): Promise<void> {
    const node = await this.#store.get("node", name);
    if (!node || live.status !== "alive") return;
    if (
      nodeLiveness(live.lastBeatMs, this.#clock.now(), {
        ttlMs: live.ttlMs,
        reapAfterMs: this.#reapAfterMs,
      }) === "alive"
    ) return;
    const writes: Write[] = [{
      op: "put",
      kind: "node",
      value: { ...node, status: "stale", lastHeartbeat: this.#iso(live.lastBeatMs) },
    }];
    for (const inst of await this.#store.list("instance", { node: name, limit: 10_000 })) {
      const health = instanceHealth({
        check: inst.check.status,
        instanceDraining: inst.draining,
        nodeDraining: node.draining,
        nodeStatus: "stale",
      });
      if (health !== inst.health) {
        writes.push({ op: "put", kind: "instance", value: { ...inst, health } });
      }
    }
    await this.#commit(writes, [{ kind: "node", key: name, revision: node.revision }]);
    live.status = "stale";
    this.#log.warn("Node missed its heartbeats: instances unhealthy", {
      node: name,
      ttlMs: live.ttlMs,
    });
  }

  async #remove(name: string, reason: string, pre: WritePreconditions = {}): Promise<void> {
    const node = await this.#store.get("node", name);
    if (!node) {
      this.#live.delete(name);
      throw new NotFoundError(`Node "${name}" is not registered`);
    }
    const instances = await this.#store.list("instance", { node: name, limit: 10_000 });
    const writes: Write[] = [
      { op: "delete", kind: "node", key: name },
      ...instances.map((i) => ({ op: "delete", kind: "instance", key: i.id }) as const),
      ...await this.#orphanedServices(instances, name),
    ];
    await this.#commit(writes, expectation("node", name, node, pre), instances);
    this.#live.delete(name);
    this.#log.info("Node removed", { node: name, reason, instances: instances.length });
  }

  /** Removes a node and its instances (agent leaving, or an operator decommissioning it). */
  deregister(name: string, actor: Actor, pre: WritePreconditions = {}): Promise<void> {
    return this.#serial(`node:${name}`, async () => {
      const node = await this.#store.get("node", name);
      if (!node) throw new NotFoundError(`Node "${name}" is not registered`);
      this.#checkOwner(actor, name, node.owner);
      await this.#remove(name, actor.role === "agent" ? "agent left" : "deleted", pre);
    });
  }

  /** Drains or undrains a node: its instances stay registered but get no traffic. */
  drainNode(name: string, draining: boolean, pre: WritePreconditions): Promise<MeshNode> {
    return this.#serial(`node:${name}`, async () => {
      const node = await this.#store.get("node", name);
      if (!node) throw new NotFoundError(`Node "${name}" is not registered`);
      const expect = expectation("node", name, node, pre);
      if (node.draining === draining) {
        await this.#commit([], expect);
        return node;
      }
      const updated = { ...node, draining };
      const writes: Write[] = [{ op: "put", kind: "node", value: updated }];
      for (const inst of await this.#store.list("instance", { node: name, limit: 10_000 })) {
        const health = instanceHealth({
          check: inst.check.status,
          instanceDraining: inst.draining,
          nodeDraining: draining,
          nodeStatus: node.status,
        });
        if (health !== inst.health) {
          writes.push({ op: "put", kind: "instance", value: { ...inst, health } });
        }
      }
      const revision = await this.#commit(writes, expect);
      this.#log.info(draining ? "Node drained" : "Node undrained", { node: name });
      return { ...updated, revision };
    });
  }

  /** Drains or undrains one instance. */
  drainInstance(id: string, draining: boolean, pre: WritePreconditions): Promise<Instance> {
    const nodeName = id.slice(id.indexOf("@") + 1);
    return this.#serial(`node:${nodeName}`, async () => {
      const inst = await this.#store.get("instance", id);
      if (!inst) throw new NotFoundError(`Instance "${id}" does not exist`);
      const node = await this.#store.get("node", inst.node);
      const expect = expectation("instance", id, inst, pre);
      if (inst.draining === draining) {
        await this.#commit([], expect);
        return inst;
      }
      const health = instanceHealth({
        check: inst.check.status,
        instanceDraining: draining,
        nodeDraining: node?.draining ?? false,
        nodeStatus: node?.status ?? "stale",
      });
      const updated = { ...inst, draining, health };
      const revision = await this.#commit(
        [{ op: "put", kind: "instance", value: updated }],
        expect,
      );
      return { ...updated, revision };
    });
  }
}

function expectation(
  kind: "service" | "node" | "instance",
  key: string,
  existing: { revision: number } | null,
  pre: WritePreconditions,
): Expectation[] {
  if (pre.ifNoneMatch) return [{ kind, key, revision: null }];
  if (pre.ifMatch !== undefined) {
    if (!existing) throw new NotFoundError(`The ${kind} "${key}" does not exist`);
    return [{ kind, key, revision: pre.ifMatch }];
  }
  return existing ? [{ kind, key, revision: existing.revision }] : [{ kind, key, revision: null }];
}

function localIdOf(id: string): string {
  return id.slice(0, id.lastIndexOf("@"));
}

function keyOfAny(v: Service | MeshNode | Instance): string {
  if ("id" in v) return v.id;
  if ("hostname" in v) return v.name;
  return `${v.namespace}/${v.name}`;
}

function sortKeys(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
}

/** True when two objects are equal apart from their revision and the named fields. */
function sameContent(a: object, b: object, ignore: string[] = []): boolean {
  const strip = (o: object) => {
    const copy: Record<string, unknown> = { ...o };
    delete copy.revision;
    for (const k of ignore) delete copy[k];
    return JSON.stringify(copy);
  };
  return strip(a) === strip(b);
}
