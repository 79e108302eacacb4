import assert from "node:assert/strict";
import type { FieldProblem } from "../errors.ts";
import { type AnyPolicy, API_VERSION, type PolicyDraft, policySet } from "./model.ts";
import { checkPolicy, type KnownService, parsePolicy, type ValidationContext } from "./validate.ts";
import { doc, INVALID, notRegistered, p, route } from "./_testing.ts";

/** Parses a document that must be valid. */
function draftOf(input: unknown, defaultNamespace?: string): PolicyDraft {
  const result = parsePolicy(input, defaultNamespace);
  assert.deepEqual(result.problems, []);
  assert.ok(result.draft);
  return result.draft;
}

/** Stores drafts as the store would, for a {@link ValidationContext}. */
function stored(...drafts: PolicyDraft[]): AnyPolicy[] {
  return drafts.map((d) =>
    ({
      apiVersion: API_VERSION,
      ...d,
      metadata: {
        ...d.metadata,
        revision: 1,
        createdAt: "2025-01-01T00:00:00.000Z",
        updatedAt: "2025-01-01T00:00:00.000Z",
        updatedBy: "test",
      },
    }) as AnyPolicy
  );
}

const HTTP_ECHO: KnownService = {
  ports: [{ port: 8080, protocol: "http" }, { port: 9090, protocol: "grpc" }],
};

function context(
  services: Record<string, KnownService>,
  ...policies: PolicyDraft[]
): ValidationContext {
  return { services: new Map(Object.entries(services)), policies: policySet(stored(...policies)) };
}

// Complete, realistic examples of every kind.

const TRAFFIC_ROUTE = {
  apiVersion: API_VERSION,
  kind: "TrafficRoute",
  metadata: { name: "echo", namespace: "shop", labels: { team: "payments" } },
  spec: {
    service: "echo",
    port: 8080,
    rules: [
      {
        name: "old-api",
        match: { path: { prefix: "/v1/" } },
        redirect: { path: "/v2/", code: 308 },
      },
      {
        name: "canary-testers",
        match: {
          path: { regex: "^/v2/(orders|carts)/[0-9]+$" },
          methods: ["GET", "HEAD"],
          headers: { "x-canary": { exact: "1" }, "x-debug": { present: true } },
          query: { lang: { prefix: "en" } },
        },
        split: [{ subset: "v2", weight: 100 }],
        timeout: "2s",
        retries: { attempts: 2, perTryTimeout: "500ms", on: ["5xx", "reset"] },
      },
      {
        name: "docs",
        match: [
          { path: { prefix: "/docs/" } },
          { path: { exact: "/help" }, headers: { "x-docs": { present: true } } },
        ],
        split: [{ subset: "v1", weight: 100 }],
      },
      {
        name: "default",
        split: [{ subset: "v1", weight: 90 }, { subset: "v2", weight: 10 }],
        mirror: { service: "echo-shadow", namespace: "qa", percent: 5 },
        fault: { delay: { fixed: "100ms", percent: 1 }, abort: { httpStatus: 503, percent: 0.1 } },
        requestHeaders: { add: { "x-route": "default" }, remove: ["x-internal"] },
        responseHeaders: { add: { "cache-control": "no-store" } },
        rewrite: { prefix: "/", host: "echo.internal" },
      },
    ],
  },
};

const DESTINATION_POLICY = {
  kind: "DestinationPolicy",
  metadata: { name: "echo", namespace: "shop" },
  spec: {
    service: "echo",
    loadBalancer: { algorithm: "RING_HASH", hash: { header: "x-user" }, minRingSize: 1024 },
    connectionPool: { maxConnections: 100, maxRequests: 1000, connectTimeout: "1s" },
    outlierDetection: { consecutiveErrors: 5, interval: "10s", baseEjectionTime: "30s" },
    locality: { enabled: true, failover: [{ from: "eu-west", to: "eu-central" }] },
    subsets: [
      { name: "v1", labels: { version: "v1" } },
      {
        name: "v2",
        labels: { version: "v2" },
        loadBalancer: { algorithm: "MAGLEV", hash: { cookie: { name: "sticky", ttl: "1h" } } },
      },
    ],
    ports: [{ port: 9090, loadBalancer: { algorithm: "LEAST_REQUEST" } }],
  },
};

