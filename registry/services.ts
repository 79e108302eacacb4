/**
 * Services an operator declares (`PUT /v1/services/...`): their ports and
 * labels, kept in agreement with the protocols registered instances speak.
 */
import { ConflictError, InvalidError, NotFoundError } from "../core/errors.ts";
import type { Service, ServicePort, ServicePut } from "../core/model.ts";
import { MAX_PAGE_SCAN } from "./reads.ts";
import * as writes from "./writer.ts";

/** Declared services. */
export class ServiceDeclarations {
  readonly #w: writes.RegistryWriter;

  constructor(writer: writes.RegistryWriter) {
    this.#w = writer;
  }

  /**
   * Creates or replaces a service an operator declares. Ports already used by
   * registered instances stay (with their protocol); declaring one of them
   * with another protocol is a conflict, since the instances speak theirs.
   */
  putService(
    namespace: string,
    name: string,
    body: ServicePut,
    pre: writes.WritePreconditions,
  ): Promise<{ service: Service; created: boolean }> {
    return this.#w.serial(`service:${namespace}/${name}`, async () => {
      const key = `${namespace}/${name}`;
      const existing = await this.#w.store.get("service", key);
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
        const inst of await this.#w.store.list("instance", {
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
        labels: writes.sortKeys(body.labels),
        managedBy: "api",
        createdAt: existing?.createdAt ?? this.#w.iso(),
        revision: 0,
      };
      const expect = writes.expectation("service", key, existing, pre);
      if (existing && writes.sameContent(existing, service)) {
        await this.#w.commit([], expect);
        return { service: existing, created: false };
      }
      const revision = await this.#w.commit(
        [{ op: "put", kind: "service", value: service }],
        expect,
      );
      return { service: { ...service, revision }, created: !existing };
    });
  }

  /** Deletes a service that has no instances left. */
  deleteService(namespace: string, name: string, pre: writes.WritePreconditions): Promise<void> {
    return this.#w.serial(`service:${namespace}/${name}`, async () => {
      const key = `${namespace}/${name}`;
      const existing = await this.#w.store.get("service", key);
      if (!existing) {
        throw new NotFoundError(`Service "${name}" does not exist in namespace "${namespace}"`);
      }
      const remaining = await this.#w.store.list("instance", {
        namespace,
        service: name,
        limit: 1,
      });
      if (remaining.length > 0) {
        throw new ConflictError(
          `Service "${name}" in namespace "${namespace}" still has instances (e.g. "${
            remaining[0]!.id
          }"): deregister them first`,
        );
      }
      await this.#w.commit(
        [{ op: "delete", kind: "service", key }],
        writes.expectation("service", key, existing, pre),
      );
    });
  }
}
