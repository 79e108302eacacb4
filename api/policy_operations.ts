/**
 * The policy routes as the OpenAPI document shows them (their schemas are in
 * `policy_schemas.ts`, their handlers in `policies.ts`).
 */
import { z } from "zod";
import { labelName } from "../core/names.ts";
import {
  authorizationPolicySpecSchema,
  authorizationRuleSchema,
  bucketSchema,
  connectionPoolSchema,
  destinationPolicySpecSchema,
  headerOpsSchema,
  loadBalancerSchema,
  meshConfigSpecSchema,
  outlierDetectionSchema,
  POLICY_KINDS,
  rateLimitSpecSchema,
  retriesSchema,
  routeMatchSchema,
  routeRuleSchema,
  stringMatchSchema,
  subsetSchema,
  trafficRouteSpecSchema,
  valueMatchSchema,
} from "../core/policy/model.ts";
import {
  applyItemSchema,
  applyResultSchema,
  jsonChangeSchema,
  policyBatchSchema,
  policyDocumentSchema,
  policyInputMetadataSchema,
  policyMetadataSchema,
  policyPutSchema,
  policyRevisionSchema,
  policyRollbackSchema,
  policySchema,
  proxyChangeSchema,
  resourceChangeSchema,
} from "./policy_schemas.ts";
import {
  IF_MATCH,
  IF_NONE_MATCH,
  listQuery,
  oneOf,
  onePageOf,
  pathParam,
  queryParam,
  type Reply,
  resource,
} from "./operation.ts";

const policyList = onePageOf(policySchema, "policy of the kind (and namespace) asked for");
const policyHistory = onePageOf(policyRevisionSchema, "revision of the policy, oldest first");

const KIND = pathParam(
  "kind",
  z.enum(POLICY_KINDS.map((k) => k.toLowerCase()) as [string, ...string[]]),
  "The policy kind, lower-case (any case and the plural, e.g. `trafficroutes`, work too)",
);
const NAMESPACE = pathParam("namespace", labelName, "Namespace: a DNS-1123 label");
const NAME = pathParam("name", labelName, "Policy name: a DNS-1123 label");
/** MeshConfig's routes: `/v1/policies/meshconfig/mesh[/history|/rollback]`. */
const MESH_CONFIG_KIND = pathParam("kind", z.literal("meshconfig"), "Only `meshconfig` (any case)");
const MESH_CONFIG_NAME_PARAM = pathParam(
  "namespace",
  z.literal("mesh"),
  "MeshConfig's one object, `mesh` (this segment holds a namespace for the other kinds)",
);

/** The query of policy writes. */
const DRY_RUN = queryParam(
  "dryRun",
  z.enum(["true", "false"]),
  "`true`: validate and report which proxy configurations would change, with diffs, storing nothing. Default `false`",
);

/**
 * The answers of a write that returns the object: 200 with it (or, in a dry
 * run, what would change), 201 when it was created; with its ETag and the
 * warnings it passed with.
 */
function written(stored: string, created: string): Reply[] {
  return [
    {
      status: 200,
      description: stored,
      body: oneOf("Policy", "ApplyResult"),
      headers: ["ETag", "Warning"],
    },
    { status: 201, description: created, body: policySchema, headers: ["ETag", "Warning"] },
  ];
}

