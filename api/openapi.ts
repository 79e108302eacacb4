/**
 * Builds the REST API's OpenAPI 3.1 document from the operations each
 * resource declares (`operation.ts`): the routes are registered from the
 * same declarations, so neither can grow without the other. Request bodies
 * are the very zod schemas the handlers read bodies with, converted on their
 * input side (what a client sends: durations as text, defaults optional);
 * responses are converted on their output side, with zod's own
 * `z.toJSONSchema`.
 */
import { z } from "zod";
import { authorize } from "../auth/tokens.ts";
import { ROLES } from "../core/model.ts";
import { VERSION } from "../core/version.ts";
import {
  type Access,
  type ErrorStatus,
  fieldProblemSchema,
  type HeaderName,
  type JsonSchema,
  type Operation,
  problemSchema,
  type RawBody,
  type Reply,
  type Resource,
  TAGS,
} from "./operation.ts";

export type { JsonSchema } from "./operation.ts";

/** Response headers, under `components/headers`. */
const HEADERS: Record<HeaderName, { description: string; schema: JsonSchema }> = {
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
  Location: {
    description: "Where to go instead",
    schema: { type: "string" },
  },
  "Content-Security-Policy": {
    description:
      "What the page may load and run: only the server's own scripts, styles and API, nothing inline",
    schema: { type: "string" },
  },
  Warning: {
    description:
      'One per warning the write passed with, as Kubernetes sends them: `299 - "<pointer>: <message>"`',
    schema: { type: "string" },
  },
};

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
 * Converts named schemas on one side with a registry, so a named schema
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
  if (!name) throw new Error(`Cannot document ${what}: its schema is not named by its resource`);
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

function replyContent(
  body: NonNullable<Reply["body"]>,
  responses: Record<string, z.ZodType>,
  what: string,
) {
  const bodies = Array.isArray(body) ? body : [body];
  const content: Record<string, { schema: JsonSchema }> = {};
  for (const b of bodies as (z.ZodType | RawBody)[]) {
    if (b instanceof z.ZodType) {
      content["application/json"] = {
        schema: { $ref: `${SCHEMA_REF}${nameOf(b, responses, what)}` },
      };
    } else {
      content[b.mediaType] = { schema: b.schema };
    }
  }
  return content;
}

/** The problem statuses of a route: the ones it shares with its kind, then its own. */
function errorsOf(route: Operation): Partial<Record<ErrorStatus, string>> {
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

function operation(
  route: DeclaredOperation,
  named: { responses: Record<string, z.ZodType>; requests: Record<string, z.ZodType> },
): OperationObject {
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
                $ref: `${SCHEMA_REF}${nameOf(route.body, named.requests, `the body of ${what}`)}`,
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
      ...(reply.body ? { content: replyContent(reply.body, named.responses, what) } : {}),
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

/** An operation with its full path: its resource's prefix and its own path joined. */
export type DeclaredOperation = Operation & { path: string };

/** Every operation of `resources`, in order, with its full OpenAPI path. */
export function declaredOperations(resources: readonly Resource[]): DeclaredOperation[] {
  return resources.flatMap((r) =>
    Object.values(r.operations).map((op) => ({
      ...op,
      path: r.prefix.replace(/\/$/, "") + op.path || "/",
    }))
  );
}

/**
 * The document of `resources`: their operations in order, and every schema
 * they name, converted once per side with a registry, so a named schema
 * nested in another (a `Service` in a `ServiceList`) becomes a `$ref`.
 */
export function buildOpenApiDocument(resources: readonly Resource[]): OpenApiDocument {
  const named = {
    responses: { Problem: problemSchema, FieldProblem: fieldProblemSchema } as Record<
      string,
      z.ZodType
    >,
    requests: {} as Record<string, z.ZodType>,
  };
  const shared: Record<string, { schema: z.ZodType; description: string }> = {};
  for (const r of resources) {
    Object.assign(named.responses, r.responses);
    Object.assign(named.requests, r.requests);
    Object.assign(shared, r.shared);
  }
  const sharedSchemas = Object.fromEntries(
    Object.entries(shared).map(([name, { schema }]) => [name, schema]),
  );
  const responses = convert({ ...named.responses, ...sharedSchemas }, "output");
  const requests = convert({ ...named.requests, ...sharedSchemas }, "input");
  if (requests.TokenCreate) kindDefaultsToApi(requests.TokenCreate);
  for (const [name, { description }] of Object.entries(shared)) {
    requests[name]!.description ??= description;
  }
  const paths: OpenApiDocument["paths"] = {};
  for (const route of declaredOperations(resources)) {
    const { path } = route;
    const declared = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const params = (route.params ?? []).filter((p) => p.in === "path").map((p) => p.name);
    if (declared.join() !== params.join()) {
      throw new Error(
        `Cannot document ${route.method.toUpperCase()} ${path}: path parameters are ${
          JSON.stringify(params)
        }, the path has ${JSON.stringify(declared)}`,
      );
    }
    (paths[path] ??= {})[route.method] = operation(route, named);
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
