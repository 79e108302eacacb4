import { isIP } from "node:net";
import { z } from "zod";
import { durationSchema } from "./duration.ts";
import { type Labels, labelsSchema } from "./labels.ts";
import { labelName, subdomainName } from "./names.ts";

/** Application protocols a service port may speak; they decide how Envoy proxies it. */
export const PROTOCOLS = ["http", "http2", "grpc", "tcp"] as const;
/** One of {@link PROTOCOLS}. */
export type Protocol = typeof PROTOCOLS[number];

/** Health of an instance as traffic sees it: only `healthy` instances receive traffic. */
export type Health = "healthy" | "unhealthy" | "draining";
/** Latest result of an instance's health check; `none` means it has no check. */
export type CheckStatus = "passing" | "failing" | "none";
/** Whether a node's agent is heartbeating within its TTL. */
export type NodeStatus = "alive" | "stale";
/** Roles of API callers, from most to least powerful; `agent` acts only on its own node. */
export const ROLES = ["admin", "operator", "viewer", "agent"] as const;
/** One of {@link ROLES}. */
export type Role = typeof ROLES[number];

/** One port of a service. */
export interface ServicePort {
  port: number;
  protocol: Protocol;
}

/** A service: a name in a namespace that instances register under. */
export interface Service {
  namespace: string;
  name: string;
  ports: ServicePort[];
  labels: Labels;
  /** `registry` when agents created it (it goes away with its last instance); `api` when an operator wrote it. */
  managedBy: "registry" | "api";
  createdAt: string;
  revision: number;
}

/** A host running an agent. */
export interface MeshNode {
  name: string;
  hostname: string;
  addresses: string[];
  labels: Labels;
  agentVersion: string;
  heartbeatIntervalMs: number;
  /** Time without a heartbeat after which the node turns `stale` (3 intervals). */
  ttlMs: number;
  status: NodeStatus;
  draining: boolean;
  /** Id of the API token that registered the node; only that token's agent may act on it. */
  owner: string;
  registeredAt: string;
  lastHeartbeat: string;
  revision: number;
}

/** The latest health-check result the agent reported for an instance. */
export interface CheckState {
  status: CheckStatus;
  output: string;
  updatedAt: string;
}

/** One endpoint of a service on a node. Its id is `<local-id>@<node>`. */
export interface Instance {
  id: string;
  node: string;
  namespace: string;
  service: string;
  address: string;
  port: number;
  protocol: Protocol;
  labels: Labels;
  check: CheckState;
  draining: boolean;
  health: Health;
  revision: number;
}

/** Joins an instance's local id (unique on its node) and its node into the global id. */
export function instanceId(localId: string, node: string): string {
  return `${localId}@${node}`;
}

/** An IP literal (v4 or v6); xDS endpoints need literals, never host names. */
export const ipAddress = z.string().refine((s) => isIP(s) !== 0, {
  message: "Must be an IPv4 or IPv6 address literal",
});

/** A TCP port number. */
export const portNumber = z.number().int("Must be an integer").min(1, "Must be between 1 and 65535")
  .max(65535, "Must be between 1 and 65535");

/** The body of `PUT /v1/services/{namespace}/{name}`. */
export const servicePutSchema = z.strictObject({
  ports: z.array(z.strictObject({ port: portNumber, protocol: z.enum(PROTOCOLS) })).max(64)
    .default([]),
  labels: labelsSchema.default({}),
});
/** Parsed {@link servicePutSchema}. */
export type ServicePut = z.infer<typeof servicePutSchema>;

/** One instance as an agent registers it. */
export const instanceRegistrationSchema = z.strictObject({
  id: labelName,
  namespace: labelName.default("default"),
  service: labelName,
  address: ipAddress.optional(),
  port: portNumber,
  protocol: z.enum(PROTOCOLS).default("http"),
  labels: labelsSchema.default({}),
  check: z.enum(["passing", "failing", "none"]).default("none"),
  output: z.string().max(4096).default(""),
});

/** The body of `PUT /v1/nodes/{name}/registration`: the node's whole state, idempotent. */
export const nodeRegistrationSchema = z.strictObject({
  hostname: z.string().min(1).max(253),
  addresses: z.array(ipAddress).min(1, "At least one address is required").max(16),
  labels: labelsSchema.default({}),
  agentVersion: z.string().min(1).max(64),
  heartbeatInterval: durationSchema({ min: 100, max: 600_000 }),
  instances: z.array(instanceRegistrationSchema).max(256).superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((inst, i) => {
      if (seen.has(inst.id)) {
        ctx.addIssue({
          code: "custom",
          path: [i, "id"],
          message: `Duplicate instance id "${inst.id}": give each service entry a unique id`,
        });
      }
      seen.add(inst.id);
    });
  }),
});
/** Parsed {@link nodeRegistrationSchema}. */
export type NodeRegistration = z.infer<typeof nodeRegistrationSchema>;

