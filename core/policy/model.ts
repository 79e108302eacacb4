/**
 * The policy kinds operators write (REST or `ironmesh apply -f`): their
 * schemas, and the stored envelope. A spec is stored as written (durations
 * stay text such as `"2s"`), so history, diffs and rollbacks show the
 * operator's own words; generators turn it into Envoy config.
 *
 * Every kind but MeshConfig is namespace-scoped and names its destination
 * service in its own namespace (`service: echo`), as Consul's config entries
 * do; a split or mirror may name a service of another namespace.
 */
import { z } from "zod";
import { durationText, parseDuration } from "../duration.ts";
import { labelsSchema } from "../labels.ts";
import { labelName } from "../names.ts";

/** The API version every policy object carries. */
export const API_VERSION = "ironmesh.io/v1";

/** The policy kinds, as they appear in `kind:` and, lower-cased, in URLs. */
export const POLICY_KINDS = [
  "TrafficRoute",
  "DestinationPolicy",
  "AuthorizationPolicy",
  "RateLimit",
  "MeshConfig",
] as const;
/** One of {@link POLICY_KINDS}. */
export type PolicyKind = typeof POLICY_KINDS[number];

/** The one MeshConfig object's name; it is not namespaced (its namespace is `""`). */
export const MESH_CONFIG_NAME = "mesh";

/** `trafficroute` → `TrafficRoute`, for URLs (`/v1/policies/trafficroute`) and the CLI. */
export function policyKindFromText(text: string): PolicyKind | undefined {
  const lower = text.toLowerCase();
  return POLICY_KINDS.find((k) => k.toLowerCase() === lower || `${k.toLowerCase()}s` === lower);
}

/** Milliseconds of a duration text that passed {@link durationText}. */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new RangeError(`Not a duration: "${text}"`);
  return ms;
}

/** A percentage, 0–100, fractions allowed (`0.5` is one request in two hundred). */
export const percent = z.number().min(0, "Must be between 0 and 100").max(
  100,
  "Must be between 0 and 100",
);

/** How a string is matched: exactly one of the fields. Regexes are RE2 (Envoy's `safe_regex`). */
export const stringMatchSchema = z.strictObject({
  exact: z.string().optional(),
  prefix: z.string().optional(),
  regex: z.string().optional(),
}).describe("Exactly one of `exact`, `prefix`, `regex` (RE2 syntax)");
export type StringMatch = z.infer<typeof stringMatchSchema>;

/** A header or query parameter match: a {@link StringMatch}, or `present: true|false`. */
export const valueMatchSchema = z.strictObject({
  exact: z.string().optional(),
  prefix: z.string().optional(),
  regex: z.string().optional(),
  present: z.boolean().optional(),
}).describe("Exactly one of `exact`, `prefix`, `regex`, `present`");
export type ValueMatch = z.infer<typeof valueMatchSchema>;

/** HTTP methods a rule may match or authorize. */
export const HTTP_METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "CONNECT",
  "TRACE",
] as const;

/** What a TrafficRoute rule matches; every given field must match (AND). No match: everything. */
export const routeMatchSchema = z.strictObject({
  path: stringMatchSchema.optional(),
  methods: z.array(z.enum(HTTP_METHODS)).min(1).optional(),
  /** Header names are lower-case (HTTP/2 and gRPC metadata are). */
  headers: z.record(z.string().min(1), valueMatchSchema).optional(),
  query: z.record(z.string().min(1), valueMatchSchema).optional(),
});
export type RouteMatch = z.infer<typeof routeMatchSchema>;

/**
 * A rule's match: one {@link RouteMatch}, or a list of them of which any may
 * match (OR), as Istio's VirtualService `http[].match`.
 */
export const routeMatchesSchema = z.union([
  routeMatchSchema,
  z.array(routeMatchSchema).min(
    1,
    'An empty match list matches nothing: list at least one match, or omit "match" to match every request',
  ),
]);
export type RouteMatches = z.infer<typeof routeMatchesSchema>;

/** The entries of a rule's match, in order; no match is one entry that matches everything. */
export function matchEntries(match: RouteMatches | undefined): readonly RouteMatch[] {
  return match === undefined ? [{}] : Array.isArray(match) ? match : [match];
}

/** A reference to a service (by default in the policy's namespace), optionally one subset. */
export const destinationSchema = z.strictObject({
  service: labelName.optional().describe("Default: the route's own service"),
  namespace: labelName.optional().describe("Default: the policy's namespace"),
  subset: labelName.optional().describe("A subset of the service's DestinationPolicy"),
});

