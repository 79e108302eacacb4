/**
 * How a route of the REST API is declared. Each resource's file declares its
 * operations (method, path, who may call, parameters, body, answers) as
 * data, and registers each handler *through* its declaration with
 * {@link resourceApps}: the route's method and path, its authentication,
 * authorization and body limit, and the schema its body is read with all
 * come from the declaration, and the OpenAPI document (`openapi.ts`) is built from the same
 * declarations. A route cannot exist without its documentation, nor the
 * other way round (`openapi_test.ts` checks both directions).
 *
 * We do not use `@hono/zod-openapi` for this: its `openapi()` installs its
 * own validators for every declared part (a media-type gate answering a bare
 * 415, `@hono/zod-validator` answering 400 for bad JSON), which would change
 * the problem documents this API promises, and its schema converter is not
 * zod's own `z.toJSONSchema`: converting our schemas with it told clients
 * that `kind` of `POST /v1/tokens` is required, where the server fills it in.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { authorize, type Permission, type Principal } from "../auth/tokens.ts";
import type { CertificatePrincipal } from "../ca/identity.ts";
import { ForbiddenError } from "../core/errors.ts";
import { healthSchema, nodeStatusSchema } from "../core/model.ts";
import { labelName, nodeName } from "../core/names.ts";

/** A caller: a token's principal, plus the mesh certificate it proved over mTLS, if any. */
export type Caller = Principal & { certificate?: CertificatePrincipal };

/** The Hono environment of every route: who is calling, once authenticated. */
export type ApiEnv = { Variables: { principal: Caller } };

/** A JSON Schema as zod emits it. */
export type JsonSchema = z.core.JSONSchema.BaseSchema;

/**
 * Who may call a route: a permission that `authorize()` checks (the roles
 * holding it are derived from `authorize` itself), anyone, or only a caller
 * proving a mesh certificate over mutual TLS. The route's middleware checks
 * it ({@link resourceApps}); handlers never check it again.
 */
export type Access = Permission | "public" | "mtls";

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

/** A path parameter (always required). */
export function pathParam(name: string, schema: z.ZodType, description: string): Parameter {
  return { name, in: "path", description, schema, required: true };
}

/** An optional query parameter. */
export function queryParam(name: string, schema: z.ZodType, description: string): Parameter {
  return { name, in: "query", description, schema };
}

/** An optional request header. */
export function headerParam(name: string, schema: z.ZodType, description: string): Parameter {
  return { name, in: "header", description, schema };
}

/** The response headers operations send, described under `components/headers`. */
export type HeaderName =
  | "ETag"
  | "X-Ironmesh-Index"
  | "Retry-After"
  | "WWW-Authenticate"
  | "Content-Disposition"
  | "Warning"
  | "Location"
  | "Content-Security-Policy";

/** The problem statuses an operation may document. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 412 | 413 | 415 | 422 | 429 | 503;

/** A response body that is not a named JSON schema (text, a stream, a file, a union). */
export interface RawBody {
  mediaType: string;
  schema: JsonSchema;
}

/** One successful response of an operation. */
export interface Reply {
  status: 200 | 201 | 202 | 204 | 302;
  description: string;
  /** A schema of the resource's `responses` (sent as JSON) or a raw body; none for 204. */
  body?: z.ZodType | RawBody | readonly (z.ZodType | RawBody)[];
  headers?: readonly HeaderName[];
}

/** One operation of the REST API. */
export interface Operation {
  method: "get" | "put" | "post" | "patch" | "delete";
  /** The OpenAPI path under the resource's prefix (`{param}`), `""` for the prefix itself. */
  path: string;
  operationId: string;
  tag: Tag;
  summary: string;
  description?: string;
  /** Who may call; anything but `public` is authenticated and authorized before the handler runs. */
  access: Access;
  /** Path parameters first, in path order; then query and header parameters. */
  params?: readonly Parameter[];
  /**
   * The schema of the body: the handler reads the body with it (`body()`);
   * for policy writes, which the policy service validates, the schema of
   * what it accepts. One of the resource's `requests`.
   */
  body?: z.ZodType;
  replies: readonly Reply[];
  /**
   * Why this operation answers these problem statuses. The document adds the
   * ones every such operation shares (401 and 503 behind authentication, 403
   * for restricted roles, 400/413/415/422 with a body, 422 with parameters,
   * 412 with `If-Match`), each with this text when given here.
   */
  errors?: Partial<Record<ErrorStatus, string>>;
}

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
  {
    name: "Install",
    description:
      "What a new host downloads to install Ironmesh from this server: no credentials needed",
  },
  { name: "xDS", description: "Connected proxies: sync state and what they were sent" },
  {
    name: "Policies",
    description:
      "TrafficRoute, DestinationPolicy, AuthorizationPolicy, RateLimit and MeshConfig: atomic batches, dry runs, history, rollback, and which policies apply to a proxy",
  },
  { name: "Audit", description: "Every policy write, refused ones included" },
  { name: "Documentation", description: "This document, as JSON and as a web page" },
  {
    name: "Dashboard",
    description: "The web dashboard at `/ui/`: a page and its assets, all served from the program",
  },
] as const;

