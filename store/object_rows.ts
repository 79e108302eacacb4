/**
 * How a registry object becomes a row and back, for every store backend:
 * the JSON of the object without its revision, the revision and heartbeat
 * in columns of their own (a heartbeat is written without rewriting the
 * JSON), and the columns that lists filter on; and the words of a failed
 * expectation.
 */
import { PreconditionFailedError } from "../core/errors.ts";
import type { Instance, MeshNode, Service } from "../core/model.ts";
import type { Expectation, Kind, Objects } from "./store.ts";

/** The columns of an object's row that are not its index columns. */
export interface ObjectRow {
  data: string;
  revision: number | bigint;
  heartbeat: string | null;
}

/** The object a row holds. */
export function decodeObject<K extends Kind>(row: ObjectRow): Objects[K] {
  const value = JSON.parse(row.data) as Record<string, unknown>;
  value.revision = Number(row.revision);
  if (typeof row.heartbeat === "string") value.lastHeartbeat = row.heartbeat;
  return value as unknown as Objects[K];
}

/** The stored JSON: the object without its revision, which the row's column holds. */
export function objectData(value: Service | MeshNode | Instance): string {
  const { revision: _ignored, ...data } = value;
  return JSON.stringify(data);
}

/** The columns lists filter on, and the heartbeat. */
export interface IndexColumns {
  namespace: string | null;
  service: string | null;
  node: string | null;
  health: string | null;
  heartbeat: string | null;
}

/** The index columns of an object of `kind`. */
export function indexColumns(kind: Kind, value: Service | MeshNode | Instance): IndexColumns {
  const none = { namespace: null, service: null, node: null, health: null, heartbeat: null };
  switch (kind) {
    case "service": {
      const s = value as Service;
      return { ...none, namespace: s.namespace, service: s.name };
    }
    case "node": {
      const n = value as MeshNode;
      return { ...none, node: n.name, heartbeat: n.lastHeartbeat };
    }
    case "instance": {
      const i = value as Instance;
      return {
        ...none,
        namespace: i.namespace,
        service: i.service,
        node: i.node,
        health: i.health,
      };
    }
  }
}

/** The error for an expectation that `actual` (the stored revision, or `null`) does not meet. */
export function expectationFailed(
  expected: Expectation,
  actual: number | null,
): PreconditionFailedError {
  const what = `${expected.kind} "${expected.key}"`;
  return new PreconditionFailedError(
    expected.revision === null
      ? `The ${what} already exists`
      : actual === null
      ? `The ${what} no longer exists`
      : `The ${what} changed: it is at revision ${actual}, not ${expected.revision}`,
    actual,
  );
}