/** One weighted destination of a split. */
export const splitEntrySchema = destinationSchema.extend({
  weight: z.number().int("Must be an integer").min(0).max(100),
});
export type SplitEntry = z.infer<typeof splitEntrySchema>;

/**
 * Conditions a retry may fire on: Envoy's `retry_on` (HTTP) and gRPC status
 * names, which proxyless gRPC clients understand.
 */
export const RETRY_ON = [
  "5xx",
  "gateway-error",
  "reset",
  "connect-failure",
  "retriable-4xx",
  "refused-stream",
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
] as const;

export const retriesSchema = z.strictObject({
  attempts: z.number().int().min(0).max(10).describe("Retries after the first try; 0 disables"),
  perTryTimeout: durationText().optional(),
  on: z.array(z.enum(RETRY_ON)).min(1).optional().describe(
    "Default: connect-failure, refused-stream, unavailable, cancelled, 5xx",
  ),
});
export type Retries = z.infer<typeof retriesSchema>;

export const faultSchema = z.strictObject({
  delay: z.strictObject({ fixed: durationText(), percent }).optional(),
  abort: z.strictObject({
    httpStatus: z.number().int().min(200).max(599).optional(),
    grpcStatus: z.number().int().min(1).max(16).optional(),
    percent,
  }).optional(),
});
export type Fault = z.infer<typeof faultSchema>;

export const headerOpsSchema = z.strictObject({
  add: z.record(z.string().min(1), z.string()).optional().describe("Set, replacing any value"),
  remove: z.array(z.string().min(1)).optional(),
});
export type HeaderOps = z.infer<typeof headerOpsSchema>;

export const redirectSchema = z.strictObject({
  scheme: z.enum(["http", "https"]).optional(),
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  path: z.string().startsWith("/").optional(),
  code: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)])
    .optional().describe("Default: 301"),
});

/** One TrafficRoute rule: the first rule whose match fits a request decides what happens. */
export const routeRuleSchema = z.strictObject({
  name: z.string().min(1).max(63).optional(),
  match: routeMatchesSchema.optional().describe(
    "One match (every given field must match), or a list of them of which any may match",
  ),
  /** Weighted destinations; omitted: the whole service. Weights sum to 100. */
  split: z.array(splitEntrySchema).min(1).optional(),
  /** Answer with a redirect instead of forwarding; excludes split, retries, timeout, mirror, fault, rewrite. */
  redirect: redirectSchema.optional(),
  retries: retriesSchema.optional(),
  timeout: durationText({ min: 0 }).optional().describe("Request timeout; 0s disables"),
  fault: faultSchema.optional(),
  mirror: destinationSchema.extend({ percent: percent.optional() }).optional(),
  requestHeaders: headerOpsSchema.optional(),
  responseHeaders: headerOpsSchema.optional(),
  rewrite: z.strictObject({
    prefix: z.string().startsWith("/").optional().describe("Replaces the matched path prefix"),
    host: z.string().min(1).optional(),
  }).optional(),
});
export type RouteRule = z.infer<typeof routeRuleSchema>;

export const trafficRouteSpecSchema = z.strictObject({
  service: labelName,
  /** The service port the rules apply to; default: every HTTP, HTTP/2 and gRPC port. */
  port: z.number().int().min(1).max(65535).optional(),
  rules: z.array(routeRuleSchema).min(1).max(256),
});
export type TrafficRouteSpec = z.infer<typeof trafficRouteSpecSchema>;

export const LB_ALGORITHMS = [
  "ROUND_ROBIN",
  "LEAST_REQUEST",
  "RANDOM",
  "RING_HASH",
  "MAGLEV",
] as const;

export const loadBalancerSchema = z.strictObject({
  algorithm: z.enum(LB_ALGORITHMS),
  /** For RING_HASH and MAGLEV: what keys a request to a backend. Exactly one field. */
  hash: z.strictObject({
    header: z.string().min(1).optional(),
    cookie: z.strictObject({
      name: z.string().min(1),
      ttl: durationText({ min: 0 }).optional(),
      path: z.string().optional(),
    }).optional(),
    sourceIp: z.literal(true).optional(),
  }).optional(),
  /** RING_HASH: the ring's minimum size. */
  minRingSize: z.number().int().min(1).max(8_388_608).optional(),
});
export type LoadBalancer = z.infer<typeof loadBalancerSchema>;