/** One of {@link TAGS}. */
export type Tag = typeof TAGS[number]["name"];

/** One resource of the REST API: its operations and the schemas they name. */
export interface Resource<Ops extends Record<string, Operation> = Record<string, Operation>> {
  /** Where its sub-app is mounted, e.g. `/v1/services`. */
  prefix: string;
  /** Its operations by `operationId`, in the order the docs list them. */
  operations: Ops;
  /** Response schemas (converted on their output side) by their name in `components/schemas`. */
  responses?: Record<string, z.ZodType>;
  /** Request body schemas (input side), by name. */
  requests?: Record<string, z.ZodType>;
  /**
   * Schemas that are read back exactly as written (policy specs), converted
   * on both sides and documented once, on the input side, with a description.
   */
  shared?: Record<string, { schema: z.ZodType; description: string }>;
}

/** Declares a resource; `operations` are keyed by their `operationId`. */
export function resource<const Ops extends Record<string, Omit<Operation, "operationId">>>(
  declared: Omit<Resource, "operations"> & { operations: Ops },
): Resource<{ [K in keyof Ops]: Ops[K] & { operationId: K & string } }> {
  const operations = Object.fromEntries(
    Object.entries(declared.operations).map(([id, op]) => [id, { ...op, operationId: id }]),
  );
  return { ...declared, operations } as Resource<
    { [K in keyof Ops]: Ops[K] & { operationId: K & string } }
  >;
}

/** The middleware {@link resourceApps} puts in front of handlers, as their declarations ask. */
export interface RouteMiddleware {
  /** Refuses a body over the limit (413); runs first, before authentication. */
  limitBody: MiddlewareHandler<ApiEnv>;
  /** Sets `principal` from the bearer token or the mTLS certificate, or refuses (401). */
  authenticate: MiddlewareHandler<ApiEnv>;
}

/** A route handler of the API. */
export type ApiHandler = (c: Context<ApiEnv>) => Response | Promise<Response>;

/** Options of a {@link ResourceApp}. */
export interface ResourceAppOptions {
  /**
   * Called when a caller is refused by an operation's declared access
   * (before the 403 is sent), e.g. to audit a refused write. Default: nothing.
   */
  refused?: (c: Context<ApiEnv>, op: Operation, error: ForbiddenError) => void | Promise<void>;
}

/** Builds the sub-app of a resource from its handlers, one per declared operation. */
export type ResourceApp = <Ops extends Record<string, Operation>>(
  declared: Resource<Ops>,
  handlers: { [K in keyof Ops]: ApiHandler },
  options?: ResourceAppOptions,
) => Hono<ApiEnv>;

/** Throws `ForbiddenError` unless `caller` may call a route of `access` (never `public`). */
export function admit(caller: Caller, access: Exclude<Access, "public">): void {
  if (access !== "mtls") return authorize(caller, access);
  if (!caller.certificate) {
    throw new ForbiddenError(
      "This is proven by the caller's current certificate: call over mTLS with it, not with a token",
    );
  }
}

/** The middleware that admits only the callers `op` declares (403 for the others). */
function authorization(op: Operation, options: ResourceAppOptions): MiddlewareHandler<ApiEnv> {
  const access = op.access;
  if (access === "public") throw new TypeError(`${op.operationId} is public: nothing to authorize`);
  return async function authorizeRoute(c, next) {
    try {
      admit(c.get("principal"), access);
    } catch (error) {
      if (error instanceof ForbiddenError) await options.refused?.(c, op, error);
      throw error;
    }
    await next();
  };
}

/**
 * The builder of every resource's sub-app behind `middleware`: Hono routes
 * each handler at its operation's method and path, behind the body limit
 * (any route that is not public, or that takes a body), authentication and
 * authorization by the declared access (any route that is not public).
 */
