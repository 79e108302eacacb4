import assert from "node:assert/strict";
import { z } from "zod";
import type { CreatedToken } from "../auth/tokens.ts";
import type { BundleRoot, GenerationStatus } from "../ca/authority.ts";
import type { IdentityService, IssuedIdentity } from "../ca/identity.ts";
import type { CreatedJoinToken } from "../ca/join_tokens.ts";
import type { FieldProblem, Problem } from "../core/errors.ts";
import type { AppliedPolicy, ServiceRef } from "../core/policy/match.ts";
import type { AnyPolicy } from "../core/policy/model.ts";
import { type Role, ROLES, serviceSchema, type Token } from "../core/model.ts";
import type { ApplyResult, HistoryEntry } from "../policy/service.ts";
import type { Page, Registry as RegistryType } from "../registry/registry.ts";
import type { AuditEntry } from "../store/store.ts";
import type { LeaderStatus } from "../store/leader_elector.ts";
import type { createApp } from "./app.ts";
import { DECLARED as ROUTES, samplePath, withTestApp } from "./_testing.ts";
import { auditEntrySchema } from "./audit.ts";
import {
  bundleRootSchema,
  generationStatusSchema,
  issuedIdentitySchema,
  rotationStatusSchema,
} from "./ca.ts";
import { registrationResultSchema } from "./nodes.ts";
import { rolesFor } from "./openapi.ts";
import { fieldProblemSchema, type JsonSchema, problemSchema } from "./operation.ts";
import { applyResultSchema, policyRevisionSchema, policySchema } from "./policy_schemas.ts";
import { appliedPolicySchema, serviceRefSchema } from "./proxies.ts";
import { namespaceList, serviceList } from "./services.ts";
import { openApiDocument, RESOURCES } from "./resources.ts";
import { leaderStatusSchema } from "./status.ts";
import { createdTokenSchema, tokenSchema } from "./tokens.ts";

type App = ReturnType<typeof createApp>;

function withApp(
  fn: (app: App, tokenFor: (role: Role) => Promise<string>) => Promise<void>,
): Promise<void> {
  return withTestApp(({ app, tokenFor }) => fn(app, tokenFor));
}

/** `GET /v1/services/:namespace/:name` as the document writes it: `get /v1/services/{namespace}/{name}`. */
function honoRoutes(app: App): Set<string> {
  return new Set(
    app.routes.filter((r) => r.method !== "ALL").map((r) =>
      `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`
    ),
  );
}

function documentedRoutes(): Set<string> {
  const doc = openApiDocument();
  return new Set(
    Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method} ${path}`)
    ),
  );
}

Deno.test("openApiDocument() describes every route createApp() registers, and no other", () =>
  withApp((app) => {
    const registered = honoRoutes(app);
    const documented = documentedRoutes();
    const undocumented = [...registered].filter((r) => !documented.has(r));
    const unregistered = [...documented].filter((r) => !registered.has(r));
    assert.deepEqual(undocumented, [], "Routes registered without a declaration");
    assert.deepEqual(unregistered, [], "Declared operations that createApp() does not register");
    return Promise.resolve();
  }));

Deno.test("openApiDocument() is OpenAPI 3.1 whose every $ref resolves", () => {
  const doc = openApiDocument();
  assert.equal(doc.openapi, "3.1.0");
  assert.equal(doc.info.title, "Ironmesh REST API");
  assert.ok(doc.info.version);
  assert.ok(Object.keys(doc.paths).length >= ROUTES.length / 2);
  assert.equal(doc.components.securitySchemes.mutualTLS?.type, "mutualTLS");
  assert.equal(doc.components.securitySchemes.bearerAuth?.scheme, "bearer");
  const refs: string[] = [];
  (function walk(node: unknown): void {
    if (Array.isArray(node)) node.forEach(walk);
    else if (typeof node === "object" && node !== null) {
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref") refs.push(value as string);
        else walk(value);
      }
    }
  })(doc);
  assert.ok(refs.length > 50);
  for (const ref of refs) {
    assert.match(ref, /^#\//, `${ref} is not a local reference`);
    let target: unknown = doc;
    for (const part of ref.slice(2).split("/")) {
      target = (target as Record<string, unknown> | undefined)?.[part.replaceAll("~1", "/")];
    }
    assert.ok(target !== undefined, `${ref} does not resolve`);
  }
  const ids = new Set<string>();
  const tags = new Set(doc.tags.map((t) => t.name));
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method.toUpperCase()} ${path}`;
      assert.ok(!ids.has(op.operationId), `${where}: duplicate operationId ${op.operationId}`);
      ids.add(op.operationId);
      assert.ok(op.tags.every((t) => tags.has(t)), `${where}: undeclared tag`);
      assert.ok(Object.keys(op.responses).some((s) => /^[23]/.test(s)), `${where}: no success`);
      for (const requirement of op.security) {
        for (const scheme of Object.keys(requirement)) {
          assert.ok(scheme in doc.components.securitySchemes, `${where}: unknown ${scheme}`);
        }
      }
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        const param = op.parameters?.find((p) => p.in === "path" && p.name === name);
        assert.ok(param?.required, `${where}: path parameter "${name}" is not declared required`);
      }
      if (op["x-ironmesh-access"] !== "public") {
        assert.ok(op.responses["401"], `${where}: an authenticated route must document 401`);
      }
    }
  }
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(doc)));
});

