/**
 * The REST API's OpenAPI 3.1 document. Request bodies are the very zod
 * schemas the handlers pass to `readBody`, converted on their input side (what
 * a client sends: durations as text, defaults optional); responses are the
 * model's schemas on their output side. {@link ROUTES} is the one place each
 * route is described; `openapi_test.ts` checks it against the routes
 * `createApp` registers, both ways, so neither can grow without the other.
 */
import { proxyStatusSchema } from "../core/proxy_status.ts";
import { z } from "zod";
import { authorize, type Permission } from "../auth/tokens.ts";
import {
  apiTokenSchema,
  drainPatchSchema,
  enrolRequestSchema,
  healthSchema,
  heartbeatSchema,
  instanceRegistrationSchema,
  instanceSchema,
  joinTokenSchema,
  meshNodeSchema,
  nodeRegistrationSchema,
  nodeStatusSchema,
  renewRequestSchema,
  ROLES,
  servicePortSchema,
  servicePutSchema,
  serviceSchema,
  tokenCreateSchema,
} from "../core/model.ts";
import { labelName, subdomainName } from "../core/names.ts";
import {
  API_VERSION,
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
  policyInputSchema,
  type PolicyKind,
  rateLimitSpecSchema,
  retriesSchema,
  routeMatchSchema,
  routeRuleSchema,
  SPEC_SCHEMAS,
  stringMatchSchema,
  subsetSchema,
  trafficRouteSpecSchema,
  valueMatchSchema,
} from "../core/policy/model.ts";
import { VERSION } from "../core/version.ts";

/** A JSON Schema as zod emits it. */
export type JsonSchema = z.core.JSONSchema.BaseSchema;

/**
 * Who may call a route: a permission that `authorize()` checks (the roles
 * holding it are derived from `authorize` itself), anyone, or only a caller
 * proving a mesh certificate over mutual TLS.
 */
export type Access = Permission | "public" | "mtls";

/** The tags that group operations, in the order the docs show them. */
export const TAGS = [
  {
    name: "Server",
    description: "Liveness, readiness, metrics and version: no credentials needed",
  },
  { name: "Services", description: "Services and their ports, by namespace" },
  { name: "Nodes", description: "Hosts running an agent: registration, heartbeats, drains" },
  { name: "Instances", description: "Endpoints of services on nodes, with their health" },
  { name: "Events", description: "A stream of registry changes" },
  { name: "Tokens", description: "API tokens for automation and join tokens that enrol hosts" },
  {
    name: "Identity",
    description: "The mesh certificate authority: trust bundle, enrolment, renewal, root rotation",
  },
  { name: "Operations", description: "Backups of the server's state" },
  { name: "xDS", description: "Connected proxies: sync state and what they were sent" },
  {
    name: "Policies",
    description:
      "TrafficRoute, DestinationPolicy, AuthorizationPolicy, RateLimit and MeshConfig: atomic batches, dry runs, history, rollback, and which policies apply to a proxy",
  },
  { name: "Audit", description: "Every policy write, refused ones included" },
  { name: "Documentation", description: "This document, as JSON and as a web page" },
] as const;

/** One of {@link TAGS}. */
export type Tag = typeof TAGS[number]["name"];

// ---------------------------------------------------------------------------
// Response schemas that are not part of the core model: what the handlers in
// `app.ts` and the CA answer. `openapi_test.ts` checks each against the
// TypeScript type the handler returns, so they cannot drift silently.
// ---------------------------------------------------------------------------

const timestamp = z.iso.datetime();

const fieldProblemSchema = z.object({
  pointer: z.string().describe(
    'JSON pointer to the offending field, e.g. `/services/0/port`; `""` is the whole input',
  ),
  message: z.string().describe("What is wrong, in a sentence without a final period"),
  in: z.enum(["query", "path", "header"]).exactOptional().describe(
    "Where the field is; absent means the body",
  ),
}).describe("One problem with one field of an input, located by a JSON pointer (RFC 6901)");

const problemSchema = z.object({
  type: z.string().describe(
    "URI of the kind of problem, e.g. `https://ironmesh.io/problems/conflict`",
  ),
  title: z.string().describe("Short summary of the kind of problem"),
  status: z.number().int().describe("The HTTP status code"),
  detail: z.string().describe("What went wrong in this case, and often how to fix it"),
  instance: z.string().describe("The request path"),
  problems: z.array(fieldProblemSchema).exactOptional().describe(
    "Every bad field, when the input was invalid",
  ),
}).describe("An RFC 9457 problem document, sent as `application/problem+json`");

const tokenSchema = z.discriminatedUnion("kind", [apiTokenSchema, joinTokenSchema]).describe(
  "Any token the server issues, without its secret",
);

const secret = z.string().describe("The secret to send; shown only in this answer");

const createdTokenSchema = z.discriminatedUnion("kind", [
  apiTokenSchema.extend({ token: secret }).describe("An API token with its secret"),
  joinTokenSchema.extend({ token: secret }).describe("A join token with its signed token"),
]).describe("A token just created, with its secret: the only time the secret is shown");

/** Wraps an item schema in the list envelope every list answers with. */
function listOf<T extends z.ZodType>(item: T, what: string) {
  return z.object({
    items: z.array(item),
    next: z.string().nullable().describe(
      "Cursor of the next page (pass it as `cursor`), or `null` on the last page",
    ),
  }).describe(`A page of ${what}`);
}

const namespaceSchema = z.object({
  name: z.string(),
  services: z.number().int().describe("Number of services in the namespace"),
}).describe("A namespace with its number of services");

const bundleRootSchema = z.object({
  pem: z.string(),
  fingerprint: z.string().describe("SHA-256 of the DER, lower-case hex without colons"),
  subject: z.string(),
  notBefore: timestamp,
  notAfter: timestamp,
  generation: z.number().int(),
}).describe("One root certificate of the trust bundle");

const trustBundleSchema = z.object({
  trustDomain: z.string().describe("The SPIFFE trust domain of the mesh"),
  roots: z.array(bundleRootSchema).describe("Oldest generation first"),
  bundlePem: z.string().describe("The roots' PEM, concatenated"),
  bundleFingerprint: z.string().describe(
    "SHA-256 over the sorted root fingerprints; changes whenever the set does",
  ),
}).describe("The roots peers must trust now: every published or active generation's");

const issuedIdentitySchema = z.object({
  node: z.string(),
  identity: z.string().describe("SPIFFE ID of the certificate"),
  serial: z.string(),
  certificate: z.string().describe("The leaf and its intermediate, PEM"),
  bundle: z.string().describe("The trust bundle, PEM"),
  bundleFingerprint: z.string(),
  notAfter: timestamp,
}).describe("A workload certificate just issued by enrolment or renewal");

const generationStatusSchema = z.object({
  id: z.number().int(),
  stage: z.enum(["published", "active", "retired"]),
  imported: z.boolean().describe(
    "True for operator-supplied material, which cannot be rotated or renewed here",
  ),
  rootFingerprint: z.string(),
  rootNotAfter: timestamp,
  intermediateNotAfter: timestamp.describe("Expiry of the current intermediate"),
}).describe("One generation (root and intermediate) of the CA");

const rotationStatusSchema = z.object({
  stage: z.enum(["steady", "published", "switched"]).describe(
    "`published`: the new root is trusted but not signing; `switched`: it signs, the old one is still trusted",
  ),
  signingRoot: z.string().describe("Fingerprint of the root new certificates chain to"),
  bundleFingerprint: z.string(),
  generations: z.array(generationStatusSchema),
  leaves: z.number().int().describe("Current, unexpired workload certificates"),
  leavesByRoot: z.record(z.string(), z.number().int()).describe(
    "Current certificates per root fingerprint",
  ),
  leavesOnOtherRoots: z.number().int().describe("Current certificates not on the signing root"),
  nodesAwaitingBundle: z.array(z.string()).describe(
    "Live enrolled nodes that have not fetched the current bundle yet",
  ),
}).describe("Where a root rotation stands");

const registrationResultSchema = z.object({
  node: meshNodeSchema,
  instances: z.array(instanceSchema),
}).describe("The node and its instances as registered");

