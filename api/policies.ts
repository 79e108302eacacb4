/**
 * The policy routes of the REST API (declared in `policy_operations.ts`):
 * batches applied atomically (`ironmesh apply`), one policy at its path,
 * history and rollback, dry runs that report what would change. MeshConfig
 * has no namespace: its path is `/v1/policies/meshconfig/mesh`.
 */
import type { Context } from "hono";
import { z } from "zod";
import { InvalidError, NotFoundError } from "../core/errors.ts";
import {
  type AnyPolicy,
  MESH_CONFIG_NAME,
  policyKey,
  type PolicyKind,
  policyKindFromText,
} from "../core/policy/model.ts";
import { matchesSelector } from "../core/labels.ts";
import type { ApplyResult } from "../policy/service.ts";
import type { ApiContext } from "./app.ts";
import { type ApiEnv, filtersOf } from "./operation.ts";
import { POLICIES } from "./policy_operations.ts";
import { HttpProblem } from "./problem.ts";
import {
  encodeCursor,
  etag,
  pathName,
  readBody,
  readListQuery,
  readPreconditions,
} from "./request.ts";

/** A policy's address from the path: its kind, namespace (`""` for MeshConfig) and name. */
interface PolicyRef {
  kind: PolicyKind;
  namespace: string;
  name: string;
}

function kindOf(c: Context): PolicyKind {
  const text = c.req.param("kind") ?? "";
  const kind = policyKindFromText(text);
  if (!kind) {
    throw new InvalidError(`Unknown policy kind "${text}"`, [{
      in: "path",
      pointer: "/kind",
      message:
        "Must be one of trafficroute, destinationpolicy, authorizationpolicy, ratelimit, meshconfig",
    }]);
  }
  return kind;
}

function meshConfigRef(c: Context, param: string): PolicyRef {
  const name = c.req.param(param);
  if (name !== MESH_CONFIG_NAME) {
    throw new NotFoundError(
      `MeshConfig has one object, "${MESH_CONFIG_NAME}": use /v1/policies/meshconfig/${MESH_CONFIG_NAME}`,
    );
  }
  return { kind: "MeshConfig", namespace: "", name };
}

function namespacedRef(c: Context, kind: PolicyKind): PolicyRef {
  if (kind === "MeshConfig") {
    throw new NotFoundError(
      `MeshConfig is not namespaced: use /v1/policies/meshconfig/${MESH_CONFIG_NAME}`,
    );
  }
  return { kind, namespace: pathName(c, "namespace", "label"), name: pathName(c, "name", "label") };
}

const dryRunSchema = z.enum(["true", "false"]);

function dryRunOf(c: Context): boolean {
  const text = c.req.query("dryRun");
  if (text === undefined) return false;
  if (!dryRunSchema.safeParse(text).success) {
    throw new InvalidError(`Invalid dryRun "${text}": use true or false`, [{
      in: "query",
      pointer: "/dryRun",
      message: "Must be true or false",
    }]);
  }
  return text === "true";
}

/** If-Match / If-None-Match as the revision the object must be at (`null`: must not exist). */
function expectationOf(c: Context): number | null | undefined {
  const pre = readPreconditions(c);
  if (pre.ifMatch !== undefined && pre.ifNoneMatch) {
    throw new InvalidError("Send If-Match or If-None-Match, not both", [{
      in: "header",
      pointer: "/If-None-Match",
      message: "Cannot be combined with If-Match",
    }]);
  }
  return pre.ifMatch ?? (pre.ifNoneMatch ? null : undefined);
}

/**
 * A batch as read here: its documents are validated together by the policy
 * service, which points at every problem of every one.
 */
const batchSchema = z.strictObject({ items: z.array(z.unknown()).min(1).max(1000) });