const AUTHORIZATION_POLICY = {
  kind: "AuthorizationPolicy",
  metadata: { name: "echo-readers", namespace: "shop" },
  spec: {
    service: "echo",
    action: "ALLOW",
    rules: [
      {
        from: [
          { identities: ["spiffe://mesh.local/ns/shop/sa/frontend"] },
          { namespaces: ["ops"], ipBlocks: ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"] },
        ],
        to: [{ ports: [8080], methods: ["GET"], paths: ["/health", "/api/*", "*.css", "*"] }],
      },
      {
        from: [{
          namespaces: ["shop"],
          notIdentities: ["spiffe://mesh.local/ns/shop/sa/intern"],
          notNamespaces: ["shop-sandbox"],
          notIpBlocks: ["10.66.0.0/16", "fd00::1"],
        }],
        to: [{ notPorts: [9090], notMethods: ["DELETE"], notPaths: ["/admin/*", "*.bak"] }],
      },
    ],
  },
};

const RATE_LIMIT = {
  kind: "RateLimit",
  metadata: { name: "echo", namespace: "shop" },
  spec: {
    service: "echo",
    limit: { requests: 100, per: "1s", burst: 200 },
    routes: [
      {
        name: "login",
        match: { path: { exact: "/login" }, methods: ["POST"] },
        limit: { requests: 5, per: "1m" },
      },
      { match: { headers: { "x-plan": { exact: "free" } } }, limit: { requests: 10, per: "1s" } },
    ],
    response: { status: 429, headers: { "retry-after": "1" } },
  },
};

const MESH_CONFIG = {
  kind: "MeshConfig",
  metadata: { name: "mesh", namespace: "" },
  spec: {
    mtls: { mode: "STRICT" },
    defaults: { timeout: "15s", retries: { attempts: 1, on: ["unavailable"] } },
    authorization: { default: "DENY" },
    certificates: { ttl: "24h" },
    push: { debounce: "100ms", maxDelay: "1s" },
  },
};

Deno.test("parsePolicy() accepts a complete policy of every kind", () => {
  for (const input of [TRAFFIC_ROUTE, DESTINATION_POLICY, AUTHORIZATION_POLICY, RATE_LIMIT]) {
    const draft = draftOf(input);
    assert.equal(draft.kind, input.kind);
    assert.deepEqual(draft.spec, input.spec);
  }
  assert.deepEqual(draftOf(MESH_CONFIG), {
    kind: "MeshConfig",
    metadata: { name: "mesh", namespace: "", labels: {} },
    spec: MESH_CONFIG.spec,
  });
});

Deno.test("parsePolicy() fills in the namespace and labels, and drops read-only metadata", () => {
  const input = {
    kind: "RateLimit",
    metadata: { name: "echo", revision: 3, updatedBy: "tok-1" },
    spec: { service: "echo", limit: { requests: 1, per: "1s" } },
  };
  assert.deepEqual(draftOf(input, "shop"), {
    kind: "RateLimit",
    metadata: { name: "echo", namespace: "shop", labels: {} },
    spec: input.spec,
  });
  assert.equal(draftOf(input).metadata.namespace, "default");
  assert.equal(draftOf({ ...MESH_CONFIG, metadata: { name: "mesh" } }).metadata.namespace, "");
});

Deno.test("parsePolicy() reports every problem of an invalid policy at its JSON pointer", async (t) => {
  for (const row of INVALID) {
    await t.step(row.name, () => {
      const result = parsePolicy(row.input);
      assert.equal(result.draft, null);
      assert.deepEqual(result.problems, row.problems);
    });
  }
});

// Checks against the rest of the mesh.

const ECHO_DP = doc("DestinationPolicy", {
  service: "echo",
  subsets: [{ name: "v1", labels: { version: "v1" } }, { name: "v2", labels: { version: "v2" } }],
});

const CHECKS: {
  name: string;
  input: unknown;
  services?: Record<string, KnownService>;
  /** Other policies in the set; the input is added to it. */
  others?: unknown[];
  errors?: FieldProblem[];
  warnings?: FieldProblem[];
}[] = [
  {
    name: "a service that has not registered yet is a warning",
    input: route({ split: [{ weight: 100 }] }),
    services: {},
    warnings: [p("/spec/service", notRegistered("echo"))],
  },
  {
    name: "split and mirror to unknown services of other namespaces",
    input: route({
      split: [{ weight: 50 }, { service: "echo-v2", weight: 50 }],
      mirror: { namespace: "qa" },
    }),
    warnings: [
      p("/spec/rules/0/split/1/service", notRegistered("echo-v2")),
      p(
        "/spec/rules/0/mirror/namespace",
        'Service "echo" does not exist in namespace "qa" yet; the policy applies once it registers',
      ),
    ],
  },
  {
    name: "a subset of a service without DestinationPolicy",
    input: route({ split: [{ subset: "v1", weight: 100 }] }),
    errors: [
      p(
        "/spec/rules/0/split/0/subset",
        'Subset "v1" of service "echo" in namespace "default" is not defined: the service has no DestinationPolicy',
      ),
    ],
  },
  {
    name: "a subset its DestinationPolicy does not define",
    input: route({
      match: { headers: { "x-beta": { present: true } } },
      split: [{ subset: "v1", weight: 90 }, { subset: "v3", weight: 10 }],
    }, {
      mirror: { subset: "canary" },
    }),
    others: [ECHO_DP],
    errors: [
      p(
        "/spec/rules/0/split/1/subset",
        'Subset "v3" of service "echo" in namespace "default" is not defined: its DestinationPolicy "echo" defines "v1", "v2"',
      ),
      p(
        "/spec/rules/1/mirror/subset",
        'Subset "canary" of service "echo" in namespace "default" is not defined: its DestinationPolicy "echo" defines "v1", "v2"',
      ),
    ],
  },
  {
    name: "a subset of a DestinationPolicy without subsets",
    input: route({ split: [{ subset: "v1", weight: 100 }] }),
    others: [doc("DestinationPolicy", { service: "echo", loadBalancer: { algorithm: "RANDOM" } })],
    errors: [
      p(
        "/spec/rules/0/split/0/subset",
        'Subset "v1" of service "echo" in namespace "default" is not defined: its DestinationPolicy "echo" defines no subsets',
      ),
    ],
  },
  {
    name: "a port the service does not have",
    input: doc("TrafficRoute", { service: "echo", port: 8081, rules: [{}] }),
    errors: [p("/spec/port", 'Service "echo" has no port 8081: its ports are 8080, 9090')],
  },
  {
    name: "a tcp port",
    input: doc("TrafficRoute", { service: "echo", port: 5432, rules: [{}] }),
    services: { "default/echo": { ports: [...HTTP_ECHO.ports, { port: 5432, protocol: "tcp" }] } },
    errors: [
      p(
        "/spec/port",
        'Port 5432 of service "echo" is tcp: a TrafficRoute needs an http, http2 or grpc port',
      ),
    ],
  },
  {
    name: "a service with only tcp ports",
    input: route({}),
    services: { "default/echo": { ports: [{ port: 5432, protocol: "tcp" }] } },
    errors: [
      p(
        "/spec/service",
        'Service "echo" has only tcp ports: a TrafficRoute needs an http, http2 or grpc port',
      ),
    ],
  },
  {
    name: "a second TrafficRoute for the service",
    input: doc("TrafficRoute", { service: "echo", rules: [{}] }, { name: "echo-b" }),
    others: [
      route({}),
      doc("TrafficRoute", { service: "echo", rules: [{}] }, { name: "x", namespace: "other" }),
    ],
    errors: [
      p(
        "/spec/service",
        'Service "echo" already has a TrafficRoute, "echo": a service has at most one, so merge them',
      ),
    ],
  },
  {
    name: "a second DestinationPolicy for the service",
    input: doc("DestinationPolicy", { service: "echo" }, { name: "echo-b" }),
    others: [doc("DestinationPolicy", { service: "echo" }, { name: "echo-a" })],
    errors: [
      p(
        "/spec/service",
        'Service "echo" already has a DestinationPolicy, "echo-a": a service has at most one, so merge them',
      ),
    ],
  },
  {
    name: "a second RateLimit for the service",
    input: doc("RateLimit", { service: "echo", limit: { requests: 1, per: "1s" } }, { name: "b" }),
    others: [
      doc("RateLimit", { service: "echo", limit: { requests: 2, per: "1s" } }, { name: "a" }),
    ],
    errors: [
      p(
        "/spec/service",
        'Service "echo" already has a RateLimit, "a": a service has at most one, so merge them',
      ),
    ],
  },
  {
    name: "rules that can never match",
    input: route(
      { match: { path: { prefix: "/api" } } },
      { match: { path: { prefix: "/api/v2" }, methods: ["GET"] } },
      { match: { path: { exact: "/api" } } },
      { match: { methods: ["GET", "POST"], headers: { "x-a": { present: true } } } },
      { match: { methods: ["POST", "GET"], headers: { "x-a": { present: true } } } },
      { match: { methods: ["GET"], headers: { "x-a": { prefix: "1" }, "x-b": { exact: "2" } } } },
      { match: { path: { regex: "/a.*" } } },
      { match: { path: { regex: "/a.+" } } },
      { name: "fallback" },
      { match: { path: { exact: "/late" } } },
      {},
    ),
    warnings: [
      p("/spec/rules/1", 'Never matches: rule 0 matches every path starting with "/api"'),
      p("/spec/rules/2", 'Never matches: rule 0 matches every path starting with "/api"'),
      p("/spec/rules/4", "Never matches: rule 3 has the same match"),
      p("/spec/rules/5", "Never matches: rule 3 matches every request this one matches"),
      p("/spec/rules/9", "Never matches: rule 8 matches every request"),
      p("/spec/rules/10", "Never matches: rule 8 matches every request"),
    ],
  },
  {
    name: "match lists that can never match: every entry covered by one earlier rule's entries",
    input: route(
      { match: [{ path: { prefix: "/api" } }, { headers: { "x-a": { present: true } } }] },
      {
        match: [
          { path: { prefix: "/api/v2" } },
          { path: { exact: "/b" }, headers: { "x-a": { exact: "1" }, "x-b": { exact: "2" } } },
        ],
      },
      { match: [{ path: { prefix: "/api/v3" } }, { path: { prefix: "/web" } }] },
      { match: { headers: { "x-a": { exact: "1" } } } },
      { match: [{ headers: { "x-a": { present: true } } }, { path: { prefix: "/api" } }] },
      { match: [{ path: { prefix: "/z" } }] },
      { match: { path: { exact: "/z/1" }, methods: ["GET"] } },
      { match: [{ path: { prefix: "/x" } }, {}] },
      { match: { path: { exact: "/y" } } },
    ),
    warnings: [
      p("/spec/rules/1", "Never matches: rule 0 matches every request this one matches"),
      p("/spec/rules/3", "Never matches: rule 0 matches every request this one matches"),
      p("/spec/rules/4", "Never matches: rule 0 has the same match"),
      p("/spec/rules/6", 'Never matches: rule 5 matches every path starting with "/z"'),
      p("/spec/rules/8", "Never matches: rule 7 matches every request"),
    ],
  },
  {
    name: "RateLimit routes that can never match, and an unknown service",
    input: doc("RateLimit", {
      service: "echo",
      routes: [
        { match: { path: { prefix: "/" } }, limit: { requests: 1, per: "1s" } },
        { match: { path: { exact: "/login" } }, limit: { requests: 1, per: "1s" } },
      ],
    }),
    services: {},
    warnings: [
      p("/spec/service", notRegistered("echo")),
      p("/spec/routes/1", 'Never matches: route 0 matches every path starting with "/"'),
    ],
  },
  {
    name: "percentages of 0",
    input: route({
      mirror: { service: "echo", percent: 0 },
      fault: { delay: { fixed: "1s", percent: 0 }, abort: { grpcStatus: 14, percent: 0 } },
    }),
    warnings: [
      p("/spec/rules/0/mirror/percent", "Percent 0 never mirrors a request"),
      p("/spec/rules/0/fault/delay/percent", "Percent 0 never injects this delay"),
      p("/spec/rules/0/fault/abort/percent", "Percent 0 never injects this abort"),
    ],
  },
  {
    name: "a port override for a port the service does not have, and a subset without labels",
    input: doc("DestinationPolicy", {
      service: "echo",
      subsets: [{ name: "all", labels: {} }],
      ports: [{ port: 9090 }, { port: 7070 }],
    }),
    errors: [p("/spec/ports/1/port", 'Service "echo" has no port 7070: its ports are 8080, 9090')],
    warnings: [
      p(
        "/spec/subsets/0/labels",
        'Subset "all" has no labels: it selects every instance of the service',
      ),
    ],
  },
  {
    name: "a header hash on a service with a tcp port",
    input: doc("DestinationPolicy", {
      service: "echo",
      loadBalancer: { algorithm: "MAGLEV", hash: { header: "x-user" } },
    }),
    services: { "default/echo": { ports: [...HTTP_ECHO.ports, { port: 5432, protocol: "tcp" }] } },
    warnings: [
      p(
        "/spec/loadBalancer/hash/header",
        'Port 5432 of service "echo" is tcp: its connections hash on the client\'s address, not on a header',
      ),
    ],
  },
  {
    name: "a DestinationPolicy that drops a subset routes still send to",
    input: doc("DestinationPolicy", {
      service: "echo",
      subsets: [{ name: "v1", labels: { version: "v1" } }],
    }),
    others: [
      route({ split: [{ subset: "v1", weight: 50 }, { subset: "v2", weight: 50 }] }, {
        split: [{ subset: "v2", weight: 100 }],
      }),
      doc("TrafficRoute", {
        service: "web",
        rules: [{ mirror: { service: "echo", namespace: "default", subset: "v3" } }],
      }, { name: "web", namespace: "front" }),
    ],
    errors: [
      p(
        "/spec/subsets",
        'Subset "v2" is not defined, but TrafficRoute "echo" in namespace "default" sends to it (rule 0)',
      ),
      p(
        "/spec/subsets",
        'Subset "v3" is not defined, but TrafficRoute "web" in namespace "front" sends to it (rule 0)',
      ),
    ],
  },
  {
    name: "path normalization settings that weaken path rules are warnings",
    input: doc("MeshConfig", {
      pathNormalization: { normalization: "NONE", escapedSlashes: "KEEP" },
    }, { name: "mesh" }),
    warnings: [
      p(
        "/spec/pathNormalization/normalization",
        'Normalization "NONE" weakens path rules: "/public/../admin/x" and "//admin/x" reach the app as sent, and a rule on "/admin/*" does not see them',
      ),
      p(
        "/spec/pathNormalization/escapedSlashes",
        'Escaped slashes "KEEP" weakens path rules: "/public/..%2Fadmin" matches a rule on "/public/*", though an app that decodes "%2F" serves "/admin"',
      ),
    ],
  },
  {
    name: "path normalization without merged slashes is a warning",
    input: doc("MeshConfig", { pathNormalization: { normalization: "BASE" } }, { name: "mesh" }),
    warnings: [
      p(
        "/spec/pathNormalization/normalization",
        'Normalization "BASE" weakens path rules: "//admin/x" does not match a rule on "/admin/*", though many apps serve it as "/admin/x"',
      ),
    ],
  },
  {
    name: "decoding or redirecting escaped slashes keeps path rules whole",
    input: doc("MeshConfig", {
      pathNormalization: { normalization: "MERGE_SLASHES", escapedSlashes: "DECODE" },
    }, { name: "mesh" }),
  },
  {
    name: "path rules of an AuthorizationPolicy under weakened path normalization",
    input: doc("AuthorizationPolicy", {
      service: "echo",
      action: "DENY",
      rules: [{ to: [{ methods: ["GET"] }] }, { to: [{ ports: [8080] }, { notPaths: ["/a"] }] }],
    }),
    others: [
      doc("MeshConfig", { pathNormalization: { normalization: "BASE", escapedSlashes: "KEEP" } }, {
        name: "mesh",
      }),
    ],
    warnings: [
      p(
        "/spec/rules/1/to/1/notPaths",
        'Path rules can be bypassed: MeshConfig "mesh" weakens path normalization (normalization "BASE", escapedSlashes "KEEP")',
      ),
    ],
  },
  {
    name: "an AuthorizationPolicy for a service that has not registered",
    input: doc("AuthorizationPolicy", { service: "billing", action: "DENY" }),
    warnings: [p("/spec/service", notRegistered("billing"))],
  },
];

Deno.test("checkPolicy() checks a draft against services and other policies", async (t) => {
  for (const row of CHECKS) {
    await t.step(row.name, () => {
      const draft = draftOf(row.input);
      const ctx = context(
        row.services ?? { "default/echo": HTTP_ECHO },
        draft,
        ...(row.others ?? []).map((o) => draftOf(o)),
      );
      assert.deepEqual(checkPolicy(draft, ctx), {
        errors: row.errors ?? [],
        warnings: row.warnings ?? [],
      });
    });
  }
});

Deno.test("checkPolicy() finds nothing wrong with complete, consistent policies", () => {
  const drafts = [TRAFFIC_ROUTE, DESTINATION_POLICY, AUTHORIZATION_POLICY, RATE_LIMIT, MESH_CONFIG]
    .map((d) => draftOf(d));
  const ctx = context(
    { "shop/echo": HTTP_ECHO, "qa/echo-shadow": HTTP_ECHO },
    ...drafts,
  );
  for (const draft of drafts) {
    assert.deepEqual(checkPolicy(draft, ctx), { errors: [], warnings: [] }, draft.kind);
  }
});

Deno.test("checkPolicy() sees subsets from the same batch", () => {
  const draft = draftOf(route({ split: [{ subset: "v2", weight: 100 }] }));
  const ctx = context({ "default/echo": HTTP_ECHO }, draft, draftOf(ECHO_DP));
  assert.deepEqual(checkPolicy(draft, ctx), { errors: [], warnings: [] });
});

Deno.test("parsePolicy() refuses rate-limit answers Envoy cannot give", () => {
  const base = {
    apiVersion: "ironmesh.io/v1",
    kind: "RateLimit",
    metadata: { name: "echo" },
    spec: { service: "echo", limit: { requests: 10, per: "1s" } },
  };
  const headers = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`x-h${i}`, "1"]));
  const result = parsePolicy({
    ...base,
    spec: { ...base.spec, response: { status: 418, headers } },
  });
  assert.deepEqual(result.problems, [
    {
      pointer: "/spec/response/headers",
      message: "At most 10 headers: Envoy's local rate limit takes no more",
    },
    {
      pointer: "/spec/response/status",
      message: "Envoy cannot answer 418: use one of its status codes, e.g. 429 or 503",
    },
  ]);
  assert.deepEqual(
    parsePolicy({ ...base, spec: { ...base.spec, response: { status: 503 } } }).problems,
    [],
  );
});