export const connectionPoolSchema = z.strictObject({
  maxConnections: z.number().int().min(1).optional(),
  maxPendingRequests: z.number().int().min(1).optional(),
  maxRequests: z.number().int().min(1).optional(),
  maxRetries: z.number().int().min(0).optional(),
  connectTimeout: durationText().optional(),
});
export type ConnectionPool = z.infer<typeof connectionPoolSchema>;

export const outlierDetectionSchema = z.strictObject({
  consecutiveErrors: z.number().int().min(1).optional().describe("5xx (gRPC: failures) in a row"),
  consecutiveGatewayErrors: z.number().int().min(1).optional(),
  interval: durationText().optional().describe("Default: 10s"),
  baseEjectionTime: durationText().optional().describe("Default: 30s"),
  maxEjectionPercent: z.number().int("Must be a whole percentage").min(
    0,
    "Must be between 0 and 100",
  )
    .max(100, "Must be between 0 and 100").optional().describe("Default: 10"),
});
export type OutlierDetection = z.infer<typeof outlierDetectionSchema>;

/** Locality-aware routing: prefer the caller's zone, then region, then the failover order. */
export const localitySchema = z.strictObject({
  enabled: z.boolean(),
  /** Where traffic from a region goes when that region has no healthy endpoint. */
  failover: z.array(z.strictObject({ from: z.string().min(1), to: z.string().min(1) })).optional(),
});
export type LocalitySettings = z.infer<typeof localitySchema>;

/** Traffic settings: the service-wide ones, or those of a subset or a port. */
const trafficSettings = {
  loadBalancer: loadBalancerSchema.optional(),
  connectionPool: connectionPoolSchema.optional(),
  outlierDetection: outlierDetectionSchema.optional(),
};

export const subsetSchema = z.strictObject({
  name: labelName,
  labels: labelsSchema,
  ...trafficSettings,
});
export type Subset = z.infer<typeof subsetSchema>;

export const destinationPolicySpecSchema = z.strictObject({
  service: labelName,
  subsets: z.array(subsetSchema).max(64).optional(),
  ...trafficSettings,
  locality: localitySchema.optional(),
  ports: z.array(
    z.strictObject({ port: z.number().int().min(1).max(65535), ...trafficSettings }),
  ).optional(),
});
export type DestinationPolicySpec = z.infer<typeof destinationPolicySpecSchema>;

const identities = z.array(z.string().startsWith("spiffe://")).min(1);
const namespaces = z.array(labelName).min(1);
const ipBlocks = z.array(z.string().min(1)).min(1);

/**
 * Who a rule is about; every given field must match (AND), any entry of a
 * field (OR). A `not…` field matches when the caller matches none of its
 * entries, as in Istio.
 */
export const sourceSchema = z.strictObject({
  identities: identities.optional(),
  notIdentities: identities.optional().describe("The caller is none of these"),
  namespaces: namespaces.optional(),
  notNamespaces: namespaces.optional().describe("The caller is in none of these"),
  ipBlocks: ipBlocks.optional().describe("CIDRs, e.g. 10.0.0.0/8"),
  notIpBlocks: ipBlocks.optional().describe("CIDRs the caller's address is in none of"),
});
export type Source = z.infer<typeof sourceSchema>;

const ports = z.array(z.number().int().min(1).max(65535)).min(1);
const methods = z.array(z.enum(HTTP_METHODS)).min(1);
const paths = z.array(z.string().min(1)).min(1);

/**
 * What a rule is about; every given field must match (AND), a `not…` field
 * when the request matches none of its entries. Paths: exact, a prefix
 * ending in `*` (`/api/*`), `*suffix`, or `*`.
 */
export const operationSchema = z.strictObject({
  ports: ports.optional(),
  notPorts: ports.optional().describe("The request is to none of these"),
  methods: methods.optional(),
  notMethods: methods.optional().describe("The request's method is none of these"),
  paths: paths.optional(),
  notPaths: paths.optional().describe("The request's path matches none of these"),
});
export type Operation = z.infer<typeof operationSchema>;

/** Matches when the request comes from any `from` and goes to any `to` (omitted: anything). */
export const authorizationRuleSchema = z.strictObject({
  from: z.array(sourceSchema).min(1).optional(),
  to: z.array(operationSchema).min(1).optional(),
});
export type AuthorizationRule = z.infer<typeof authorizationRuleSchema>;