const heartbeatResultSchema = z.object({
  ttl: z.string().describe("The node's TTL as a duration, e.g. `15s`"),
  ttlMs: z.number().int(),
  revision: z.number().int().describe("The registry revision after this heartbeat"),
  ca: z.object({
    bundleFingerprint: z.string().describe("The bundle the agent should hold"),
    renew: z.boolean().describe("True when the agent should renew its certificate now"),
  }).exactOptional().describe("Only for callers over mutual TLS: hints about the trust bundle"),
}).describe("What a heartbeat answers");

// Policies. A spec is stored and read back exactly as written, so one schema
// per kind serves both sides (see `policySpecs` in COMPONENTS). Writes are
// validated by the policy service (`core/policy/validate.ts`), which reports
// every problem with a JSON pointer; the request schemas below describe what
// it accepts.

const policyKindSchema = z.enum(POLICY_KINDS);

const policyMetadataSchema = z.object({
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

const policySchema = z.discriminatedUnion("kind", [
  storedPolicy("TrafficRoute", trafficRouteSpecSchema),
  storedPolicy("DestinationPolicy", destinationPolicySpecSchema),
  storedPolicy("AuthorizationPolicy", authorizationPolicySpecSchema),
  storedPolicy("RateLimit", rateLimitSpecSchema),
  storedPolicy("MeshConfig", meshConfigSpecSchema),
]).describe("A stored policy: its spec as written, with its revision");

/** A list that is always one page: `next` is always `null`. */
function onePageOf<T extends z.ZodType>(item: T, what: string) {
  return z.object({
    items: z.array(item),
    next: z.null().describe("Always `null`: the whole list is one page"),
  }).describe(`Every ${what}, in one page`);
}

const jsonChangeSchema = z.object({
  pointer: z.string().describe("JSON pointer to the value that changed"),
  before: z.unknown().exactOptional().describe("The old value; absent when the value was added"),
  after: z.unknown().exactOptional().describe("The new value; absent when the value was removed"),
}).describe("One changed leaf of a JSON document");

const resourceChangeSchema = z.object({
  type: z.string().describe("`clusters`, `endpoints`, `listeners`, `routes` or `secrets`"),
  name: z.string().describe("The resource's name, e.g. `outbound|9090|v2|api.shop`"),
  op: z.enum(["added", "removed", "changed"]),
  diff: z.array(jsonChangeSchema).exactOptional().describe(
    "For `changed`: the leaves that differ, in Envoy's JSON form",
  ),
}).describe("One xDS resource of one proxy that a dry run would change");

const proxyChangeSchema = z.object({
  kind: z.string().describe("`sidecar` or `proxyless`"),
  target: z.string().describe(
    "A sidecar's node; for proxyless clients, the namespace whose clients share one configuration",
  ),
  connected: z.array(z.string()).describe(
    "Connected proxies (stream ids) served this configuration",
  ),
  changes: z.array(resourceChangeSchema),
}).describe("A proxy configuration that a dry run would change");

const applyItemSchema = z.object({
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

const applyResultSchema = z.object({
  dryRun: z.boolean(),
  items: z.array(applyItemSchema).describe("One per document, in the order sent"),
  warnings: z.array(fieldProblemSchema).describe(
    "Problems that did not stop the write (e.g. a service not registered yet, a rule that never matches); pointers start with `/items/<i>` in a batch",
  ),
  proxies: z.array(proxyChangeSchema).exactOptional().describe(
    "Dry runs only: every proxy configuration that would change, with what would change",
  ),
}).describe("The answer to a policy batch, a delete, or any dry run");

const policyRevisionSchema = z.object({
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

const auditEntrySchema = z.object({
  id: z.number().int().describe("Increasing; pass the last one as `after` for the next page"),
  at: timestamp,
  actor: z.string().describe("The token id of the caller"),
  action: z.string().describe("`apply`, `delete` or `rollback`"),
  kind: z.string().describe("The kind as sent (may be anything for a refused write)"),
  namespace: z.string(),
  name: z.string(),
  outcome: z.enum(["ok", "refused"]),
  status: z.number().int().describe("The HTTP status the caller got"),
  revision: z.number().int().nullable().describe("The revision written, or `null`"),
  detail: z.string().describe("For a refused write, the first problems"),
}).describe("One policy write, stored or refused");

const serviceRefSchema = z.object({
  namespace: z.string(),
  service: z.string(),
}).describe("A service, by namespace and name");

const appliedPolicySchema = z.object({
  kind: policyKindSchema,
  namespace: z.string(),
  name: z.string(),
  revision: z.number().int(),
  direction: z.enum(["outbound", "inbound", "mesh"]).describe(
    "`outbound`: shapes traffic the proxy sends; `inbound`: guards traffic it receives; `mesh`: MeshConfig",
  ),
  service: z.string().describe(
    'The service it applies through, `<name>.<namespace>`; `""` for MeshConfig',
  ),
  reason: z.string().describe("Why it applies, in words"),
}).describe("One policy that applies to a proxy, and why");

const proxyPoliciesSchema = z.object({
  id: z.string().describe("The stream id when connected, else the node name"),
  node: z.string(),
  kind: z.enum(["sidecar", "proxyless"]),
  outbound: z.array(serviceRefSchema).describe(
    "Services it sends to: a sidecar's upstreams; for proxyless clients, every service with a gRPC or HTTP/2 port",
  ),
  inbound: z.array(serviceRefSchema).describe("Services of the instances behind a sidecar"),
  policies: z.array(appliedPolicySchema).describe(
    "MeshConfig first, then outbound services, then inbound ones",
  ),
}).describe("Which policies shape a proxy's configuration, and why");

const policyInputMetadataSchema = policyInputSchema.shape.metadata.describe(
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

const policyDocumentSchema = z.discriminatedUnion("kind", [
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

const policyBatchSchema = z.strictObject({
  items: z.array(policyDocumentSchema).min(1).max(1000).describe(
    "Validated together against the mesh as it will be, and stored all or none",
  ),
}).describe("A batch of policy documents, applied atomically");

const policyPutSchema = z.strictObject({
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

const policyRollbackSchema = z.strictObject({
  revision: z.number().int().min(1).describe(
    "The revision whose labels and spec to store again, as a new revision",
  ),
}).describe("Which revision to restore");

/**
 * Named schemas of responses (converted on their output side) and of request
 * bodies (input side), as they appear under `components/schemas`.
 */
export const COMPONENTS = {
  responses: {
    Problem: problemSchema,
    FieldProblem: fieldProblemSchema,
    Liveness: z.object({ status: z.literal("ok") }).describe("The process serves HTTP"),
    Readiness: z.object({
      status: z.literal("ready"),
      store: z.string().describe("The store backend, e.g. `sqlite`"),
      revision: z.number().int().describe("The registry revision"),
    }).describe("The server is ready and its store answers"),
    Version: z.object({ version: z.string() }).describe("The server's version"),
    Namespace: namespaceSchema,
    NamespaceList: listOf(namespaceSchema, "namespaces"),
    ServicePort: servicePortSchema,
    Service: serviceSchema,
    ServiceList: listOf(serviceSchema, "services"),
    Node: meshNodeSchema,
    NodeList: listOf(meshNodeSchema, "nodes"),
    Instance: instanceSchema,
    InstanceList: listOf(instanceSchema, "instances"),
    RegistrationResult: registrationResultSchema,
    HeartbeatResult: heartbeatResultSchema,
    ApiToken: apiTokenSchema,
    JoinToken: joinTokenSchema,
    Token: tokenSchema,
    TokenList: listOf(tokenSchema, "tokens"),
    CreatedToken: createdTokenSchema,
    TrustBundle: trustBundleSchema,
    BundleRoot: bundleRootSchema,
    IssuedIdentity: issuedIdentitySchema,
    GenerationStatus: generationStatusSchema,
    RotationStatus: rotationStatusSchema,
    ProxyStatus: proxyStatusSchema,
    ProxyList: listOf(proxyStatusSchema, "connected proxies"),
    ConfigDump: z.object({
      id: z.string(),
      resources: z.record(z.string(), z.array(z.record(z.string(), z.unknown()))).describe(
        "What was last sent, by type URL, in Envoy's JSON form",
      ),
    }).describe("What was last sent to one proxy"),
    PolicyMetadata: policyMetadataSchema,
    Policy: policySchema,
    PolicyList: onePageOf(policySchema, "policy of the kind (and namespace) asked for"),
    ApplyItem: applyItemSchema,
    ApplyResult: applyResultSchema,
    ProxyChange: proxyChangeSchema,
    ResourceChange: resourceChangeSchema,
    JsonChange: jsonChangeSchema,
    PolicyRevision: policyRevisionSchema,
    PolicyHistory: onePageOf(policyRevisionSchema, "revision of the policy, oldest first"),
    AuditEntry: auditEntrySchema,
    AuditList: z.object({
      items: z.array(auditEntrySchema),
      next: z.string().nullable().describe(
        "When the page is full, the `id` of its last entry: pass it as `after` for the next page; else `null`",
      ),
    }).describe("A page of the audit log, oldest first"),
    ServiceRef: serviceRefSchema,
    AppliedPolicy: appliedPolicySchema,
    ProxyPolicies: proxyPoliciesSchema,
  },
  requests: {
    ServicePut: servicePutSchema,
    NodeRegistration: nodeRegistrationSchema,
    InstanceRegistration: instanceRegistrationSchema,
    Heartbeat: heartbeatSchema,
    DrainPatch: drainPatchSchema,
    TokenCreate: tokenCreateSchema,
    EnrolRequest: enrolRequestSchema,
    RenewRequest: renewRequestSchema,
    PolicyDocument: policyDocumentSchema,
    PolicyInputMetadata: policyInputMetadataSchema,
    PolicyBatch: policyBatchSchema,
    PolicyPut: policyPutSchema,
    PolicyRollback: policyRollbackSchema,
  },
  /**
   * Policy specs and their parts. A spec is read back exactly as it was
   * written, so each is converted on both sides and documented once, on the
   * input side (strict: unknown fields are refused).
   */
  policySpecs: {
    TrafficRouteSpec: trafficRouteSpecSchema,
    RouteRule: routeRuleSchema,
    RouteMatch: routeMatchSchema,
    StringMatch: stringMatchSchema,
    ValueMatch: valueMatchSchema,
    Retries: retriesSchema,
    HeaderOps: headerOpsSchema,
    DestinationPolicySpec: destinationPolicySpecSchema,
    Subset: subsetSchema,
    LoadBalancer: loadBalancerSchema,
    ConnectionPool: connectionPoolSchema,
    OutlierDetection: outlierDetectionSchema,
    AuthorizationPolicySpec: authorizationPolicySpecSchema,
    AuthorizationRule: authorizationRuleSchema,
    RateLimitSpec: rateLimitSpecSchema,
    Bucket: bucketSchema,
    MeshConfigSpec: meshConfigSpecSchema,
  },
} as const;

/**
 * What each policy spec schema is. The model's schemas carry no description
 * of their own (adding one would make a new schema, which the specs nesting
 * them would not reference), so the document adds these.
 */
const POLICY_SPEC_DESCRIPTIONS: Record<keyof typeof COMPONENTS.policySpecs, string> = {
  TrafficRouteSpec:
    "A TrafficRoute's spec: how requests to `service` are routed; the first rule that matches decides",
  RouteRule:
    "One rule: what it matches, and where and how matching requests go (or a redirect answered instead)",
  RouteMatch:
    "What a rule matches; every field given must match, and none given matches everything",
  StringMatch: "Exactly one of `exact`, `prefix`, `regex` (RE2, matched against the whole value)",
  ValueMatch: "Exactly one of `exact`, `prefix`, `regex` (RE2), `present`",
  Retries: "How a request is retried",
  HeaderOps: "Headers to set (replacing any value) and to remove",
  DestinationPolicySpec:
    "A DestinationPolicy's spec: `service`'s subsets and the settings of the connections to it",
  Subset: "A named set of a service's instances, by their labels, with its own settings",
  LoadBalancer:
    "How a backend is picked; RING_HASH and MAGLEV need `hash`. Proxyless gRPC clients refuse LEAST_REQUEST",
  ConnectionPool: "Circuit-breaker limits of the connections to a service",
  OutlierDetection: "Ejects instances that keep failing",
  AuthorizationPolicySpec:
    "An AuthorizationPolicy's spec: who may call `service` (omitted: every service of the namespace). DENY policies are checked before ALLOW ones",
  AuthorizationRule:
    "Matches a request from any of `from` to any of `to` (an omitted list matches anything)",
  RateLimitSpec:
    "A RateLimit's spec: token buckets at each sidecar in front of `service`'s instances",
  Bucket: "A token bucket: `requests` per `per`, up to `burst` at once (default: `requests`)",
  MeshConfigSpec: "The MeshConfig's spec: mesh-wide defaults",
};

// ---------------------------------------------------------------------------
// Parameters and headers.
// ---------------------------------------------------------------------------

/** A parameter of an operation (path, query or header). */
export interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  description: string;
  schema: z.ZodType;
  required?: boolean;
  /** True when the server reads it without validating it, so it never causes a 422. */
  unchecked?: boolean;
}

function pathParam(name: string, schema: z.ZodType, description: string): Parameter {
  return { name, in: "path", description, schema, required: true };
}

function queryParam(name: string, schema: z.ZodType, description: string): Parameter {
  return { name, in: "query", description, schema };
}

function headerParam(name: string, schema: z.ZodType, description: string): Parameter {
  return { name, in: "header", description, schema };
}

const PATH = {
  namespace: pathParam("namespace", labelName, "Namespace: a DNS-1123 label"),
  service: pathParam("name", labelName, "Service name: a DNS-1123 label"),
  node: pathParam("name", subdomainName, "Node name: a DNS-1123 subdomain"),
  instance: pathParam("id", z.string(), "Instance id `<local-id>@<node>`, e.g. `web@vm-1`"),
  token: { ...pathParam("id", z.string(), "Token id"), unchecked: true },
  proxy: { ...pathParam("id", z.string(), "Proxy stream id from /v1/proxies"), unchecked: true },
  proxyOrNode: {
    ...pathParam(
      "id",
      z.string(),
      "A proxy stream id from /v1/proxies, or a node name (its sidecar)",
    ),
    unchecked: true,
  },
  policyKind: pathParam(
    "kind",
    z.enum(POLICY_KINDS.map((k) => k.toLowerCase()) as [string, ...string[]]),
    "The policy kind, lower-case (any case and the plural, e.g. `trafficroutes`, work too)",
  ),
  policyName: pathParam("name", labelName, "Policy name: a DNS-1123 label"),
  /** MeshConfig's routes: `/v1/policies/meshconfig/mesh[/history|/rollback]`. */
  meshConfigKind: pathParam("kind", z.literal("meshconfig"), "Only `meshconfig` (any case)"),
  meshConfigName: pathParam(
    "namespace",
    z.literal("mesh"),
    "MeshConfig's one object, `mesh` (this segment holds a namespace for the other kinds)",
  ),
};

/** The query of policy writes. */
const DRY_RUN = queryParam(
  "dryRun",
  z.enum(["true", "false"]),
  "`true`: validate and report which proxy configurations would change, with diffs, storing nothing. Default `false`",
);

/** The query parameters of the lists (`readListQuery` in `request.ts`). */
const QUERY = {
  limit: queryParam(
    "limit",
    z.number().int().min(1).max(1000).default(100),
    "Most items in one page",
  ),
  cursor: queryParam(
    "cursor",
    z.string().max(1024),
    "Where to continue: the `next` of the previous page",
  ),
  labelSelector: queryParam(
    "labelSelector",
    z.string().max(4096),
    "Kubernetes-style label selector, e.g. `version=v1,env!=prod,tier in (a,b),canary,!legacy`",
  ),
  index: queryParam(
    "index",
    z.number().int().min(0),
    "Blocking query: answer only once the registry revision exceeds this (the `X-Ironmesh-Index` of an earlier answer), or when `wait` is over",
  ),
  wait: queryParam(
    "wait",
    z.string(),
    "Longest a blocking query waits, as a duration up to `10m`; default `5m`",
  ),
  namespace: queryParam("namespace", labelName, "Only this namespace"),
  service: queryParam("service", labelName, "Only this service"),
  node: queryParam("node", subdomainName, "Only instances on this node"),
  health: queryParam("health", healthSchema, "Only instances of this health"),
  status: queryParam("status", nodeStatusSchema, "Only nodes of this status"),
};

/** Names of the list filters a list may accept besides the common paging ones. */
type ListFilter = "namespace" | "service" | "node" | "health" | "status";

/** The query of a list that accepts `filters` (the `allowed` of `readListQuery`). */
function listQuery(...filters: ListFilter[]): Parameter[] {
  return [
    QUERY.limit,
    QUERY.cursor,
    ...filters.map((f) => QUERY[f]),
    QUERY.labelSelector,
    QUERY.index,
    QUERY.wait,
  ];
}

const IF_MATCH = headerParam(
  "If-Match",
  z.string(),
  'Write only if the object is still at this ETag (e.g. `"42"`); otherwise 412',
);
const IF_NONE_MATCH = headerParam(
  "If-None-Match",
  z.literal("*"),
  "`*`: create only; 412 if the object exists",
);
const LAST_EVENT_ID: Parameter = {
  ...headerParam(
    "Last-Event-ID",
    z.string(),
    "The last revision the client saw; an event is sent at once if the registry is past it",
  ),
  unchecked: true,
};

/** Response headers, under `components/headers`. */
const HEADERS = {
  ETag: {
    description: 'The object\'s revision as a strong ETag, e.g. `"42"`; send it as `If-Match`',
    schema: { type: "string" },
  },
  "X-Ironmesh-Index": {
    description: "The registry revision the answer reflects; pass it as `index` to block",
    schema: { type: "integer", minimum: 0 },
  },
  "Retry-After": {
    description: "Seconds to wait before retrying",
    schema: { type: "integer", minimum: 1 },
  },
  "WWW-Authenticate": {
    description: 'The scheme to authenticate with: `Bearer realm="ironmesh"`',
    schema: { type: "string" },
  },
  "Content-Disposition": {
    description: "Suggests a file name for the download",
    schema: { type: "string" },
  },
  Warning: {
    description:
      'One per warning the write passed with, as Kubernetes sends them: `299 - "<pointer>: <message>"`',
    schema: { type: "string" },
  },
} as const;

/** A response header name, one of {@link HEADERS}. */
type HeaderName = keyof typeof HEADERS;

// ---------------------------------------------------------------------------
// Error responses.
// ---------------------------------------------------------------------------

/** The problem statuses an operation may document. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 412 | 413 | 415 | 422 | 429 | 503;

/** Each problem status: its `components/responses` name and its general meaning. */
const ERRORS: Record<ErrorStatus, { name: string; description: string; headers?: HeaderName[] }> = {
  400: { name: "BadRequest", description: "The body is not valid JSON" },
  401: {
    name: "Unauthorized",
    description: "No credentials, or credentials that are not valid (unknown, expired, revoked)",
    headers: ["WWW-Authenticate"],
  },
  403: { name: "Forbidden", description: "Valid credentials that do not allow this" },
  404: { name: "NotFound", description: "The object does not exist" },
  409: { name: "Conflict", description: "The write contradicts the current state" },
  412: {
    name: "PreconditionFailed",
    description: "`If-Match` no longer matches, or `If-None-Match: *` met an existing object",
  },
  413: { name: "PayloadTooLarge", description: "The body is larger than the server accepts" },
  415: {
    name: "UnsupportedMediaType",
    description: "The body is not sent as `Content-Type: application/json`",
  },
  422: {
    name: "InvalidRequest",
    description: "A field, parameter or header is invalid; `problems` points at each one",
  },
  429: {
    name: "TooManyRequests",
    description: "Too many requests of this kind right now",
    headers: ["Retry-After"],
  },
  503: {
    name: "ServiceUnavailable",
    description: "The server is shutting down or its store is unavailable; retry later",
  },
};

// ---------------------------------------------------------------------------
// The route table.
// ---------------------------------------------------------------------------

/** A response body that is not JSON (text, a stream, a file). */
export interface RawBody {
  mediaType: string;
  schema: JsonSchema;
}

/** One successful response of an operation. */
export interface Reply {
  status: 200 | 201 | 202 | 204;
  description: string;
  /** A schema of {@link COMPONENTS}`.responses` (sent as JSON) or a raw body; none for 204. */
  body?: z.ZodType | RawBody | readonly (z.ZodType | RawBody)[];
  headers?: readonly HeaderName[];
}

/** One operation of the REST API. */
export interface Route {
  method: "get" | "put" | "post" | "patch" | "delete";
  /** The OpenAPI path (`{param}`); `openapi_test.ts` matches it to Hono's `:param`. */
  path: string;
  operationId: string;
  tag: Tag;
  summary: string;
  description?: string;
  access: Access;
  /** Path parameters first, in path order; then query and header parameters. */
  params?: readonly Parameter[];
  /**
   * Exactly the schema the handler passes to `readBody` (for policy writes,
   * which the policy service validates, the schema of what it accepts); one
   * of {@link COMPONENTS}`.requests`.
   */
  body?: z.ZodType;
  replies: readonly Reply[];
  /**
   * Why this operation answers these problem statuses. The builder adds the
   * ones every such operation shares (401 and 503 behind authentication, 403
   * for restricted roles, 400/413/415/422 with a body, 422 with parameters,
   * 412 with `If-Match`), each with this text when given here.
   */
  errors?: Partial<Record<ErrorStatus, string>>;
}

const json = (schema: JsonSchema = {}): RawBody => ({ mediaType: "application/json", schema });

/** A JSON body that is one of several response schemas, told apart by their fields. */
const oneOf = (...names: (keyof typeof COMPONENTS.responses)[]): RawBody =>
  json({ oneOf: names.map((name) => ({ $ref: `#/components/schemas/${name}` })) });

/** Every route of `createApp`, grouped as the docs show them. */
export const ROUTES: readonly Route[] = [
  {
    method: "get",
    path: "/healthz",
    operationId: "getLiveness",
    tag: "Server",
    summary: "Liveness",
    description: "Answers 200 as long as the process serves HTTP.",
    access: "public",
    replies: [{ status: 200, description: "Alive", body: COMPONENTS.responses.Liveness }],
  },
  {
    method: "get",
    path: "/readyz",
    operationId: "getReadiness",
    tag: "Server",
    summary: "Readiness",
    description: "Checks the store. Turns 503 once shutdown begins, so load balancers drain.",
    access: "public",
    replies: [{ status: 200, description: "Ready", body: COMPONENTS.responses.Readiness }],
    errors: { 503: "The server is shutting down, or the store does not answer" },
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "getMetrics",
    tag: "Server",
    summary: "Prometheus metrics",
    access: "public",
    replies: [{
      status: 200,
      description: "Metrics in the Prometheus text exposition format",
      body: { mediaType: "text/plain", schema: { type: "string" } },
    }],
  },
  {
    method: "get",
    path: "/v1/version",
    operationId: "getVersion",
    tag: "Server",
    summary: "Server version",
    access: "public",
    replies: [{ status: 200, description: "The version", body: COMPONENTS.responses.Version }],
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "getOpenApi",
    tag: "Documentation",
    summary: "This OpenAPI document",
    access: "public",
    replies: [{
      status: 200,
      description: "The OpenAPI 3.1 document of this API",
      body: json({ type: "object" }),
    }],
  },
  {
    method: "get",
    path: "/docs",
    operationId: "getDocs",
    tag: "Documentation",
    summary: "This API's documentation as a web page",
    description: "A self-contained page rendered from the OpenAPI document (no external scripts).",
    access: "public",
    replies: [{
      status: 200,
      description: "An HTML page",
      body: { mediaType: "text/html", schema: { type: "string" } },
    }],
  },
  {
    method: "get",
    path: "/v1/ca/roots",
    operationId: "getTrustBundle",
    tag: "Identity",
    summary: "The trust bundle",
    description:
      "The roots peers must trust now. Public, so a host can fetch it before it enrols; an agent calling over mutual TLS also reports that it holds this bundle, which a root rotation waits for.",
    access: "public",
    params: [
      queryParam(
        "format",
        z.enum(["json", "pem"]),
        "`json` (the default) or `pem`: the bundle as PEM text",
      ),
    ],
    errors: { 422: "An unknown format" },
    replies: [{
      status: 200,
      description: "The bundle",
      body: [COMPONENTS.responses.TrustBundle, {
        mediaType: "application/x-pem-file",
        schema: { type: "string" },
      }],
    }],
  },
  {
    method: "post",
    path: "/v1/ca/enrol",
    operationId: "enrol",
    tag: "Identity",
    summary: "Enrol a host with a join token",
    description:
      "Signs a workload certificate for the node named in the body; the join token in the body is the credential, so no `Authorization` header is needed. Each use of the token is counted.",
    access: "public",
    body: enrolRequestSchema,
    replies: [{
      status: 200,
      description: "The certificate and the trust bundle",
      body: COMPONENTS.responses.IssuedIdentity,
    }],
    errors: {
      401: "The join token is malformed, unknown, expired or revoked",
      403:
        "The token enrols another node, the node is held by another token, or the CSR asks for more than this identity",
      409: "The join token has no uses left",
      422: "The body or the CSR is invalid",
      503: "The CA is closed (the server is shutting down)",
    },
  },
  {
    method: "get",
    path: "/v1/namespaces",
    operationId: "listNamespaces",
    tag: "Services",
    summary: "List namespaces",
    description: "Every namespace that has services, with their counts, in one page.",
    access: "read",
    replies: [{
      status: 200,
      description: "The namespaces",
      body: COMPONENTS.responses.NamespaceList,
      headers: ["X-Ironmesh-Index"],
    }],
  },
  {
    method: "get",
    path: "/v1/services",
    operationId: "listServices",
    tag: "Services",
    summary: "List services",
    access: "read",
    params: listQuery("namespace"),
    replies: [{
      status: 200,
      description: "A page of services",
      body: COMPONENTS.responses.ServiceList,
      headers: ["X-Ironmesh-Index"],
    }],
  },
  {
    method: "get",
    path: "/v1/services/{namespace}/{name}",
    operationId: "getService",
    tag: "Services",
    summary: "Get a service",
    access: "read",
    params: [PATH.namespace, PATH.service],
    replies: [{
      status: 200,
      description: "The service",
      body: COMPONENTS.responses.Service,
      headers: ["ETag"],
    }],
    errors: { 404: "The service does not exist" },
  },
  {
    method: "put",
    path: "/v1/services/{namespace}/{name}",
    operationId: "putService",
    tag: "Services",
    summary: "Create or replace a service",
    description:
      "The service becomes `managedBy: api`. Ports that registered instances use are kept even when left out. An identical `PUT` changes nothing and adds no revision.",
    access: "write",
    params: [PATH.namespace, PATH.service, IF_MATCH, IF_NONE_MATCH],
    body: servicePutSchema,
    replies: [
      {
        status: 200,
        description: "Replaced (or unchanged)",
        body: COMPONENTS.responses.Service,
        headers: ["ETag"],
      },
      {
        status: 201,
        description: "Created",
        body: COMPONENTS.responses.Service,
        headers: ["ETag"],
      },
    ],
    errors: {
      409: "A port is declared with another protocol than a registered instance uses",
      422: "The body is invalid (e.g. a port declared twice), or a path parameter or header is",
    },
  },
  {
    method: "delete",
    path: "/v1/services/{namespace}/{name}",
    operationId: "deleteService",
    tag: "Services",
    summary: "Delete a service",
    access: "write",
    params: [PATH.namespace, PATH.service, IF_MATCH],
    replies: [{ status: 204, description: "Deleted" }],
    errors: {
      404: "The service does not exist",
      409: "The service still has instances: deregister them first",
    },
  },
  {
    method: "get",
    path: "/v1/nodes",
    operationId: "listNodes",
    tag: "Nodes",
    summary: "List nodes",
    access: "read",
    params: listQuery("status"),
    replies: [{
      status: 200,
      description: "A page of nodes",
      body: COMPONENTS.responses.NodeList,
      headers: ["X-Ironmesh-Index"],
    }],
  },
  {
    method: "get",
    path: "/v1/nodes/{name}",
    operationId: "getNode",
    tag: "Nodes",
    summary: "Get a node",
    access: "read",
    params: [PATH.node],
    replies: [{
      status: 200,
      description: "The node",
      body: COMPONENTS.responses.Node,
      headers: ["ETag"],
    }],
    errors: { 404: "The node is not registered" },
  },
  {
    method: "patch",
    path: "/v1/nodes/{name}",
    operationId: "drainNode",
    tag: "Nodes",
    summary: "Drain or undrain a node",
    description:
      "A drained node's instances stop receiving traffic. The drain survives re-registration.",
    access: "write",
    params: [PATH.node, IF_MATCH],
    body: drainPatchSchema,
    replies: [{
      status: 200,
      description: "The node",
      body: COMPONENTS.responses.Node,
      headers: ["ETag"],
    }],
    errors: { 404: "The node is not registered" },
  },
  {
    method: "delete",
    path: "/v1/nodes/{name}",
    operationId: "deleteNode",
    tag: "Nodes",
    summary: "Remove a node and its instances",
    description:
      "An operator removing a node decommissions it: its certificates are revoked. An agent leaving keeps its identity for its return.",
    access: "agent",
    params: [PATH.node, IF_MATCH],
    replies: [{ status: 204, description: "Removed" }],
    errors: {
      403: "The role may not do this, or the node belongs to another agent token",
      404: "The node is not registered",
    },
  },
  {
    method: "put",
    path: "/v1/nodes/{name}/registration",
    operationId: "registerNode",
    tag: "Nodes",
    summary: "Register a node with all its instances",
    description:
      "The node's whole state, idempotent: instances left out are removed, the same registration twice changes nothing. Counts as a heartbeat.",
    access: "agent",
    params: [PATH.node],
    body: nodeRegistrationSchema,
    replies: [{
      status: 200,
      description: "The node and its instances",
      body: COMPONENTS.responses.RegistrationResult,
      headers: ["ETag"],
    }],
    errors: {
      403: "The role may not do this, or the node belongs to another agent token",
    },
  },
  {
    method: "post",
    path: "/v1/nodes/{name}/heartbeat",
    operationId: "heartbeat",
    tag: "Nodes",
    summary: "Heartbeat with check statuses",
    access: "agent",
    params: [PATH.node],
    body: heartbeatSchema,
    replies: [{
      status: 200,
      description: "The node's TTL",
      body: COMPONENTS.responses.HeartbeatResult,
    }],
    errors: {
      403: "The role may not do this, or the node belongs to another agent token",
      404: "The node is not registered: register it first",
      409: "A check names an instance the node did not register: register again",
    },
  },
  {
    method: "get",
    path: "/v1/instances",
    operationId: "listInstances",
    tag: "Instances",
    summary: "List instances",
    access: "read",
    params: listQuery("namespace", "service", "node", "health"),
    replies: [{
      status: 200,
      description: "A page of instances",
      body: COMPONENTS.responses.InstanceList,
      headers: ["X-Ironmesh-Index"],
    }],
  },
  {
    method: "get",
    path: "/v1/instances/{id}",
    operationId: "getInstance",
    tag: "Instances",
    summary: "Get an instance",
    access: "read",
    params: [PATH.instance],
    replies: [{
      status: 200,
      description: "The instance",
      body: COMPONENTS.responses.Instance,
      headers: ["ETag"],
    }],
    errors: { 404: "The instance does not exist" },
  },
  {
    method: "patch",
    path: "/v1/instances/{id}",
    operationId: "drainInstance",
    tag: "Instances",
    summary: "Drain or undrain an instance",
    access: "write",
    params: [PATH.instance, IF_MATCH],
    body: drainPatchSchema,
    replies: [{
      status: 200,
      description: "The instance",
      body: COMPONENTS.responses.Instance,
      headers: ["ETag"],
    }],
    errors: { 404: "The instance does not exist" },
  },
  {
    method: "get",
    path: "/v1/events",
    operationId: "streamEvents",
    tag: "Events",
    summary: "Server-sent events on every change",
    description:
      'A `text/event-stream` that sends `event: change`, `id: <revision>`, `data: {"revision":<n>}` whenever the registry revision moves, and a `: keepalive` comment every 15 s of quiet. Re-fetch what you watch on each event.',
    access: "read",
    params: [LAST_EVENT_ID],
    replies: [{
      status: 200,
      description: "An endless event stream",
      body: { mediaType: "text/event-stream", schema: { type: "string" } },
    }],
  },
  {
    method: "get",
    path: "/v1/tokens",
    operationId: "listTokens",
    tag: "Tokens",
    summary: "List tokens",
    description: "API and join tokens, in one page, never with their secrets.",
    access: "admin",
    replies: [{ status: 200, description: "The tokens", body: COMPONENTS.responses.TokenList }],
  },
  {
    method: "post",
    path: "/v1/tokens",
    operationId: "createToken",
    tag: "Tokens",
    summary: "Create an API token or a join token",
    description:
      'Without `kind`, an API token is created (`kind` defaults to `"api"`). The secret is in this answer only.',
    access: "admin",
    body: tokenCreateSchema,
    replies: [{
      status: 201,
      description: "The token with its secret",
      body: COMPONENTS.responses.CreatedToken,
    }],
  },
  {
    method: "get",
    path: "/v1/tokens/{id}",
    operationId: "getToken",
    tag: "Tokens",
    summary: "Get a token",
    access: "admin",
    params: [PATH.token],
    replies: [{ status: 200, description: "The token", body: COMPONENTS.responses.Token }],
    errors: { 404: "The token does not exist" },
  },
  {
    method: "delete",
    path: "/v1/tokens/{id}",
    operationId: "revokeToken",
    tag: "Tokens",
    summary: "Revoke a token",
    description:
      "It stops working at once. Revoking a join token also revokes every certificate issued with it, renewals included.",
    access: "admin",
    params: [PATH.token],
    replies: [{ status: 204, description: "Revoked" }],
    errors: { 404: "The token does not exist" },
  },
  {
    method: "get",
    path: "/v1/proxies",
    operationId: "listProxies",
    tag: "xDS",
    summary: "Connected proxies and their sync state (like istioctl proxy-status)",
    access: "read",
    replies: [{
      status: 200,
      description: "Every connected proxy",
      body: COMPONENTS.responses.ProxyList,
    }],
  },
  {
    method: "get",
    path: "/v1/proxies/{id}/config_dump",
    operationId: "getConfigDump",
    tag: "xDS",
    summary: "What was last sent to one proxy",
    access: "read",
    params: [PATH.proxy],
    replies: [
      { status: 200, description: "The resources, by type", body: COMPONENTS.responses.ConfigDump },
    ],
    errors: { 404: "No such connected proxy" },
  },
  {
    method: "get",
    path: "/v1/proxies/{id}/policies",
    operationId: "explainProxy",
    tag: "Policies",
    summary: "Which policies apply to a proxy, and why (ironmesh explain)",
    description:
      "Works for a connected proxy (by stream id) and for a registered node's sidecar (by node name), connected or not. Uses the same matching as the xDS generators, as of the last push.",
    access: "read",
    params: [PATH.proxyOrNode],
    replies: [{
      status: 200,
      description: "The proxy's services and the policies that apply",
      body: COMPONENTS.responses.ProxyPolicies,
    }],
    errors: { 404: "Neither a connected proxy nor a registered node" },
  },
  {
    method: "get",
    path: "/v1/policies",
    operationId: "listPolicies",
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
      body: COMPONENTS.responses.PolicyList,
      headers: ["X-Ironmesh-Index"],
    }],
    errors: { 422: "An unknown kind" },
  },
  {
    method: "post",
    path: "/v1/policies",
    operationId: "applyPolicies",
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
        body: COMPONENTS.responses.ApplyResult,
      },
      {
        status: 201,
        description: "Applied, and at least one policy was created",
        body: COMPONENTS.responses.ApplyResult,
      },
    ],
    errors: {
      412: "Another write changed one of these policies while this batch was validated; retry",
      422: "A document is invalid, or conflicts with the mesh; `problems` points at each one",
    },
  },
  {
    method: "get",
    path: "/v1/policies/{kind}",
    operationId: "listPoliciesOfKind",
    tag: "Policies",
    summary: "List the policies of a kind",
    access: "read",
    params: [PATH.policyKind, ...listQuery("namespace")],
    replies: [{
      status: 200,
      description: "A page of the policies, by namespace and name",
      body: COMPONENTS.responses.PolicyList,
      headers: ["X-Ironmesh-Index"],
    }],
    errors: { 422: "An unknown kind" },
  },
  {
    method: "get",
    path: "/v1/policies/{kind}/{namespace}",
    operationId: "listPoliciesInNamespace",
    tag: "Policies",
    summary: "List a kind's policies in a namespace, or get the MeshConfig",
    description:
      "For a namespaced kind, its policies in the namespace. `GET /v1/policies/meshconfig/mesh` answers the MeshConfig instead, with its `ETag`.",
    access: "read",
    params: [
      PATH.policyKind,
      { ...PATH.namespace, description: "A namespace; for `meshconfig`, the object's name `mesh`" },
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
  {
    method: "put",
    path: "/v1/policies/{kind}/{namespace}",
    operationId: "putMeshConfig",
    tag: "Policies",
    summary: "Create or replace the MeshConfig",
    description:
      "`PUT /v1/policies/meshconfig/mesh`. Validated and stored like any policy write. Without `dryRun`, answers the stored object; with it, what would change.",
    access: "write",
    params: [PATH.meshConfigKind, PATH.meshConfigName, DRY_RUN, IF_MATCH, IF_NONE_MATCH],
    body: policyPutSchema,
    replies: [
      {
        status: 200,
        description: "Replaced or unchanged (the object), or a dry run (what would change)",
        body: oneOf("Policy", "ApplyResult"),
        headers: ["ETag", "Warning"],
      },
      {
        status: 201,
        description: "Created",
        body: COMPONENTS.responses.Policy,
        headers: ["ETag", "Warning"],
      },
    ],
    errors: { 404: "Another name than `mesh`" },
  },
  {
    method: "delete",
    path: "/v1/policies/{kind}/{namespace}",
    operationId: "deleteMeshConfig",
    tag: "Policies",
    summary: "Delete the MeshConfig: every proxy goes back to the defaults",
    description: "`DELETE /v1/policies/meshconfig/mesh`.",
    access: "write",
    params: [PATH.meshConfigKind, PATH.meshConfigName, DRY_RUN, IF_MATCH],
    replies: [{
      status: 200,
      description: "Deleted, or a dry run",
      body: COMPONENTS.responses.ApplyResult,
    }],
    errors: { 404: "No MeshConfig is stored" },
  },
  {
    method: "get",
    path: "/v1/policies/{kind}/{namespace}/{name}",
    operationId: "getPolicy",
    tag: "Policies",
    summary: "Get a policy",
    description:
      "`GET /v1/policies/meshconfig/mesh/history` answers the MeshConfig's history instead (see `getPolicyHistory`).",
    access: "read",
    params: [PATH.policyKind, PATH.namespace, PATH.policyName],
    replies: [{
      status: 200,
      description: "The policy (with its `ETag`), or the MeshConfig's history",
      body: oneOf("Policy", "PolicyHistory"),
      headers: ["ETag"],
    }],
    errors: { 404: "The policy does not exist" },
  },
  {
    method: "put",
    path: "/v1/policies/{kind}/{namespace}/{name}",
    operationId: "putPolicy",
    tag: "Policies",
    summary: "Create or replace a policy",
    description:
      "The body needs only `spec` (and optional labels): kind, namespace and name come from the path. Validated like a batch of one; problems point into this body. An identical write changes nothing and adds no revision. Without `dryRun`, answers the stored object; with it, what would change.",
    access: "write",
    params: [PATH.policyKind, PATH.namespace, PATH.policyName, DRY_RUN, IF_MATCH, IF_NONE_MATCH],
    body: policyPutSchema,
    replies: [
      {
        status: 200,
        description: "Replaced or unchanged (the object), or a dry run (what would change)",
        body: oneOf("Policy", "ApplyResult"),
        headers: ["ETag", "Warning"],
      },
      {
        status: 201,
        description: "Created",
        body: COMPONENTS.responses.Policy,
        headers: ["ETag", "Warning"],
      },
    ],
    errors: {
      404: "`meshconfig` with a namespace: use `/v1/policies/meshconfig/mesh`",
      422:
        "The body is invalid, names another object than the path, or conflicts with the mesh; or a parameter or header is invalid",
    },
  },
  {
    method: "delete",
    path: "/v1/policies/{kind}/{namespace}/{name}",
    operationId: "deletePolicy",
    tag: "Policies",
    summary: "Delete a policy",
    access: "write",
    params: [PATH.policyKind, PATH.namespace, PATH.policyName, DRY_RUN, IF_MATCH],
    replies: [{
      status: 200,
      description: "Deleted, or a dry run",
      body: COMPONENTS.responses.ApplyResult,
    }],
    errors: { 404: "The policy does not exist" },
  },
  {
    method: "post",
    path: "/v1/policies/{kind}/{namespace}/{name}",
    operationId: "rollbackMeshConfig",
    tag: "Policies",
    summary: "Roll the MeshConfig back to an earlier revision",
    description: "`POST /v1/policies/meshconfig/mesh/rollback`; see `rollbackPolicy`.",
    access: "write",
    params: [
      PATH.meshConfigKind,
      PATH.meshConfigName,
      pathParam("name", z.literal("rollback"), "Only `rollback`"),
      DRY_RUN,
      IF_MATCH,
      {
        ...IF_NONE_MATCH,
        description: "`*`: restore only a MeshConfig that is deleted; 412 if it exists",
      },
    ],
    body: policyRollbackSchema,
    replies: [
      {
        status: 200,
        description: "The object as stored now, or a dry run",
        body: oneOf("Policy", "ApplyResult"),
        headers: ["ETag", "Warning"],
      },
      {
        status: 201,
        description: "The MeshConfig had been deleted and is created again",
        body: COMPONENTS.responses.Policy,
        headers: ["ETag", "Warning"],
      },
    ],
    errors: {
      404:
        "No such revision, the revision is a delete, or the path is not `meshconfig/mesh/rollback`",
      422: "The body is invalid, or the old content is refused by today's validation",
    },
  },
  {
    method: "get",
    path: "/v1/policies/{kind}/{namespace}/{name}/history",
    operationId: "getPolicyHistory",
    tag: "Policies",
    summary: "Every revision of a policy, with what changed",
    description:
      "Oldest first, deletes included. Each entry carries the object it stored and the JSON pointers of what changed since the previous revision.",
    access: "read",
    params: [PATH.policyKind, PATH.namespace, PATH.policyName],
    replies: [{
      status: 200,
      description: "The revisions",
      body: COMPONENTS.responses.PolicyHistory,
    }],
    errors: { 404: "The policy has no history" },
  },
  {
    method: "post",
    path: "/v1/policies/{kind}/{namespace}/{name}/rollback",
    operationId: "rollbackPolicy",
    tag: "Policies",
    summary: "Store an earlier revision's content again",
    description:
      "History only grows: the content of revision N is stored as a new revision (`op: rollback`), through the same validation as any write, since the mesh may have changed since. A policy deleted since can be rolled back to a revision before its delete.",
    access: "write",
    params: [
      PATH.policyKind,
      PATH.namespace,
      PATH.policyName,
      DRY_RUN,
      IF_MATCH,
      {
        ...IF_NONE_MATCH,
        description: "`*`: restore only a policy that is deleted; 412 if it exists",
      },
    ],
    body: policyRollbackSchema,
    replies: [
      {
        status: 200,
        description: "The object as stored now, or a dry run",
        body: oneOf("Policy", "ApplyResult"),
        headers: ["ETag", "Warning"],
      },
      {
        status: 201,
        description: "The policy had been deleted and is created again",
        body: COMPONENTS.responses.Policy,
        headers: ["ETag", "Warning"],
      },
    ],
    errors: {
      404: "No such revision, or the revision is a delete",
      422: "The body is invalid, or the old content is refused by today's validation",
    },
  },
  {
    method: "get",
    path: "/v1/audit",
    operationId: "listAudit",
    tag: "Audit",
    summary: "The audit log of policy writes",
    description:
      "Every policy write, stored or refused (invalid, failed precondition, not found), oldest first. Dry runs are not recorded.",
    access: "read",
    params: [
      queryParam(
        "after",
        z.number().int().min(0),
        "Only entries after this `id` (the `next` of the previous page)",
      ),
      QUERY.limit,
      queryParam("kind", z.string(), "Only this kind (any case, singular or plural)"),
      queryParam("namespace", z.string(), 'Only this namespace (`""` is MeshConfig\'s)'),
      queryParam("name", z.string(), "Only policies of this name"),
      queryParam("outcome", z.enum(["ok", "refused"]), "Only stored (`ok`) or refused writes"),
    ],
    replies: [{
      status: 200,
      description: "A page of the audit log",
      body: COMPONENTS.responses.AuditList,
    }],
    errors: { 422: "A parameter is invalid, or unknown" },
  },
  {
    method: "get",
    path: "/v1/backup",
    operationId: "getBackup",
    tag: "Operations",
    summary: "Take an online backup",
    access: "admin",
    replies: [{
      status: 200,
      description: "The backup archive (gzip-compressed JSON)",
      body: {
        mediaType: "application/gzip",
        schema: { type: "string", contentMediaType: "application/gzip" },
      },
      headers: ["Content-Disposition"],
    }],
  },
  {
    method: "post",
    path: "/v1/ca/renew",
    operationId: "renew",
    tag: "Identity",
    summary: "Renew the caller's certificate",
    description:
      "Proven by the current certificate: call over mutual TLS with it. The new certificate has the same identity.",
    access: "mtls",
    body: renewRequestSchema,
    replies: [{
      status: 200,
      description: "The new certificate and the trust bundle",
      body: COMPONENTS.responses.IssuedIdentity,
    }],
    errors: {
      401:
        "No client certificate and no token, or the certificate is expired, revoked or not trusted",
      403: "Called with a token instead of a certificate, or the CSR asks for another identity",
      422: "The body or the CSR is invalid",
      429: "Too many renewals right now; retry after `Retry-After` seconds",
    },
  },
  {
    method: "get",
    path: "/v1/ca/status",
    operationId: "getCaStatus",
    tag: "Identity",
    summary: "Root rotation status",
    access: "read",
    replies: [{
      status: 200,
      description: "The rotation status",
      body: COMPONENTS.responses.RotationStatus,
    }],
  },
  {
    method: "post",
    path: "/v1/ca/rotation",
    operationId: "startRotation",
    tag: "Identity",
    summary: "Start a root rotation",
    description:
      "Publishes a new root in the bundle at once; it starts signing once every live node has fetched the bundle, and the old root is retired once no current certificate chains to it.",
    access: "admin",
    replies: [{
      status: 202,
      description: "The rotation started",
      body: COMPONENTS.responses.RotationStatus,
    }],
    errors: { 409: "A root rotation is already in progress" },
  },
];

// ---------------------------------------------------------------------------
// Building the document.
// ---------------------------------------------------------------------------

/** The roles an access level admits, from `authorize` itself; `mTLS` and `public` stand alone. */
export function rolesFor(access: Access): string[] {
  if (access === "public") return ["public"];
  if (access === "mtls") return ["mTLS"];
  return ROLES.filter((role) => {
    try {
      authorize({ tokenId: "", role, node: null }, access);
      return true;
    } catch {
      return false;
    }
  });
}

/** The OpenAPI 3.1 document (the subset of its shape that this API uses). */
export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, OperationObject>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, ResponseObject>;
    headers: Record<string, { description: string; schema: JsonSchema }>;
    securitySchemes: Record<string, Record<string, string>>;
  };
}

/** A parameter as the document holds it. */
export interface ParameterObject {
  name: string;
  in: "path" | "query" | "header";
  description: string;
  required: boolean;
  schema: JsonSchema;
}

/** A response or a reference to one. */
export interface ResponseObject {
  $ref?: string;
  description: string;
  headers?: Record<string, { $ref: string }>;
  content?: Record<string, { schema: JsonSchema }>;
}

/** An operation as the document holds it. */
export interface OperationObject {
  operationId: string;
  tags: string[];
  summary: string;
  description?: string;
  security: Record<string, string[]>[];
  "x-ironmesh-access": Access;
  "x-ironmesh-roles": string[];
  parameters?: ParameterObject[];
  requestBody?: {
    required: true;
    content: { "application/json": { schema: JsonSchema } };
  };
  responses: Record<string, ResponseObject>;
}

const SCHEMA_REF = "#/components/schemas/";

function securityFor(access: Access): Record<string, string[]>[] {
  switch (access) {
    case "public":
      return [];
    case "mtls":
      return [{ mutualTLS: [] }];
    case "read":
    case "agent":
      return [{ bearerAuth: [] }, { mutualTLS: [] }];
    case "write":
    case "admin":
      return [{ bearerAuth: [] }];
  }
}

/**
 * Converts one side of {@link COMPONENTS} with a registry, so a named schema
 * nested in another (a `Service` in a `ServiceList`) becomes a `$ref`.
 */
function convert(
  named: Record<string, z.ZodType>,
  io: "input" | "output",
): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    io,
    uri: (id) => `${SCHEMA_REF}${id}`,
    override: ({ zodSchema, jsonSchema }) => {
      // Responses may gain fields in later versions; clients must ignore unknown ones.
      if (
        io === "output" && zodSchema._zod.def.type === "object" &&
        jsonSchema.additionalProperties === false
      ) {
        delete jsonSchema.additionalProperties;
      }
      tidy(jsonSchema);
    },
  });
  for (const schema of Object.values(schemas)) {
    delete schema.$schema;
    delete schema.$id;
  }
  return schemas;
}

/**
 * `tokenCreateSchema` fills in `kind: "api"` in a preprocess step that JSON
 * Schema cannot see; say so in the API variant.
 */
function kindDefaultsToApi(schema: JsonSchema): void {
  for (const variant of schema.oneOf ?? []) {
    const kind = variant.properties?.kind;
    if (typeof kind === "object" && kind.const === "api") {
      kind.default = "api";
      variant.required = (variant.required ?? []).filter((name) => name !== "kind");
    }
  }
}

function nameOf(schema: z.ZodType, side: Record<string, z.ZodType>, what: string): string {
  const name = Object.entries(side).find(([, s]) => s === schema)?.[0];
  if (!name) throw new Error(`Cannot document ${what}: its schema is not in COMPONENTS`);
  return name;
}

/**
 * Drops what zod adds that says nothing to a reader: the safe-integer bounds
 * of every `.int()`, and the long pattern behind `format: date-time`.
 */
function tidy(schema: JsonSchema): void {
  if (schema.minimum === Number.MIN_SAFE_INTEGER) delete schema.minimum;
  if (schema.maximum === Number.MAX_SAFE_INTEGER) delete schema.maximum;
  if (schema.format === "date-time") delete schema.pattern;
  // zod's name for `.startsWith()`, which `pattern` already says in JSON Schema's words.
  if (schema.format === "starts_with") delete schema.format;
}

function parameterSchema(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, {
    io: "input",
    override: ({ jsonSchema }) => tidy(jsonSchema),
  });
  delete out.$schema;
  return out;
}

function replyContent(body: NonNullable<Reply["body"]>, what: string) {
  const bodies = Array.isArray(body) ? body : [body];
  const content: Record<string, { schema: JsonSchema }> = {};
  for (const b of bodies as (z.ZodType | RawBody)[]) {
    if (b instanceof z.ZodType) {
      content["application/json"] = {
        schema: { $ref: `${SCHEMA_REF}${nameOf(b, COMPONENTS.responses, what)}` },
      };
    } else {
      content[b.mediaType] = { schema: b.schema };
    }
  }
  return content;
}

/** The problem statuses of a route: the ones it shares with its kind, then its own. */
function errorsOf(route: Route): Partial<Record<ErrorStatus, string>> {
  const restricted = route.access !== "public" &&
    rolesFor(route.access).length < ROLES.length;
  const params = route.params ?? [];
  const inferred: Partial<Record<ErrorStatus, string>> = {};
  if (route.access !== "public") {
    inferred[401] = ERRORS[401].description;
    inferred[503] = ERRORS[503].description;
  }
  if (restricted) {
    inferred[403] = route.access === "mtls"
      ? "The caller did not prove a mesh certificate"
      : `The role lacks the "${route.access}" permission`;
  }
  if (route.body) {
    inferred[400] = ERRORS[400].description;
    inferred[413] = ERRORS[413].description;
    inferred[415] = ERRORS[415].description;
    inferred[422] = "The body is invalid; `problems` points at each bad field";
  }
  if (params.some((p) => !p.unchecked)) {
    inferred[422] = route.body
      ? "The body, a parameter or a header is invalid; `problems` points at each one"
      : "A parameter or header is invalid; `problems` points at it";
  }
  if (params.some((p) => p.name === "If-Match" || p.name === "If-None-Match")) {
    inferred[412] = ERRORS[412].description;
  }
  return { ...inferred, ...route.errors };
}

function operation(route: Route): OperationObject {
  const what = `${route.method.toUpperCase()} ${route.path}`;
  const op: OperationObject = {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    security: securityFor(route.access),
    "x-ironmesh-access": route.access,
    "x-ironmesh-roles": rolesFor(route.access),
    ...(route.params?.length
      ? {
        parameters: route.params.map((p) => ({
          name: p.name,
          in: p.in,
          description: p.description,
          required: p.required ?? false,
          schema: parameterSchema(p.schema),
        })),
      }
      : {}),
    ...(route.body
      ? {
        requestBody: {
          required: true as const,
          content: {
            "application/json": {
              schema: {
                $ref: `${SCHEMA_REF}${
                  nameOf(route.body, COMPONENTS.requests, `the body of ${what}`)
                }`,
              },
            },
          },
        },
      }
      : {}),
    responses: {},
  };
  for (const reply of route.replies) {
    op.responses[reply.status] = {
      description: reply.description,
      ...(reply.headers
        ? {
          headers: Object.fromEntries(
            reply.headers.map((h) => [h, { $ref: `#/components/headers/${h}` }]),
          ),
        }
        : {}),
      ...(reply.body ? { content: replyContent(reply.body, what) } : {}),
    };
  }
  const errors = errorsOf(route);
  for (const status of (Object.keys(errors).map(Number) as ErrorStatus[]).sort()) {
    op.responses[status] = {
      $ref: `#/components/responses/${ERRORS[status].name}`,
      description: errors[status]!,
    };
  }
  return op;
}

function build(): OpenApiDocument {
  const responses = convert({ ...COMPONENTS.responses, ...COMPONENTS.policySpecs }, "output");
  const requests = convert({ ...COMPONENTS.requests, ...COMPONENTS.policySpecs }, "input");
  kindDefaultsToApi(requests.TokenCreate!);
  for (const [name, description] of Object.entries(POLICY_SPEC_DESCRIPTIONS)) {
    requests[name]!.description ??= description;
  }
  const paths: OpenApiDocument["paths"] = {};
  for (const route of ROUTES) {
    const declared = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const params = (route.params ?? []).filter((p) => p.in === "path").map((p) => p.name);
    if (declared.join() !== params.join()) {
      throw new Error(
        `Cannot document ${route.method.toUpperCase()} ${route.path}: path parameters are ${
          JSON.stringify(params)
        }, the path has ${JSON.stringify(declared)}`,
      );
    }
    (paths[route.path] ??= {})[route.method] = operation(route);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Ironmesh REST API",
      version: VERSION,
      description:
        "The control plane's HTTP API. Requests and responses are JSON; errors are `application/problem+json` (RFC 9457). " +
        "Every `/v1` route except the version, the trust bundle and enrolment needs `Authorization: Bearer <token>`, " +
        "or a mesh certificate over mutual TLS on the TLS port, which acts as the `agent` role for its own node. " +
        "Writes that return an object send its `ETag`; send it back as `If-Match` to write only over what you read.",
    },
    tags: TAGS.map((t) => ({ ...t })),
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      // The policy specs are on both sides; the input side's (strict) is the one kept.
      schemas: { ...responses, ...requests },
      responses: Object.fromEntries(
        Object.values(ERRORS).map((e) => [e.name, {
          description: e.description,
          ...(e.headers
            ? {
              headers: Object.fromEntries(
                e.headers.map((h) => [h, { $ref: `#/components/headers/${h}` }]),
              ),
            }
            : {}),
          content: { "application/problem+json": { schema: { $ref: `${SCHEMA_REF}Problem` } } },
        }]),
      ),
      headers: structuredClone(HEADERS) as OpenApiDocument["components"]["headers"],
      securitySchemes: {
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          description:
            "An API token, `imt.<id>.<secret>`, from `ironmesh token create` or `POST /v1/tokens`",
        },
        mutualTLS: {
          type: "mutualTLS",
          description:
            "A mesh workload certificate presented on the TLS port; the caller acts as the `agent` role for the node in the certificate",
        },
      },
    },
  };
}

let cached: OpenApiDocument | undefined;

/** The OpenAPI document, built on first use and then shared (treat it as read-only). */
export function openApiDocument(): OpenApiDocument {
  return cached ??= build();
}