export function resourceApps(middleware: RouteMiddleware): ResourceApp {
  return (declared, handlers, options = {}) => {
    const app = new Hono<ApiEnv>();
    for (const [id, op] of Object.entries(declared.operations)) {
      const chain: MiddlewareHandler<ApiEnv>[] = [];
      if (op.access !== "public" || op.body) chain.push(middleware.limitBody);
      if (op.access !== "public") chain.push(middleware.authenticate, authorization(op, options));
      const path = op.path.replace(/\{(\w+)\}/g, ":$1") || "/";
      const handler = handlers[id] as MiddlewareHandler<ApiEnv>;
      // Hono's typed overloads take a fixed number of handlers; the chain here varies.
      (app.on as (method: string, path: string, ...h: MiddlewareHandler<ApiEnv>[]) => unknown)
        .call(app, op.method.toUpperCase(), path, ...chain, handler);
    }
    return app;
  };
}

// ---------------------------------------------------------------------------
// What several resources share.
// ---------------------------------------------------------------------------

/** One problem with one field of an input (`FieldProblem` of `core/errors.ts`). */
export const fieldProblemSchema = z.object({
  pointer: z.string().describe(
    'JSON pointer to the offending field, e.g. `/services/0/port`; `""` is the whole input',
  ),
  message: z.string().describe("What is wrong, in a sentence without a final period"),
  in: z.enum(["query", "path", "header"]).exactOptional().describe(
    "Where the field is; absent means the body",
  ),
}).describe("One problem with one field of an input, located by a JSON pointer (RFC 6901)");

/** The problem document of every error (`Problem` of `core/errors.ts`). */
export const problemSchema = z.object({
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

/** An ISO 8601 timestamp, as every answer writes times. */
export const timestamp = z.iso.datetime();

/** Wraps an item schema in the list envelope every paged list answers with. */
export function listOf<T extends z.ZodType>(item: T, what: string) {
  return z.object({
    items: z.array(item),
    next: z.string().nullable().describe(
      "Cursor of the next page (pass it as `cursor`), or `null` on the last page",
    ),
  }).describe(`A page of ${what}`);
}

/** A list that is always one page: `next` is always `null`. */
export function onePageOf<T extends z.ZodType>(item: T, what: string) {
  return z.object({
    items: z.array(item),
    next: z.null().describe("Always `null`: the whole list is one page"),
  }).describe(`Every ${what}, in one page`);
}

/** A JSON body given as a JSON Schema. */
export function json(schema: JsonSchema = {}): RawBody {
  return { mediaType: "application/json", schema };
}

/** A JSON body that is one of several named response schemas, told apart by their fields. */
export function oneOf(...names: string[]): RawBody {
  return json({ oneOf: names.map((name) => ({ $ref: `#/components/schemas/${name}` })) });
}

/** The query parameters of the lists (`readListQuery` in `request.ts`). */
export const QUERY = {
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
  node: queryParam("node", nodeName, "Only instances on this node"),
  health: queryParam("health", healthSchema, "Only instances of this health"),
  status: queryParam("status", nodeStatusSchema, "Only nodes of this status"),
};

/** Names of the list filters a list may accept besides the common paging ones. */
type ListFilter = "namespace" | "service" | "node" | "health" | "status";

/** The query of a list that accepts `filters` (the `allowed` of `readListQuery`). */
export function listQuery(...filters: ListFilter[]): Parameter[] {
  return [
    QUERY.limit,
    QUERY.cursor,
    ...filters.map((f) => QUERY[f]),
    QUERY.labelSelector,
    QUERY.index,
    QUERY.wait,
  ];
}

/** The names of the filters an operation's list accepts, for `readListQuery`. */
export function filtersOf(op: Operation): string[] {
  const common: readonly Parameter[] = [
    QUERY.limit,
    QUERY.cursor,
    QUERY.labelSelector,
    QUERY.index,
    QUERY.wait,
  ];
  return (op.params ?? []).filter((p) => p.in === "query" && !common.includes(p)).map((p) =>
    p.name
  );
}

/** `If-Match`: write only over what was read. */
export const IF_MATCH = headerParam(
  "If-Match",
  z.string(),
  'Write only if the object is still at this ETag (e.g. `"42"`); otherwise 412',
);

/** `If-None-Match: *`: create only. */
export const IF_NONE_MATCH = headerParam(
  "If-None-Match",
  z.literal("*"),
  "`*`: create only; 412 if the object exists",
);