export const authorizationPolicySpecSchema = z.strictObject({
  /** The protected service; omitted: every service of the namespace. */
  service: labelName.optional(),
  action: z.enum(["ALLOW", "DENY"]),
  /**
   * No rules: the policy matches nothing, as in Istio, so an ALLOW without
   * rules admits no one and a DENY without rules denies no one. A rule `{}`
   * matches every request.
   */
  rules: z.array(authorizationRuleSchema).max(256).optional(),
});
export type AuthorizationPolicySpec = z.infer<typeof authorizationPolicySpecSchema>;

/**
 * A token bucket: `requests` per `per`, up to `burst` at once (default:
 * `requests`). Envoy refills at most every 50 ms: a shorter `per` is
 * stretched to 50 ms with proportionally more tokens, the same rate.
 */
export const bucketSchema = z.strictObject({
  requests: z.number().int().min(1),
  per: durationText({ min: 1 }),
  burst: z.number().int().min(1).optional(),
});
export type Bucket = z.infer<typeof bucketSchema>;

export const rateLimitSpecSchema = z.strictObject({
  service: labelName,
  /** The service-wide bucket, shared by every request to one instance's sidecar. */
  limit: bucketSchema.optional(),
  /** Buckets for requests that match a route (first match wins; instead of the service-wide one). */
  routes: z.array(z.strictObject({
    name: z.string().min(1).max(63).optional(),
    match: routeMatchSchema,
    limit: bucketSchema,
  })).optional(),
  response: z.strictObject({
    status: z.number().int().min(400).max(599).optional().describe("Default: 429"),
    headers: z.record(z.string().min(1), z.string()).optional(),
  }).optional(),
});
export type RateLimitSpec = z.infer<typeof rateLimitSpecSchema>;

/**
 * How a sidecar normalizes a request's path before authorization and routing
 * see it: RFC 3986 (`.` and `..` segments, percent-encoded unreserved
 * characters), and adjacent slashes merged. `BASE` is Istio's default.
 */
export const PATH_NORMALIZATIONS = ["NONE", "BASE", "MERGE_SLASHES"] as const;
/** The default {@link PATH_NORMALIZATIONS} value: stricter than Istio's `BASE`. */
export const DEFAULT_PATH_NORMALIZATION = "MERGE_SLASHES";

/**
 * What a sidecar does with a path holding an escaped slash (`%2F`, `%5C`,
 * either case): refuse it (400; gRPC: INTERNAL), redirect the caller to the
 * decoded path, decode it and forward, or keep it as it is.
 */
export const ESCAPED_SLASH_ACTIONS = ["REJECT", "REDIRECT", "DECODE", "KEEP"] as const;
/** The default {@link ESCAPED_SLASH_ACTIONS} value (Istio keeps escaped slashes by default). */
export const DEFAULT_ESCAPED_SLASHES = "REJECT";

/** Path normalization settings, each of which may weaken path-based rules (see the docs). */
export const pathNormalizationSchema = z.strictObject({
  normalization: z.enum(PATH_NORMALIZATIONS).optional().describe(
    `Default: ${DEFAULT_PATH_NORMALIZATION}. NONE and BASE let paths past path-based rules`,
  ),
  escapedSlashes: z.enum(ESCAPED_SLASH_ACTIONS).optional().describe(
    `Default: ${DEFAULT_ESCAPED_SLASHES}. KEEP lets paths past path-based rules`,
  ),
});
export type PathNormalization = z.infer<typeof pathNormalizationSchema>;

export const meshConfigSpecSchema = z.strictObject({
  mtls: z.strictObject({ mode: z.enum(["STRICT", "PERMISSIVE"]) }).optional().describe(
    "Default: STRICT. PERMISSIVE also accepts plaintext on inbound listeners, for migrations",
  ),
  /** Applied to every HTTP route that does not set its own. */
  defaults: z.strictObject({
    timeout: durationText({ min: 0 }).optional(),
    retries: retriesSchema.optional(),
  }).optional(),
  authorization: z.strictObject({ default: z.enum(["ALLOW", "DENY"]) }).optional().describe(
    "What a service without an ALLOW policy permits. Default: ALLOW",
  ),
  certificates: z.strictObject({ ttl: durationText({ min: 60_000, max: 366 * 86_400_000 }) })
    .optional().describe("Lifetime of workload certificates issued from now on"),
  pathNormalization: pathNormalizationSchema.optional().describe(
    "How sidecars normalize request paths before AuthorizationPolicy, RateLimit and routes see them",
  ),
  push: z.strictObject({
    debounce: durationText({ min: 0, max: 60_000 }).optional(),
    maxDelay: durationText({ min: 0, max: 600_000 }).optional(),
  }).optional(),
});
export type MeshConfigSpec = z.infer<typeof meshConfigSpecSchema>;