/** The sub-app of {@link POLICIES}. */
export function policiesApp({ deps, resourceApp }: ApiContext) {
  const { policies, policyFeed: feed } = deps;
  const ops = POLICIES.operations;
  const actor = (c: Context<ApiEnv>) => c.get("principal").tokenId;

  /**
   * Renders one write: the object with its ETag, or the dry run's report; a
   * refusal points into the object, not into the batch it was checked in.
   */
  async function written(c: Context<ApiEnv>, write: Promise<ApplyResult>) {
    const result = await write.catch((error) => {
      throw unbatched(error);
    });
    const item = result.items[0]!;
    if (result.dryRun || !item.object) return c.json(result);
    c.header("etag", etag(item.object.metadata.revision));
    // Kubernetes' convention: clients such as kubectl print `Warning` headers as they come.
    for (const w of result.warnings) {
      const text = `${w.pointer || "/"}: ${w.message}`.replace(/[\\"]/g, "\\$&");
      c.header("warning", `299 - "${text.replace(/[^\x20-\x7e]/g, "?")}"`, { append: true });
    }
    return c.json(item.object, item.action === "created" ? 201 : 200);
  }

  async function putOne(c: Context<ApiEnv>, ref: PolicyRef) {
    const expect = expectationOf(c);
    const dryRun = dryRunOf(c);
    const body = await readBody(c, z.unknown(), "policy");
    const isObject = (v: unknown): v is Record<string, unknown> =>
      typeof v === "object" && v !== null && !Array.isArray(v);
    if (!isObject(body)) {
      throw new InvalidError("Invalid policy: the body must be a policy document (an object)", [{
        pointer: "",
        message: "Must be an object",
      }]);
    }
    const doc = body;
    // Read below as the object's name; anything but an object would be dropped silently.
    if (doc["metadata"] !== undefined && !isObject(doc["metadata"])) {
      throw new InvalidError("Invalid policy: /metadata: Must be an object", [{
        pointer: "/metadata",
        message: "Must be an object",
      }]);
    }
    const metadata = (doc["metadata"] ?? {}) as Record<string, unknown>;
    // The path names the object: a body that names another one is refused, not silently moved.
    const problems = [];
    if (doc["kind"] !== undefined && doc["kind"] !== ref.kind) {
      problems.push({ pointer: "/kind", message: `Must be "${ref.kind}", as in the path` });
    }
    if (metadata["name"] !== undefined && metadata["name"] !== ref.name) {
      problems.push({
        pointer: "/metadata/name",
        message: `Must be "${ref.name}", as in the path`,
      });
    }
    if (
      metadata["namespace"] !== undefined && (metadata["namespace"] ?? "") !== ref.namespace
    ) {
      problems.push({
        pointer: "/metadata/namespace",
        message: `Must be "${ref.namespace}", as in the path`,
      });
    }
    if (problems.length > 0) {
      throw new InvalidError(
        `Invalid policy: ${problems[0]!.pointer}: ${problems[0]!.message}`,
        problems,
      );
    }
    const document = {
      ...doc,
      kind: ref.kind,
      metadata: {
        ...metadata,
        name: ref.name,
        ...(ref.kind === "MeshConfig" ? {} : { namespace: ref.namespace }),
      },
    };
    return written(c, policies.apply([document], { actor: actor(c), dryRun, expect: [expect] }));
  }

  async function getOne(c: Context<ApiEnv>, ref: PolicyRef) {
    const policy = await policies.get(ref.kind, ref.namespace, ref.name);
    c.header("etag", etag(policy.metadata.revision));
    return c.json(policy);
  }

  async function deleteOne(c: Context<ApiEnv>, ref: PolicyRef) {
    const expect = expectationOf(c);
    const result = await policies.delete(ref.kind, ref.namespace, ref.name, {
      actor: actor(c),
      dryRun: dryRunOf(c),
      expect: [expect],
    });
    return c.json(result);
  }

  async function historyOf(c: Context<ApiEnv>, ref: PolicyRef) {
    return c.json({ items: await policies.history(ref.kind, ref.namespace, ref.name), next: null });
  }

  async function rollbackOf(c: Context<ApiEnv>, ref: PolicyRef) {
    const expect = expectationOf(c);
    const dryRun = dryRunOf(c);
    const body = await readBody(c, ops.rollbackPolicy.body, "rollback");
    return written(
      c,
      policies.rollback(ref.kind, ref.namespace, ref.name, body.revision, {
        actor: actor(c),
        dryRun,
        expect: [expect],
      }),
    );
  }

  /**
   * A page of policies, blocking first when the caller passed `?index=`
   * (the policy revision of `X-Ironmesh-Index`), like the registry lists.
   */
  async function listPage(
    c: Context<ApiEnv>,
    kind: PolicyKind | undefined,
    namespace: string | undefined,
    allowed: readonly string[],
  ) {
    const request = readListQuery(c, allowed);
    if (request.index !== undefined) await feed.wait(request.index, request.waitMs);
    const revision = feed.revision;
    const all = await policies.list(kind, namespace ?? request.filter.namespace);
    const keyOf = (p: AnyPolicy) => policyKey(p.kind, p.metadata.namespace, p.metadata.name);
    const { after, selector } = request.filter;
    const rest = all.filter((p) =>
      (after === undefined || keyOf(p) > after) &&
      (!selector || matchesSelector(selector, p.metadata.labels))
    );
    const items = rest.slice(0, request.filter.limit);
    const more = rest.length > items.length;
    c.header("x-ironmesh-index", String(revision));
    return c.json({ items, next: encodeCursor(more ? keyOf(items.at(-1)!) : null) });
  }

  return resourceApp(POLICIES, {
    listPolicies: (c) => {
      const kindText = c.req.query("kind");
      const kind = kindText === undefined ? undefined : policyKindFromText(kindText);
      if (kindText !== undefined && !kind) {
        throw new InvalidError(`Unknown policy kind "${kindText}"`, [{
          in: "query",
          pointer: "/kind",
          message: "Not a policy kind",
        }]);
      }
      return listPage(c, kind, undefined, filtersOf(ops.listPolicies));
    },
    applyPolicies: async (c) => {
      const dryRun = dryRunOf(c);
      const body = await readBody(c, batchSchema, "policy batch");
      const result = await policies.apply(body.items, { actor: actor(c), dryRun });
      const created = !dryRun && result.items.some((i) => i.action === "created");
      return c.json(result, created ? 201 : 200);
    },
    listPoliciesOfKind: (c) => listPage(c, kindOf(c), undefined, filtersOf(ops.listPoliciesOfKind)),
    // Two segments: MeshConfig's one object, or a namespaced kind's list in one namespace.
    listPoliciesInNamespace: (c) => {
      const kind = kindOf(c);
      if (kind === "MeshConfig") return getOne(c, meshConfigRef(c, "namespace"));
      const namespace = pathName(c, "namespace", "label");
      return listPage(c, kind, namespace, filtersOf(ops.listPoliciesInNamespace));
    },
    putMeshConfig: (c) => {
      kindOfMeshConfig(c);
      return putOne(c, meshConfigRef(c, "namespace"));
    },
    deleteMeshConfig: (c) => {
      kindOfMeshConfig(c);
      return deleteOne(c, meshConfigRef(c, "namespace"));
    },
    // Three segments: a namespaced object, or MeshConfig's history and rollback.
    getPolicy: (c) => {
      const kind = kindOf(c);
      if (kind === "MeshConfig" && c.req.param("name") === "history") {
        return historyOf(c, meshConfigRef(c, "namespace"));
      }
      return getOne(c, namespacedRef(c, kind));
    },
    putPolicy: (c) => putOne(c, namespacedRef(c, kindOf(c))),
    deletePolicy: (c) => deleteOne(c, namespacedRef(c, kindOf(c))),
    rollbackMeshConfig: (c) => {
      const kind = kindOf(c);
      if (kind !== "MeshConfig" || c.req.param("name") !== "rollback") {
        throw new NotFoundError(`No route for POST ${c.req.path}`);
      }
      return rollbackOf(c, meshConfigRef(c, "namespace"));
    },
    getPolicyHistory: (c) => historyOf(c, namespacedRef(c, kindOf(c))),
    rollbackPolicy: (c) => rollbackOf(c, namespacedRef(c, kindOf(c))),
  }, {
    // A refused write is audited like any other refused write.
    refused: async (c, op, error) => {
      const action = WRITE_ACTIONS[op.operationId as keyof typeof WRITE_ACTIONS];
      if (action) await policies.refused(action, refusedRef(c), actor(c), 403, error.message);
    },
  });
}

type PolicyOperations = typeof POLICIES.operations;

/** The operations that write policies. */
type WriteOperation = {
  [K in keyof PolicyOperations]: PolicyOperations[K]["access"] extends "write" ? K : never;
}[keyof PolicyOperations];

/** The audit log's action of each policy write. */
const WRITE_ACTIONS: Record<WriteOperation, "apply" | "delete" | "rollback"> = {
  applyPolicies: "apply",
  putMeshConfig: "apply",
  putPolicy: "apply",
  deleteMeshConfig: "delete",
  deletePolicy: "delete",
  rollbackMeshConfig: "rollback",
  rollbackPolicy: "rollback",
};

/**
 * The object a refused write names, as far as its path tells before it is
 * validated (all empty for a batch: its objects are not read for a caller
 * who may not write them).
 */
function refusedRef(c: Context): { kind: string; namespace: string; name: string } {
  const text = c.req.param("kind");
  const kind = text === undefined ? "" : policyKindFromText(text) ?? text;
  const namespace = c.req.param("namespace") ?? "";
  // MeshConfig's one object is named where namespaced kinds have their namespace.
  if (kind === "MeshConfig") return { kind, namespace: "", name: namespace };
  return { kind, namespace, name: c.req.param("name") ?? "" };
}

/** Two-segment writes exist only for MeshConfig. */
function kindOfMeshConfig(c: Context): void {
  if (kindOf(c) !== "MeshConfig") {
    throw new HttpProblem(
      405,
      "Method not allowed",
      `Write a namespaced policy at /v1/policies/${c.req.param("kind")}/{namespace}/{name}`,
    );
  }
}

/**
 * A one-object write reports pointers from the object's root, not from
 * `/items/0` of the batch the service validated it in.
 */
function unbatched(error: unknown): unknown {
  if (!(error instanceof InvalidError)) return error;
  const problems = error.problems.map((p) => ({
    ...p,
    pointer: p.pointer.replace(/^\/items\/0(?=\/|$)/, ""),
  }));
  return new InvalidError(error.message.replace(/\/items\/0(?=\/|:)/, ""), problems);
}
