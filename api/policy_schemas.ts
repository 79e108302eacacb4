/**
 * The schemas of what the policy routes take and answer, for the OpenAPI
 * document. A spec is stored and read back exactly as written, so one schema
 * per kind serves both sides. Writes are validated by the policy service
 * (`core/policy/validate.ts`), which reports every problem with a JSON
 * pointer; the request schemas here describe what it accepts.
 */
import { z } from "zod";
import {
  API_VERSION,
  authorizationPolicySpecSchema,
  destinationPolicySpecSchema,
  meshConfigSpecSchema,
  POLICY_KINDS,
  policyInputSchema,
  type PolicyKind,
  rateLimitSpecSchema,
  SPEC_SCHEMAS,
  trafficRouteSpecSchema,
} from "../core/policy/model.ts";
import { fieldProblemSchema, timestamp } from "./operation.ts";

/** `policyKindSchema`: see its description. */
export const policyKindSchema = z.enum(POLICY_KINDS);

/** `policyMetadataSchema`: see its description. */
export const policyMetadataSchema = z.object({
  name: z.string(),
  namespace: z.string().describe('`""` for MeshConfig, which is not namespaced'),
  labels: z.record(z.string(), z.string()),
  revision: z.number().int().describe(
    "Counts this object's writes from 1, across deletes; its `ETag` is this number in quotes",
  ),
  createdAt: timestamp,
  updatedAt: timestamp,
  updatedBy: z.string().describe("The token id of the last writer"),
}).describe("A stored policy's name, labels and revision");

function storedPolicy<K extends PolicyKind, S extends (typeof SPEC_SCHEMAS)[K]>(kind: K, spec: S) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata: policyMetadataSchema,
    spec,
  });
}

/** `policySchema`: see its description. */
export const policySchema = z.discriminatedUnion("kind", [
  storedPolicy("TrafficRoute", trafficRouteSpecSchema),
  storedPolicy("DestinationPolicy", destinationPolicySpecSchema),
  storedPolicy("AuthorizationPolicy", authorizationPolicySpecSchema),
  storedPolicy("RateLimit", rateLimitSpecSchema),
  storedPolicy("MeshConfig", meshConfigSpecSchema),
]).describe("A stored policy: its spec as written, with its revision");

/** `jsonChangeSchema`: see its description. */
export const jsonChangeSchema = z.object({
  pointer: z.string().describe("JSON pointer to the value that changed"),
  before: z.unknown().exactOptional().describe("The old value; absent when the value was added"),
  after: z.unknown().exactOptional().describe("The new value; absent when the value was removed"),
}).describe("One changed leaf of a JSON document");

/** `resourceChangeSchema`: see its description. */
export const resourceChangeSchema = z.object({
  type: z.string().describe("`clusters`, `endpoints`, `listeners`, `routes` or `secrets`"),
  name: z.string().describe("The resource's name, e.g. `outbound|9090|v2|api.shop`"),
  op: z.enum(["added", "removed", "changed"]),
  diff: z.array(jsonChangeSchema).exactOptional().describe(
    "For `changed`: the leaves that differ, in Envoy's JSON form",
  ),
}).describe("One xDS resource of one proxy that a dry run would change");

/** `proxyChangeSchema`: see its description. */
export const proxyChangeSchema = z.object({
  kind: z.string().describe("`sidecar` or `proxyless`"),
  target: z.string().describe(
    "A sidecar's node; for proxyless clients, the namespace whose clients share one configuration",
  ),
  connected: z.array(z.string()).describe(
    "Connected proxies (stream ids) served this configuration",
  ),
  changes: z.array(resourceChangeSchema),
}).describe("A proxy configuration that a dry run would change");

/** `applyItemSchema`: see its description. */
export const applyItemSchema = z.object({
  kind: policyKindSchema,
  namespace: z.string().describe('`""` for MeshConfig'),
  name: z.string(),
  action: z.enum(["created", "updated", "unchanged", "deleted"]).describe(
    "`unchanged`: the same labels and spec as stored, so no new revision",
  ),
  revision: z.number().int().nullable().describe(
    "The revision after the write; `null` in a dry run (except `unchanged`) and for a delete",
  ),
  object: policySchema.exactOptional().describe(
    "The stored object; absent in a dry run and for a delete",
  ),
}).describe("What happened (or, in a dry run, would happen) to one policy");