/** Each kind's spec schema. */
export const SPEC_SCHEMAS = {
  TrafficRoute: trafficRouteSpecSchema,
  DestinationPolicy: destinationPolicySpecSchema,
  AuthorizationPolicy: authorizationPolicySpecSchema,
  RateLimit: rateLimitSpecSchema,
  MeshConfig: meshConfigSpecSchema,
} as const;

/** Each kind's spec type. */
export interface Specs {
  TrafficRoute: TrafficRouteSpec;
  DestinationPolicy: DestinationPolicySpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  RateLimit: RateLimitSpec;
  MeshConfig: MeshConfigSpec;
}

/** What a writer sends: kind, name and spec (apiVersion and namespace may be implied). */
export const policyInputSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.enum(POLICY_KINDS),
  metadata: z.strictObject({
    name: labelName,
    namespace: labelName.optional().describe("Default: `default`; MeshConfig has none"),
    labels: labelsSchema.optional(),
    // Read back from GET and sent again by `apply`: ignored on write.
    revision: z.number().optional(),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional(),
    updatedBy: z.string().optional(),
  }),
  spec: z.unknown(),
});
export type PolicyInput = z.infer<typeof policyInputSchema>;

/** A stored policy of one kind. */
export interface Policy<K extends PolicyKind = PolicyKind> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: {
    name: string;
    /** `""` for MeshConfig. */
    namespace: string;
    labels: Record<string, string>;
    /** Counts this object's writes from 1, across deletes; its `ETag` is this number in quotes. */
    revision: number;
    createdAt: string;
    updatedAt: string;
    /** The caller's token id or node. */
    updatedBy: string;
  };
  spec: Specs[K];
}

/** A policy as written, checked against its schema, not stored yet: no revision or times. */
export interface Draft<K extends PolicyKind = PolicyKind> {
  kind: K;
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: Specs[K];
}

/** Any draft, narrowed by `kind`. */
export type PolicyDraft = { [K in PolicyKind]: Draft<K> }[PolicyKind];

/** Any stored policy, narrowed by `kind`. */
export type AnyPolicy = { [K in PolicyKind]: Policy<K> }[PolicyKind];

/** `kind/namespace/name`: a policy's key. */
export function policyKey(kind: PolicyKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/**
 * Every stored policy of the mesh, as one consistent read: what the
 * generators see (through the xDS view) and what `explain` matches against.
 */
export interface PolicySet {
  trafficRoutes: readonly Policy<"TrafficRoute">[];
  destinationPolicies: readonly Policy<"DestinationPolicy">[];
  authorizationPolicies: readonly Policy<"AuthorizationPolicy">[];
  rateLimits: readonly Policy<"RateLimit">[];
  meshConfig: Policy<"MeshConfig"> | null;
}

/** A set with no policy: the mesh's defaults everywhere. */
export const EMPTY_POLICY_SET: PolicySet = {
  trafficRoutes: [],
  destinationPolicies: [],
  authorizationPolicies: [],
  rateLimits: [],
  meshConfig: null,
};

/** Groups stored policies by kind, sorted by namespace and name (deterministic output). */
export function policySet(policies: readonly AnyPolicy[]): PolicySet {
  const sorted = [...policies].sort((a, b) =>
    a.metadata.namespace < b.metadata.namespace
      ? -1
      : a.metadata.namespace > b.metadata.namespace
      ? 1
      : a.metadata.name < b.metadata.name
      ? -1
      : a.metadata.name > b.metadata.name
      ? 1
      : 0
  );
  const of = <K extends PolicyKind>(kind: K) =>
    sorted.filter((p): p is Policy<K> & AnyPolicy => p.kind === kind) as Policy<K>[];
  return {
    trafficRoutes: of("TrafficRoute"),
    destinationPolicies: of("DestinationPolicy"),
    authorizationPolicies: of("AuthorizationPolicy"),
    rateLimits: of("RateLimit"),
    meshConfig: of("MeshConfig")[0] ?? null,
  };
}