/** The policy routes. */
export const POLICIES = resource({
  prefix: "/v1/policies",
  responses: {
    PolicyMetadata: policyMetadataSchema,
    Policy: policySchema,
    PolicyList: policyList,
    ApplyItem: applyItemSchema,
    ApplyResult: applyResultSchema,
    ProxyChange: proxyChangeSchema,
    ResourceChange: resourceChangeSchema,
    JsonChange: jsonChangeSchema,
    PolicyRevision: policyRevisionSchema,
    PolicyHistory: policyHistory,
  },
  requests: {
    PolicyDocument: policyDocumentSchema,
    PolicyInputMetadata: policyInputMetadataSchema,
    PolicyBatch: policyBatchSchema,
    PolicyPut: policyPutSchema,
    PolicyRollback: policyRollbackSchema,
  },
  // The model's spec schemas carry no description of their own (adding one would make a new
  // schema, which the specs nesting them would not reference), so they are described here.
  shared: {
    TrafficRouteSpec: {
      schema: trafficRouteSpecSchema,
      description:
        "A TrafficRoute's spec: how requests to `service` are routed; the first rule that matches decides",
    },
    RouteRule: {
      schema: routeRuleSchema,
      description:
        "One rule: what it matches, and where and how matching requests go (or a redirect answered instead)",
    },
    RouteMatch: {
      schema: routeMatchSchema,
      description:
        "What a rule matches; every field given must match, and none given matches everything",
    },
    StringMatch: {
      schema: stringMatchSchema,
      description:
        "Exactly one of `exact`, `prefix`, `regex` (RE2, matched against the whole value)",
    },
    ValueMatch: {
      schema: valueMatchSchema,
      description: "Exactly one of `exact`, `prefix`, `regex` (RE2), `present`",
    },
    Retries: {
      schema: retriesSchema,
      description: "How a request is retried",
    },
    HeaderOps: {
      schema: headerOpsSchema,
      description: "Headers to set (replacing any value) and to remove",
    },
    DestinationPolicySpec: {
      schema: destinationPolicySpecSchema,
      description:
        "A DestinationPolicy's spec: `service`'s subsets and the settings of the connections to it",
    },
    Subset: {
      schema: subsetSchema,
      description: "A named set of a service's instances, by their labels, with its own settings",
    },
    LoadBalancer: {
      schema: loadBalancerSchema,
      description:
        "How a backend is picked; RING_HASH and MAGLEV need `hash`. Proxyless gRPC clients refuse LEAST_REQUEST",
    },
    ConnectionPool: {
      schema: connectionPoolSchema,
      description: "Circuit-breaker limits of the connections to a service",
    },
    OutlierDetection: {
      schema: outlierDetectionSchema,
      description: "Ejects instances that keep failing",
    },
    AuthorizationPolicySpec: {
      schema: authorizationPolicySpecSchema,
      description:
        "An AuthorizationPolicy's spec: who may call `service` (omitted: every service of the namespace). DENY policies are checked before ALLOW ones",
    },
    AuthorizationRule: {
      schema: authorizationRuleSchema,
      description:
        "Matches a request from any of `from` to any of `to` (an omitted list matches anything)",
    },
    RateLimitSpec: {
      schema: rateLimitSpecSchema,
      description:
        "A RateLimit's spec: token buckets at each sidecar in front of `service`'s instances",
    },
    Bucket: {
      schema: bucketSchema,
      description:
        "A token bucket: `requests` per `per`, up to `burst` at once (default: `requests`)",
    },
    MeshConfigSpec: {
      schema: meshConfigSpecSchema,
      description: "The MeshConfig's spec: mesh-wide defaults",
    },
  },
  operations: {
    listPolicies: {
      method: "get",
      path: "",
      tag: "Policies",
      summary: "List policies of every kind",
      access: "read",
      description:
        "Pages like the registry lists. `X-Ironmesh-Index` is the policy revision, bumped by every policy write; pass it back as `index` to wait for the next write (a blocking query).",
      params: [
        queryParam("kind", z.string(), "Only this kind (any case, singular or plural)"),
        ...listQuery("namespace"),
      ],
      replies: [{
        status: 200,
        description: "A page of policies, by kind, namespace and name",
        body: policyList,
        headers: ["X-Ironmesh-Index"],
      }],
      errors: { 422: "An unknown kind" },
    },
    applyPolicies: {
      method: "post",
      path: "",
      tag: "Policies",
      summary: "Apply a batch of policies atomically (ironmesh apply)",
      description:
        "Creates or updates every document, or none: the batch is validated as a whole against the mesh as it will be (a TrafficRoute may use a subset that a DestinationPolicy of the same batch defines), and every problem of every document is reported, with pointers `/items/<i>/…`. A document whose labels and spec equal what is stored is `unchanged` and gets no new revision. Refused writes are audited.",
      access: "write",
      params: [DRY_RUN],
      body: policyBatchSchema,
      replies: [
        {
          status: 200,
          description: "Applied with nothing created (updated or unchanged), or a dry run",
          body: applyResultSchema,
        },
        {
          status: 201,
          description: "Applied, and at least one policy was created",
          body: applyResultSchema,
        },
      ],
      errors: {
        412: "Another write changed one of these policies while this batch was validated; retry",
        422: "A document is invalid, or conflicts with the mesh; `problems` points at each one",
      },
    },
    listPoliciesOfKind: {
      method: "get",
      path: "/{kind}",
      tag: "Policies",
      summary: "List the policies of a kind",
      access: "read",
      params: [KIND, ...listQuery("namespace")],
      replies: [{
        status: 200,
        description: "A page of the policies, by namespace and name",
        body: policyList,
        headers: ["X-Ironmesh-Index"],
      }],
      errors: { 422: "An unknown kind" },
    },
    listPoliciesInNamespace: {
      method: "get",
      path: "/{kind}/{namespace}",
      tag: "Policies",
      summary: "List a kind's policies in a namespace, or get the MeshConfig",
      description:
        "For a namespaced kind, its policies in the namespace. `GET /v1/policies/meshconfig/mesh` answers the MeshConfig instead, with its `ETag`.",
      access: "read",
      params: [
        KIND,
        { ...NAMESPACE, description: "A namespace; for `meshconfig`, the object's name `mesh`" },
        ...listQuery(),
      ],
      replies: [{
        status: 200,
        description: "A page of the namespace's policies, or the MeshConfig",
        body: oneOf("PolicyList", "Policy"),
        headers: ["ETag", "X-Ironmesh-Index"],
      }],
      errors: { 404: "No MeshConfig is stored (or a name other than `mesh`)" },
    },
    putMeshConfig: {
      method: "put",
      path: "/{kind}/{namespace}",
      tag: "Policies",
      summary: "Create or replace the MeshConfig",
      description:
        "`PUT /v1/policies/meshconfig/mesh`. Validated and stored like any policy write. Without `dryRun`, answers the stored object; with it, what would change.",
      access: "write",
      params: [MESH_CONFIG_KIND, MESH_CONFIG_NAME_PARAM, DRY_RUN, IF_MATCH, IF_NONE_MATCH],
      body: policyPutSchema,
      replies: written(
        "Replaced or unchanged (the object), or a dry run (what would change)",
        "Created",
      ),
      errors: { 404: "Another name than `mesh`" },
    },
    deleteMeshConfig: {
      method: "delete",
      path: "/{kind}/{namespace}",
      tag: "Policies",
      summary: "Delete the MeshConfig: every proxy goes back to the defaults",
      description: "`DELETE /v1/policies/meshconfig/mesh`.",
      access: "write",
      params: [MESH_CONFIG_KIND, MESH_CONFIG_NAME_PARAM, DRY_RUN, IF_MATCH],
      replies: [{
        status: 200,
        description: "Deleted, or a dry run",
        body: applyResultSchema,
      }],
      errors: { 404: "No MeshConfig is stored" },
    },
    getPolicy: {
      method: "get",
      path: "/{kind}/{namespace}/{name}",
      tag: "Policies",
      summary: "Get a policy",
      description:
        "`GET /v1/policies/meshconfig/mesh/history` answers the MeshConfig's history instead (see `getPolicyHistory`).",
      access: "read",
      params: [KIND, NAMESPACE, NAME],
      replies: [{
        status: 200,
        description: "The policy (with its `ETag`), or the MeshConfig's history",
        body: oneOf("Policy", "PolicyHistory"),
        headers: ["ETag"],
      }],
      errors: { 404: "The policy does not exist" },
    },
    putPolicy: {
      method: "put",
      path: "/{kind}/{namespace}/{name}",
      tag: "Policies",
      summary: "Create or replace a policy",
      description:
        "The body needs only `spec` (and optional labels): kind, namespace and name come from the path. Validated like a batch of one; problems point into this body. An identical write changes nothing and adds no revision. Without `dryRun`, answers the stored object; with it, what would change.",
      access: "write",
      params: [KIND, NAMESPACE, NAME, DRY_RUN, IF_MATCH, IF_NONE_MATCH],
      body: policyPutSchema,
      replies: written(
        "Replaced or unchanged (the object), or a dry run (what would change)",
        "Created",
      ),
      errors: {
        404: "`meshconfig` with a namespace: use `/v1/policies/meshconfig/mesh`",
        422:
          "The body is invalid, names another object than the path, or conflicts with the mesh; or a parameter or header is invalid",
      },
    },
    deletePolicy: {
      method: "delete",
      path: "/{kind}/{namespace}/{name}",
      tag: "Policies",
      summary: "Delete a policy",
      access: "write",
      params: [KIND, NAMESPACE, NAME, DRY_RUN, IF_MATCH],
      replies: [{
        status: 200,
        description: "Deleted, or a dry run",
        body: applyResultSchema,
      }],
      errors: { 404: "The policy does not exist" },
    },
    rollbackMeshConfig: {
      method: "post",
      path: "/{kind}/{namespace}/{name}",
      tag: "Policies",
      summary: "Roll the MeshConfig back to an earlier revision",
      description: "`POST /v1/policies/meshconfig/mesh/rollback`; see `rollbackPolicy`.",
      access: "write",
      params: [
        MESH_CONFIG_KIND,
        MESH_CONFIG_NAME_PARAM,
        pathParam("name", z.literal("rollback"), "Only `rollback`"),
        DRY_RUN,
        IF_MATCH,
        {
          ...IF_NONE_MATCH,
          description: "`*`: restore only a MeshConfig that is deleted; 412 if it exists",
        },
      ],
      body: policyRollbackSchema,
      replies: written(
        "The object as stored now, or a dry run",
        "The MeshConfig had been deleted and is created again",
      ),
      errors: {
        404:
          "No such revision, the revision is a delete, or the path is not `meshconfig/mesh/rollback`",
        422: "The body is invalid, or the old content is refused by today's validation",
      },
    },
    getPolicyHistory: {
      method: "get",
      path: "/{kind}/{namespace}/{name}/history",
      tag: "Policies",
      summary: "Every revision of a policy, with what changed",
      description:
        "Oldest first, deletes included. Each entry carries the object it stored and the JSON pointers of what changed since the previous revision.",
      access: "read",
      params: [KIND, NAMESPACE, NAME],
      replies: [{
        status: 200,
        description: "The revisions",
        body: policyHistory,
      }],
      errors: { 404: "The policy has no history" },
    },
    rollbackPolicy: {
      method: "post",
      path: "/{kind}/{namespace}/{name}/rollback",
      tag: "Policies",
      summary: "Store an earlier revision's content again",
      description:
        "History only grows: the content of revision N is stored as a new revision (`op: rollback`), through the same validation as any write, since the mesh may have changed since. A policy deleted since can be rolled back to a revision before its delete.",
      access: "write",
      params: [
        KIND,
        NAMESPACE,
        NAME,
        DRY_RUN,
        IF_MATCH,
        {
          ...IF_NONE_MATCH,
          description: "`*`: restore only a policy that is deleted; 412 if it exists",
        },
      ],
      body: policyRollbackSchema,
      replies: written(
        "The object as stored now, or a dry run",
        "The policy had been deleted and is created again",
      ),
      errors: {
        404: "No such revision, or the revision is a delete",
        422: "The body is invalid, or the old content is refused by today's validation",
      },
    },
  },
});