/** The body of `POST /v1/nodes/{name}/heartbeat`: every check's latest status. */
export const heartbeatSchema = z.strictObject({
  checks: z.array(z.strictObject({
    id: labelName,
    status: z.enum(["passing", "failing", "none"]),
    output: z.string().max(4096).default(""),
  })).max(256).default([]),
});
/** Parsed {@link heartbeatSchema}. */
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** The body of `PATCH /v1/nodes/{name}` and `PATCH /v1/instances/{id}`. */
export const drainPatchSchema = z.strictObject({ draining: z.boolean() });

const apiTokenCreateSchema = z.strictObject({
  kind: z.literal("api"),
  role: z.enum(ROLES),
  node: subdomainName.optional(),
  description: z.string().max(256).default(""),
  ttl: durationSchema({ min: 1_000, max: 10 * 365 * 86_400_000 }).optional(),
}).refine((t) => t.node === undefined || t.role === "agent", {
  path: ["node"],
  message: "Only agent tokens are bound to a node",
});

/** Longest a join token may live: it is a bearer credential for a whole identity. */
export const MAX_JOIN_TOKEN_TTL_MS = 30 * 86_400_000;

const joinTokenCreateSchema = z.strictObject({
  kind: z.literal("join"),
  namespace: labelName.default("default"),
  serviceAccount: labelName,
  node: subdomainName.optional(),
  uses: z.number().int("Must be an integer").min(1, "Must be between 1 and 10000").max(
    10_000,
    "Must be between 1 and 10000",
  ).default(1),
  description: z.string().max(256).default(""),
  ttl: durationSchema({ min: 1_000, max: MAX_JOIN_TOKEN_TTL_MS }).default(3_600_000),
});

/**
 * The body of `POST /v1/tokens`: an API token (`kind: "api"`, the default)
 * for automation, or a join token (`kind: "join"`) that enrols hosts.
 */
export const tokenCreateSchema = z.preprocess(
  (value) =>
    value !== null && typeof value === "object" && !Array.isArray(value) && !("kind" in value)
      ? { ...value, kind: "api" }
      : value,
  z.discriminatedUnion("kind", [apiTokenCreateSchema, joinTokenCreateSchema]),
);
/** Parsed {@link tokenCreateSchema}. */
export type TokenCreate = z.infer<typeof tokenCreateSchema>;
/** A parsed API-token request. */
export type ApiTokenCreate = z.infer<typeof apiTokenCreateSchema>;
/** A parsed join-token request. */
export type JoinTokenCreate = z.infer<typeof joinTokenCreateSchema>;

/** An API token as stored and listed; the secret itself is shown once, at creation. */
export interface ApiToken {
  id: string;
  kind: "api";
  role: Role;
  /** For `agent` tokens: the only node this token may register, when set. */
  node: string | null;
  description: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

/**
 * A join token as stored and listed: who a host may become when it enrols
 * with it, and how often it may be used. The signed token itself is shown once.
 */
export interface JoinToken {
  id: string;
  kind: "join";
  namespace: string;
  serviceAccount: string;
  /** The only node name it may enrol, when set. */
  node: string | null;
  uses: number;
  used: number;
  description: string;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
}

/** Any token the server issues. */
export type Token = ApiToken | JoinToken;

/** How a certificate came to be issued. */
export type IssuanceKind = "enrol" | "renew";

/** The record of one issued workload certificate; the deny list is built from these. */
export interface CertificateRecord {
  /** Serial number, lower-case hex. */
  serial: string;
  node: string;
  /** SPIFFE ID in the URI SAN. */
  identity: string;
  /** The join token the node enrolled with; renewals inherit it, so revoking it reaches them. */
  tokenId: string | null;
  /** SHA-256 fingerprint (hex) of the root the certificate chains to. */
  root: string;
  kind: IssuanceKind;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  /** Set when a later certificate for the same node replaced this one. */
  supersededAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
}

export { labelName, subdomainName };

/** The body of `POST /v1/ca/enrol`: a join token, a PKCS#10 CSR (PEM) and the node name. */
export const enrolRequestSchema = z.strictObject({
  token: z.string().min(1).max(8192),
  csr: z.string().min(1).max(16_384),
  node: subdomainName,
});

/** The body of `POST /v1/ca/renew`: a new CSR, proven by the current certificate (mTLS). */
export const renewRequestSchema = z.strictObject({
  csr: z.string().min(1).max(16_384),
});
