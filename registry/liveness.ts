/**
 * Node liveness from agent heartbeats. Hot path: a heartbeat that changes
 * no check status is a map lookup and a timestamp update; heartbeat times
 * reach the store in one batch per flush interval, and no revision is
 * bumped, so no watcher wakes and no xDS push happens. Only a status change
 * costs a store commit.
 */
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { instanceHealth, nodeLiveness } from "../core/health.ts";
import {
  type CheckStatus,
  type Heartbeat,
  instanceId,
  type MeshNode,
  type NodeStatus,
} from "../core/model.ts";
import type { Write } from "../store/store.ts";
import { type Actor, checkOwner } from "./owner.ts";
import { localIdOf, type RegistryWriter } from "./writer.ts";

/** What the heartbeat hot path keeps per node, so most heartbeats never touch the store. */
export interface Live {
  owner: string;
  lastBeatMs: number;
  status: NodeStatus;
  ttlMs: number;
  checks: Map<string, CheckStatus>;
  dirty: boolean;
}

/** Heartbeat times written per transaction when flushing. */
const FLUSH_CHUNK = 500;

/** Each registered node's liveness. */
export class Liveness {
  readonly #w: RegistryWriter;
  readonly #reapAfterMs: number;
  readonly #live = new Map<string, Live>();

  constructor(writer: RegistryWriter, reapAfterMs: number) {
    this.#w = writer;
    this.#reapAfterMs = reapAfterMs;
  }

  /**
   * Loads every node. Each starts with a fresh heartbeat clock: a server
   * outage is not the agents' fault, so they get a full TTL to reach the
   * restarted server.
   */
  async load(): Promise<void> {
    const now = this.#w.clock.now();
    for await (const node of this.#w.all("node")) {
      const checks = new Map<string, CheckStatus>();
      for (const inst of await this.#w.store.list("instance", { node: node.name, limit: 10_000 })) {
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
  }

  /**
   * Re-reads `name` after another replica wrote it (shared store): its
   * status, owner, TTL and instances as stored, and forgets it if it is
   * gone. A node tracked here keeps its last beat; one new here gets a full
   * TTL, as at start. Call under the node's lock.
   */
  async refresh(name: string): Promise<void> {
    const node = await this.#w.store.get("node", name);
    if (!node) return this.forget(name);
    const checks = new Map<string, CheckStatus>();
    for (const inst of await this.#w.store.list("instance", { node: name, limit: 10_000 })) {
      checks.set(localIdOf(inst.id), inst.check.status);
    }
    const known = this.#live.get(name);
    this.#live.set(name, {
      owner: node.owner,
      lastBeatMs: known?.lastBeatMs ?? this.#w.clock.now(),
      status: node.status,
      ttlMs: node.ttlMs,
      checks,
      dirty: known?.dirty ?? false,
    });
  }