Deno.test("request body schemas refuse unknown fields exactly where the zod schema does", () => {
  const schemas = openApiDocument().components.schemas;
  const samples: Record<string, unknown> = {
    ServicePut: {},
    NodeRegistration: {},
    InstanceRegistration: {},
    Heartbeat: {},
    DrainPatch: {},
    TokenCreate: {},
    EnrolRequest: {},
    RenewRequest: {},
    PolicyDocument: { kind: "MeshConfig", metadata: { name: "mesh" }, spec: {} },
    PolicyInputMetadata: {},
    PolicyBatch: {},
    PolicyPut: {},
    PolicyRollback: {},
  };
  const requests = Object.assign({}, ...RESOURCES.map((r) => r.declared.requests ?? {}));
  assert.deepEqual(Object.keys(requests).sort(), Object.keys(samples).sort());
  for (const [name, zodSchema] of Object.entries(requests as Record<string, z.ZodType>)) {
    const json = schemas[name]!;
    const objects = json.oneOf ? json.oneOf as JsonSchema[] : [json];
    const sample = samples[name] as Record<string, unknown>;
    const result = zodSchema.safeParse({ ...sample, unknownField: 1 });
    const strict = !result.success &&
      result.error.issues.some((i) => i.code === "unrecognized_keys");
    for (const object of objects) {
      assert.equal(object.additionalProperties === false, strict, `${name}: additionalProperties`);
    }
    assert.ok(strict, `${name}: request bodies in this API are strict`);
  }
  const ports = schemas.ServicePut!.properties!.ports as JsonSchema;
  assert.equal((ports.items as JsonSchema).additionalProperties, false);
  // Input side: a duration is what the client sends, text.
  const registration = schemas.NodeRegistration!.properties!;
  assert.equal((registration.heartbeatInterval as JsonSchema).type, "string");
  // `kind` is filled in before validation, so a client may leave it out.
  const api = (schemas.TokenCreate!.oneOf as JsonSchema[])[0]!;
  assert.deepEqual(api.required, ["role"]);
});

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true
  : false;
type Out<S extends z.ZodType> = z.output<S>;

Deno.test("response schemas have exactly the types the handlers return", () => {
  // Checked by the compiler: a `false` here fails `deno check`.
  const same: true[] = [
    true satisfies Equal<Out<typeof issuedIdentitySchema>, IssuedIdentity>,
    true satisfies Equal<Out<typeof bundleRootSchema>, BundleRoot>,
    true satisfies Equal<Out<typeof generationStatusSchema>, GenerationStatus>,
    true satisfies Equal<
      Out<typeof rotationStatusSchema>,
      Awaited<ReturnType<IdentityService["rotationStatus"]>>
    >,
    true satisfies Equal<Out<typeof leaderStatusSchema>, LeaderStatus>,
    true satisfies Equal<Out<typeof problemSchema>, Problem>,
    true satisfies Equal<Out<typeof fieldProblemSchema>, FieldProblem>,
    true satisfies Equal<Out<typeof tokenSchema>, Token>,
    true satisfies Equal<Out<typeof createdTokenSchema>, CreatedToken | CreatedJoinToken>,
    true satisfies Equal<
      Out<typeof registrationResultSchema>,
      Awaited<ReturnType<RegistryType["register"]>>
    >,
    true satisfies Equal<
      Out<typeof namespaceList>["items"],
      Awaited<ReturnType<RegistryType["namespaces"]>>
    >,
    true satisfies Equal<
      Out<typeof serviceList>["items"],
      Page<z.output<typeof serviceSchema>>["items"]
    >,
    true satisfies Equal<Out<typeof policySchema>, AnyPolicy>,
    true satisfies Equal<Out<typeof applyResultSchema>, ApplyResult>,
    true satisfies Equal<Out<typeof policyRevisionSchema>, HistoryEntry>,
    true satisfies Equal<Out<typeof auditEntrySchema>, AuditEntry>,
    true satisfies Equal<Out<typeof appliedPolicySchema>, AppliedPolicy>,
    true satisfies Equal<Out<typeof serviceRefSchema>, ServiceRef>,
  ];
  assert.ok(same.every((s) => s));
});