/** `applyResultSchema`: see its description. */
export const applyResultSchema = z.object({
  dryRun: z.boolean(),
  items: z.array(applyItemSchema).describe("One per document, in the order sent"),
  warnings: z.array(fieldProblemSchema).describe(
    "Problems that did not stop the write (e.g. a service not registered yet, a rule that never matches); pointers start with `/items/<i>` in a batch",
  ),
  proxies: z.array(proxyChangeSchema).exactOptional().describe(
    "Dry runs only: every proxy configuration that would change, with what would change",
  ),
}).describe("The answer to a policy batch, a delete, or any dry run");

/** `policyRevisionSchema`: see its description. */
export const policyRevisionSchema = z.object({
  kind: policyKindSchema,
  namespace: z.string(),
  name: z.string(),
  revision: z.number().int(),
  op: z.enum(["create", "update", "delete", "rollback"]),
  at: timestamp,
  actor: z.string().describe("The token id of the writer"),
  object: policySchema.nullable().describe(
    "The object as this revision stored it; `null` for a delete",
  ),
  changes: z.array(jsonChangeSchema).describe(
    "What changed in `labels` and `spec` since the previous revision",
  ),
}).describe("One revision of a policy");

/** `policyInputMetadataSchema`: see its description. */
export const policyInputMetadataSchema = policyInputSchema.shape.metadata.describe(
  "A policy's name and labels. `revision`, `createdAt`, `updatedAt` and `updatedBy` are accepted (so that what `GET` returns can be applied again) and ignored",
);

/** A policy document of one kind, as `ironmesh apply -f` reads it. */
function policyDocument<K extends PolicyKind, S extends (typeof SPEC_SCHEMAS)[K]>(
  kind: K,
  spec: S,
  description: string,
) {
  return policyInputSchema.extend({
    kind: z.literal(kind),
    metadata: policyInputMetadataSchema,
    spec,
  }).describe(description);
}

/** `policyDocumentSchema`: see its description. */
export const policyDocumentSchema = z.discriminatedUnion("kind", [
  policyDocument("TrafficRoute", trafficRouteSpecSchema, "How requests to a service are routed"),
  policyDocument(
    "DestinationPolicy",
    destinationPolicySpecSchema,
    "A service's subsets, load balancing, connection limits and outlier detection",
  ),
  policyDocument(
    "AuthorizationPolicy",
    authorizationPolicySpecSchema,
    "Who may call a service (or every service of the namespace)",
  ),
  policyDocument("RateLimit", rateLimitSpecSchema, "Token buckets at a service's sidecars"),
  policyDocument(
    "MeshConfig",
    meshConfigSpecSchema,
    "Mesh-wide settings: one object, named `mesh`, without a namespace",
  ),
]).describe(
  "A policy document, as `ironmesh apply -f` reads it; `apiVersion` defaults to `ironmesh.io/v1`, `metadata.namespace` to `default`",
);

/** `policyBatchSchema`: see its description. */
export const policyBatchSchema = z.strictObject({
  items: z.array(policyDocumentSchema).min(1).max(1000).describe(
    "Validated together against the mesh as it will be, and stored all or none",
  ),
}).describe("A batch of policy documents, applied atomically");

/** `policyPutSchema`: see its description. */
export const policyPutSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: policyKindSchema.optional().describe("Default: the path's kind; if given, must be it"),
  metadata: policyInputSchema.shape.metadata.partial().optional().describe(
    "`name` and `namespace` default to the path's and, if given, must be them",
  ),
  spec: z.union([
    trafficRouteSpecSchema,
    destinationPolicySpecSchema,
    authorizationPolicySpecSchema,
    rateLimitSpecSchema,
    meshConfigSpecSchema,
  ]).describe("The spec of the path's kind"),
}).describe("One policy, written at its path");

/** `policyRollbackSchema`: see its description. */
export const policyRollbackSchema = z.strictObject({
  revision: z.number().int().min(1).describe(
    "The revision whose labels and spec to store again, as a new revision",
  ),
}).describe("Which revision to restore");
