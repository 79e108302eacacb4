/**
 * Node registrations and removals: a node with its whole set of instances,
 * the services they join (created, or told of new ports) or leave, drains,
 * deregistration.
 */
import { InvalidError, NotFoundError } from "../core/errors.ts";
import { instanceHealth } from "../core/health.ts";
import {
  type Instance,
  instanceId,
  type MeshNode,
  type NodeRegistration,
  type Service,
} from "../core/model.ts";
import type { Fence, Write } from "../store/store.ts";
import type { Liveness } from "./liveness.ts";
import { type Actor, checkOwner } from "./owner.ts";
import {
  expectation,
  type RegistryWriter,
  sameContent,
  sortKeys,
  type WritePreconditions,
} from "./writer.ts";

/** Node registrations and removals. */
export class NodeRegistrations {
  readonly #w: RegistryWriter;
  readonly #liveness: Liveness;

  constructor(writer: RegistryWriter, liveness: Liveness) {
    this.#w = writer;
    this.#liveness = liveness;
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
    return this.#w.serial(`node:${name}`, async () => {
      const existing = await this.#w.store.get("node", name);
      checkOwner(actor, name, existing?.owner);
      const nowMs = this.#w.clock.now();
      const now = this.#w.iso(nowMs);
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
        (await this.#w.store.list("instance", { node: name, limit: 10_000 })).map((i) => [i.id, i]),
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
      const revision = await this.#w.commit(writes, [{
        kind: "node",
        key: name,
        revision: existing?.revision ?? null,
      }], removed);
      this.#liveness.track(name, {
        owner: node.owner,
        lastBeatMs: nowMs,
        status: "alive",
        ttlMs: node.ttlMs,
        checks: new Map(reg.instances.map((r) => [r.id, r.check])),
        dirty: existing !== null && writes.every((w) => w.kind !== "node"),
      });
      if (writes.length > 0) {
        this.#w.log.info("Node registered", { node: name, instances: instances.length, revision });
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
    const service = queued?.value ?? await this.#w.store.get("service", key);
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
      const service = await this.#w.store.get("service", key);
      if (!service || service.managedBy !== "registry") continue;
      const others = await this.#w.store.list("instance", {
        namespace: inst.namespace,
        service: inst.service,
        limit: 1,
        where: (i) => i.node !== node,
      });
      if (others.length === 0) writes.push({ op: "delete", kind: "service", key });
    }
    return writes;
  }

  /** Removes a node with its instances and the services only they formed; call under its lock. */
  async remove(
    name: string,
    reason: string,
    pre: WritePreconditions = {},
    fence?: Fence,
  ): Promise<void> {
    const node = await this.#w.store.get("node", name);
    if (!node) {
      this.#liveness.forget(name);
      throw new NotFoundError(`Node "${name}" is not registered`);
    }
    const instances = await this.#w.store.list("instance", { node: name, limit: 10_000 });
    const writes: Write[] = [
      { op: "delete", kind: "node", key: name },
      ...instances.map((i) => ({ op: "delete", kind: "instance", key: i.id }) as const),
      ...await this.#orphanedServices(instances, name),
    ];
    await this.#w.commit(writes, expectation("node", name, node, pre), instances, fence);
    this.#liveness.forget(name);
    this.#w.log.info("Node removed", { node: name, reason, instances: instances.length });
  }

  /** Removes a node and its instances (agent leaving, or an operator decommissioning it). */
  deregister(name: string, actor: Actor, pre: WritePreconditions = {}): Promise<void> {
    return this.#w.serial(`node:${name}`, async () => {
      const node = await this.#w.store.get("node", name);
      if (!node) throw new NotFoundError(`Node "${name}" is not registered`);
      checkOwner(actor, name, node.owner);
      await this.remove(name, actor.role === "agent" ? "agent left" : "deleted", pre);
    });
  }

  /** Drains or undrains a node: its instances stay registered but get no traffic. */
  drainNode(name: string, draining: boolean, pre: WritePreconditions): Promise<MeshNode> {
    return this.#w.serial(`node:${name}`, async () => {
      const node = await this.#w.store.get("node", name);
      if (!node) throw new NotFoundError(`Node "${name}" is not registered`);
      const expect = expectation("node", name, node, pre);
      if (node.draining === draining) {
        await this.#w.commit([], expect);
        return node;
      }
      const updated = { ...node, draining };
      const writes: Write[] = [{ op: "put", kind: "node", value: updated }];
      for (const inst of await this.#w.store.list("instance", { node: name, limit: 10_000 })) {
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
      const revision = await this.#w.commit(writes, expect);
      this.#w.log.info(draining ? "Node drained" : "Node undrained", { node: name });
      return { ...updated, revision };
    });
  }

  /** Drains or undrains one instance. */
  drainInstance(id: string, draining: boolean, pre: WritePreconditions): Promise<Instance> {
    const nodeName = id.slice(id.indexOf("@") + 1);
    return this.#w.serial(`node:${nodeName}`, async () => {
      const inst = await this.#w.store.get("instance", id);
      if (!inst) throw new NotFoundError(`Instance "${id}" does not exist`);
      const node = await this.#w.store.get("node", inst.node);
      const expect = expectation("instance", id, inst, pre);
      if (inst.draining === draining) {
        await this.#w.commit([], expect);
        return inst;
      }
      const health = instanceHealth({
        check: inst.check.status,
        instanceDraining: draining,
        nodeDraining: node?.draining ?? false,
        nodeStatus: node?.status ?? "stale",
      });
      const updated = { ...inst, draining, health };
      const revision = await this.#w.commit(
        [{ op: "put", kind: "instance", value: updated }],
        expect,
      );
      return { ...updated, revision };
    });
  }
}