  /** Names of every tracked node. */
  tracked(): string[] {
    return [...this.#live.keys()];
  }

  /** Tracks `name` as `live` (it just registered). */
  track(name: string, live: Live): void {
    this.#live.set(name, live);
  }

  /** Stops tracking `name` (it was removed). */
  forget(name: string): void {
    this.#live.delete(name);
  }

  /** The last heartbeat of `name` (ms), if tracked. */
  lastBeat(name: string): number | undefined {
    return this.#live.get(name)?.lastBeatMs;
  }

  /** Names of the nodes heartbeating within their TTL now. */
  aliveNodes(): string[] {
    return [...this.#live].filter(([, live]) => live.status === "alive").map(([name]) => name);
  }

  /** Number of nodes the heartbeat path tracks. */
  get liveNodes(): number {
    return this.#live.size;
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
      checkOwner(actor, name, live.owner);
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
    live.lastBeatMs = this.#w.clock.now();
    live.dirty = true;
    if (!changed) return Promise.resolve({ ttlMs: live.ttlMs, changed: false });
    return this.#w.serial(`node:${name}`, () => this.#applyBeat(name, beat)).then(() => ({
      ttlMs: live.ttlMs,
      changed: true,
    }));
  }

  async #applyBeat(name: string, beat: Heartbeat): Promise<void> {
    const live = this.#live.get(name);
    const node = await this.#w.store.get("node", name);
    if (!live || !node) return;
    const now = this.#w.iso();
    const statuses = new Map(beat.checks.map((c) => [c.id, c]));
    const writes: Write[] = [];
    const wasStale = node.status !== "alive";
    const aliveNode: MeshNode = {
      ...node,
      status: "alive",
      lastHeartbeat: this.#w.iso(live.lastBeatMs),
    };
    if (wasStale) writes.push({ op: "put", kind: "node", value: aliveNode });
    for (const inst of await this.#w.store.list("instance", { node: name, limit: 10_000 })) {
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
    await this.#w.commit(writes, [{ kind: "node", key: name, revision: node.revision }]);
    live.status = "alive";
    for (const c of beat.checks) live.checks.set(c.id, c.status);
    if (writes.length > 0) {
      this.#w.log.info("Health changed", { node: name, changes: writes.length });
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
      touches.push({ name, lastHeartbeat: this.#w.iso(live.lastBeatMs) });
    }
    for (let i = 0; i < touches.length; i += FLUSH_CHUNK) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      await this.#w.store.touchNodes(touches.slice(i, i + FLUSH_CHUNK));
    }
  }

  /** The nodes silent past the reap period, and those just past their TTL (still alive). */
  due(): { reap: string[]; stale: string[] } {
    const now = this.#w.clock.now();
    const out = { reap: [] as string[], stale: [] as string[] };
    for (const [name, live] of this.#live) {
      const state = nodeLiveness(live.lastBeatMs, now, {
        ttlMs: live.ttlMs,
        reapAfterMs: this.#reapAfterMs,
      });
      if (state === "reap") out.reap.push(name);
      else if (state === "stale" && live.status === "alive") out.stale.push(name);
    }
    return out;
  }

  /**
   * True when `name` is still silent past the reap period once the beats
   * other replicas stored are counted; call under its lock.
   */
  async stillReapable(name: string): Promise<boolean> {
    const live = this.#live.get(name);
    const node = await this.#w.store.get("node", name);
    if (!node) this.forget(name);
    if (!live || !node) return false;
    return this.#stateAfterStored(live, node) === "reap";
  }

  /**
   * The node's liveness counting the last beat stored with it: with several
   * replicas an agent may beat another one, which writes the time to the
   * shared store within a flush interval, so a node silent here is judged by
   * the newest beat any replica received.
   */
  #stateAfterStored(live: Live, node: MeshNode): ReturnType<typeof nodeLiveness> {
    const stored = node.lastHeartbeat ? Date.parse(node.lastHeartbeat) : NaN;
    if (stored > live.lastBeatMs) live.lastBeatMs = stored;
    return nodeLiveness(live.lastBeatMs, this.#w.clock.now(), {
      ttlMs: live.ttlMs,
      reapAfterMs: this.#reapAfterMs,
    });
  }

  /** Marks `name` stale (its instances unhealthy) unless it beat meanwhile; call under its lock. */
  async markStale(name: string): Promise<void> {
    const live = this.#live.get(name);
    if (!live) return;
    const node = await this.#w.store.get("node", name);
    if (!node || live.status !== "alive") return;
    if (this.#stateAfterStored(live, node) === "alive") return;
    const writes: Write[] = [{
      op: "put",
      kind: "node",
      value: { ...node, status: "stale", lastHeartbeat: this.#w.iso(live.lastBeatMs) },
    }];
    for (const inst of await this.#w.store.list("instance", { node: name, limit: 10_000 })) {
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
    await this.#w.commit(
      writes,
      [{ kind: "node", key: name, revision: node.revision }],
      [],
      this.#w.sweepFence(),
    );
    live.status = "stale";
    this.#w.log.warn("Node missed its heartbeats: instances unhealthy", {
      node: name,
      ttlMs: live.ttlMs,
    });
  }
}