Deno.test("each route's documented roles are the ones authorize() lets through", () =>
  withApp(async (app, tokenFor) => {
    const tokens = Object.fromEntries(
      await Promise.all(ROLES.map(async (role) => [role, await tokenFor(role)])),
    ) as Record<Role, string>;
    for (const route of ROUTES) {
      const path = samplePath(route);
      const where = `${route.method.toUpperCase()} ${route.path}`;
      if (route.access === "public") {
        const res = await app.request(path, { method: route.method.toUpperCase() });
        await res.body?.cancel();
        assert.ok(
          res.status !== 401 && res.status !== 403,
          `${where}: ${res.status} without a token`,
        );
        continue;
      }
      const allowed = rolesFor(route.access);
      for (const role of ROLES) {
        const res = await app.request(path, {
          method: route.method.toUpperCase(),
          headers: { authorization: `Bearer ${tokens[role]}`, "content-type": "application/json" },
          ...(route.body ? { body: "{}" } : {}),
        });
        // Ends an event stream at once; other bodies are read to the end.
        await res.body?.cancel();
        assert.equal(
          res.status === 403,
          !allowed.includes(role),
          `${where}: role ${role} got ${res.status}; documented roles: ${allowed.join(", ")}`,
        );
      }
    }
  }));

Deno.test("each list documents exactly the query parameters it accepts", () =>
  withApp(async (app, tokenFor) => {
    const token = await tokenFor("viewer");
    const samples: Record<string, string> = {
      limit: "10",
      cursor: "YQ",
      labelSelector: "a=b",
      index: "0&wait=1ms",
      wait: "1ms",
      namespace: "default",
      service: "web",
      node: "vm-1",
      health: "healthy",
      status: "alive",
      kind: "trafficroute",
    };
    const lists = ROUTES.filter((r) => r.params?.some((p) => p.name === "limit"));
    assert.deepEqual(lists.map((r) => r.path), [
      "/v1/services",
      "/v1/nodes",
      "/v1/instances",
      "/v1/policies",
      "/v1/policies/{kind}",
      "/v1/policies/{kind}/{namespace}",
      "/v1/audit",
    ]);
    for (const route of lists) {
      const documented = new Set(route.params!.filter((p) => p.in === "query").map((p) => p.name));
      const path = route.path.replace("{kind}", "trafficroute").replace("{namespace}", "default");
      for (const [name, value] of Object.entries(samples)) {
        const res = await app.request(`${path}?${name}=${value}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        await res.body?.cancel();
        assert.equal(
          res.status,
          documented.has(name) ? 200 : 422,
          `${route.path}?${name}: ${res.status}`,
        );
      }
    }
  }));

Deno.test("GET /openapi.json and GET /docs answer without credentials", () =>
  withApp(async (app) => {
    const res = await app.request("/openapi.json");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), JSON.parse(JSON.stringify(openApiDocument())));

    const page = await app.request("/docs");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    for (const route of ROUTES) {
      assert.ok(html.includes(`id="op-${route.operationId}"`), `${route.operationId} is missing`);
    }
    for (const name of Object.keys(openApiDocument().components.schemas)) {
      assert.ok(html.includes(`id="schema-${name}"`), `schema ${name} is missing`);
    }
    // Self-contained: nothing is fetched from elsewhere.
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|@import|url\(/i);
    assert.match(html, /admin, operator/);
  }));
