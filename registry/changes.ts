/**
 * The keyed change event of one registry commit: which services' shape,
 * which services' endpoints and which nodes a batch of writes touched.
 */
import { type MeshChange, meshChange } from "../core/mesh_change.ts";
import type { Instance } from "../core/model.ts";
import type { LogChange, Write } from "../store/store.ts";

/**
 * The {@link MeshChange} of `writes`. A deleted instance is named by id
 * only, so `gone` gives the deleted instances whose services must be named;
 * its node comes from the id (`<local id>@<node>`) either way.
 */
export function changeOfWrites(writes: readonly Write[], gone: readonly Instance[]): MeshChange {
  const endpoints: string[] = [];
  const services: string[] = [];
  const nodes: string[] = [];
  const goneById = new Map(gone.map((i) => [i.id, i]));
  for (const w of writes) {
    if (w.kind === "service") {
      services.push(w.op === "put" ? `${w.value.namespace}/${w.value.name}` : w.key);
    } else if (w.kind === "node") {
      nodes.push(w.op === "put" ? w.value.name : w.key);
    } else if (w.op === "put") {
      endpoints.push(`${w.value.namespace}/${w.value.service}`);
      nodes.push(w.value.node);
    } else {
      const instance = goneById.get(w.key);
      if (instance) endpoints.push(`${instance.namespace}/${instance.service}`);
      nodes.push(w.key.slice(w.key.lastIndexOf("@") + 1));
    }
  }
  return meshChange({ endpoints, services, nodes });
}

/**
 * The {@link MeshChange} of revision log entries another replica wrote
 * (`LogChange` in `store/store.ts`): the same keys its local write named.
 * An instance names its services before and after the write and its node
 * (from its id); a certificate names its holder, whose identity peers
 * check. Tokens and settings name nothing the push pipeline reads.
 */
export function changeOfLog(changes: readonly LogChange[]): MeshChange {
  const endpoints: string[] = [];
  const services: string[] = [];
  const nodes: string[] = [];
  const policies: string[] = [];
  for (const c of changes) {
    switch (c.kind) {
      case "service":
        services.push(c.key);
        break;
      case "node":
        nodes.push(c.key);
        break;
      case "instance":
        endpoints.push(...c.services);
        nodes.push(c.key.slice(c.key.lastIndexOf("@") + 1));
        break;
      case "policy":
        policies.push(c.key);
        break;
      case "certificate":
        nodes.push(c.node);
        break;
    }
  }
  return meshChange({ endpoints, services, nodes, policies });
}
