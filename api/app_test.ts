import assert from "node:assert/strict";
import type { Registry } from "../registry/registry.ts";
import { withTestApp } from "./_testing.ts";
import { MAX_BODY_BYTES } from "./app.ts";

interface Harness {
  request(
    method: string,
    path: string,
    options?: { token?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
  tokenFor(role: "admin" | "operator" | "viewer" | "agent", node?: string): Promise<string>;
  registry: Registry;
}

function withApp(fn: (h: Harness) => Promise<void>): Promise<void> {
  return withTestApp(async ({ app, registry, tokenFor }) => {
    const admin = await tokenFor("admin");
    const harness: Harness = {
      registry,
      request(method, path, options = {}) {
        const headers: Record<string, string> = { ...options.headers };
        const token = options.token === undefined ? admin : options.token;
        if (token !== null) headers.authorization = `Bearer ${token}`;
        let body: string | undefined;
        if (options.body !== undefined) {
          body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
          headers["content-type"] ??= "application/json";
        }
        return Promise.resolve(
          app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) }),
        );
      },
      tokenFor,
    };
    await fn(harness);
  });
}

const registration = {
  hostname: "vm-1",
  addresses: ["10.0.0.1"],
  agentVersion: "test",
  heartbeatInterval: "5s",
  instances: [{
    id: "web",
    service: "web",
    port: 8080,
    check: "passing",
    labels: { version: "v1" },
  }],
};

async function problem(res: Response, status: number) {
  assert.equal(
    res.status,
    status,
    `expected ${status}, got ${res.status}: ${await res.clone().text()}`,
  );
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  return await res.json() as {
    title: string;
    detail: string;
    problems?: { pointer: string; in?: string; message: string }[];
  };
}

Deno.test("API answers 401 without a valid token and 403 for a weak role", () =>
  withApp(async (h) => {
    const none = await problem(await h.request("GET", "/v1/nodes", { token: null }), 401);
    assert.match(none.detail, /Missing Authorization/);
    await problem(
      await h.request("GET", "/v1/nodes", {
        token: "imt.0000000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
      }),
      401,
    );
    await problem(await h.request("GET", "/v1/nodes", { token: "garbage" }), 401);
    const viewer = await h.tokenFor("viewer");
    assert.equal((await h.request("GET", "/v1/nodes", { token: viewer })).status, 200);
    await problem(
      await h.request("PUT", "/v1/nodes/vm-1/registration", { token: viewer, body: registration }),
      403,
    );
    await problem(
      await h.request("POST", "/v1/tokens", { token: viewer, body: { role: "admin" } }),
      403,
    );
    const agent = await h.tokenFor("agent");
    await problem(
      await h.request("PATCH", "/v1/nodes/vm-1", { token: agent, body: { draining: true } }),
      403,
    );
  }));

Deno.test("API: an agent token acts only on its own node", () =>
  withApp(async (h) => {
    const a = await h.tokenFor("agent");
    const b = await h.tokenFor("agent");
    assert.equal(
      (await h.request("PUT", "/v1/nodes/vm-1/registration", { token: a, body: registration }))
        .status,
      200,
    );
    await problem(
      await h.request("PUT", "/v1/nodes/vm-1/registration", { token: b, body: registration }),
      403,
    );
    await problem(
      await h.request("POST", "/v1/nodes/vm-1/heartbeat", { token: b, body: { checks: [] } }),
      403,
    );
    await problem(await h.request("DELETE", "/v1/nodes/vm-1", { token: b }), 403);
    const bound = await h.tokenFor("agent", "vm-2");
    await problem(
      await h.request("PUT", "/v1/nodes/vm-1/registration", { token: bound, body: registration }),
      403,
    );
    assert.equal(
      (await h.request("PUT", "/v1/nodes/vm-2/registration", { token: bound, body: registration }))
        .status,
      200,
    );
    assert.equal((await h.request("DELETE", "/v1/nodes/vm-1", { token: a })).status, 204);
  }));

Deno.test("API refuses malformed bodies with a pointer and changes nothing", () =>
  withApp(async (h) => {
    const before = h.registry.feed.revision;
    const cases: [unknown, number, string][] = [
      ["{not json", 400, ""],
      [{ ...registration, extra: 1 }, 422, "/extra"],
      [{ ...registration, addresses: ["vm-1.example"] }, 422, "/addresses/0"],
      [{ ...registration, heartbeatInterval: "soon" }, 422, "/heartbeatInterval"],
      [
        { ...registration, instances: [{ ...registration.instances[0], port: 70000 }] },
        422,
        "/instances/0/port",
      ],
      [
        { ...registration, instances: [{ ...registration.instances[0], service: "Web_1" }] },
        422,
        "/instances/0/service",
      ],
      [{ ...registration, labels: { "bad key!": "x" } }, 422, "/labels/bad key!"],
      [[], 422, ""],
    ];
    for (const [body, status, pointer] of cases) {
      const p = await problem(
        await h.request("PUT", "/v1/nodes/vm-1/registration", { body }),
        status,
      );
      if (pointer) {
        assert.ok(
          p.problems?.some((x) => x.pointer === pointer),
          `${JSON.stringify(p.problems)} has ${pointer}`,
        );
      }
    }
    await problem(
      await h.request("PUT", "/v1/nodes/vm-1/registration", {
        body: registration,
        headers: { "content-type": "text/plain" },
      }),
      415,
    );
    await problem(
      await h.request("PUT", "/v1/nodes/Bad_Name/registration", { body: registration }),
      422,
    );
    const big = JSON.stringify({ ...registration, hostname: "x".repeat(MAX_BODY_BYTES) });
    await problem(await h.request("PUT", "/v1/nodes/vm-1/registration", { body: big }), 413);
    assert.equal(h.registry.feed.revision, before);
    const nodes = await (await h.request("GET", "/v1/nodes")).json();
    assert.deepEqual(nodes.items, []);
  }));

Deno.test("API refuses bad query parameters, naming them", () =>
  withApp(async (h) => {
    const cases: [string, string][] = [
      ["/v1/instances?servce=web", "/servce"],
      ["/v1/instances?limit=0", "/limit"],
      ["/v1/instances?limit=abc", "/limit"],
      ["/v1/instances?health=sick", "/health"],
      ["/v1/instances?labelSelector=a%20in%20(", "/labelSelector"],
      ["/v1/instances?cursor=%%%", "/cursor"],
      ["/v1/instances?index=1&wait=forever", "/wait"],
      ["/v1/nodes?service=web", "/service"],
    ];
    for (const [path, pointer] of cases) {
      const p = await problem(await h.request("GET", path), 422);
      assert.equal(p.problems?.[0]?.pointer, pointer, path);
      assert.equal(p.problems?.[0]?.in, "query", path);
    }
  }));

Deno.test("API lists filter and paginate with opaque cursors", () =>
  withApp(async (h) => {
    for (const n of ["vm-1", "vm-2", "vm-3"]) {
      const body = { ...registration, labels: { zone: n === "vm-2" ? "b" : "a" } };
      assert.equal((await h.request("PUT", `/v1/nodes/${n}/registration`, { body })).status, 200);
    }
    const first = await (await h.request("GET", "/v1/instances?limit=2")).json();
    assert.equal(first.items.length, 2);
    assert.equal(typeof first.next, "string");
    const second = await (await h.request("GET", `/v1/instances?limit=2&cursor=${first.next}`))
      .json();
    assert.deepEqual(second.items.map((i: { id: string }) => i.id), ["web@vm-3"]);
    assert.equal(second.next, null);
    const zoned = await (await h.request("GET", "/v1/nodes?labelSelector=zone%3Da")).json();
    assert.deepEqual(zoned.items.map((n: { name: string }) => n.name), ["vm-1", "vm-3"]);
    const byNode =
      await (await h.request("GET", "/v1/instances?node=vm-2&service=web&health=healthy")).json();
    assert.deepEqual(byNode.items.map((i: { id: string }) => i.id), ["web@vm-2"]);
    const ns = await (await h.request("GET", "/v1/namespaces")).json();
    assert.deepEqual(ns.items, [{ name: "default", services: 1 }]);
  }));

Deno.test("API writes use ETags: a stale If-Match gets 412 and loses nothing", () =>
  withApp(async (h) => {
    const created = await h.request("PUT", "/v1/services/default/api", {
      body: { ports: [{ port: 80, protocol: "http" }], labels: { team: "a" } },
      headers: { "if-none-match": "*" },
    });
    assert.equal(created.status, 201);
    const tag = created.headers.get("etag")!;
    const again = await h.request("PUT", "/v1/services/default/api", {
      body: { labels: {} },
      headers: { "if-none-match": "*" },
    });
    await problem(again, 412);
    const ok = await h.request("PUT", "/v1/services/default/api", {
      body: { labels: { team: "b" } },
      headers: { "if-match": tag },
    });
    assert.equal(ok.status, 200);
    const stale = await h.request("PUT", "/v1/services/default/api", {
      body: { labels: { team: "c" } },
      headers: { "if-match": tag },
    });
    await problem(stale, 412);
    await problem(
      await h.request("PUT", "/v1/services/default/api", {
        body: {},
        headers: { "if-match": "nope" },
      }),
      422,
    );
    const now = await (await h.request("GET", "/v1/services/default/api")).json();
    assert.deepEqual(now.labels, { team: "b" });
  }));

Deno.test("API blocking query returns when the registry changes", () =>
  withApp(async (h) => {
    await h.request("PUT", "/v1/nodes/vm-1/registration", { body: registration });
    const index = Number((await h.request("GET", "/v1/instances")).headers.get("x-ironmesh-index"));
    const blocked = h.request("GET", `/v1/instances?index=${index}&wait=30s&health=unhealthy`);
    let settled = false;
    blocked.then(() => settled = true);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, "it waits while nothing changes");
    await h.request("POST", "/v1/nodes/vm-1/heartbeat", {
      body: { checks: [{ id: "web", status: "failing" }] },
    });
    const res = await blocked;
    assert.equal(Number(res.headers.get("x-ironmesh-index")), index + 1);
    assert.deepEqual((await res.json()).items.map((i: { id: string }) => i.id), ["web@vm-1"]);
  }));

Deno.test("API heartbeat for an unknown node is 404 and for an unknown instance 409", () =>
  withApp(async (h) => {
    await problem(
      await h.request("POST", "/v1/nodes/vm-1/heartbeat", { body: { checks: [] } }),
      404,
    );
    await h.request("PUT", "/v1/nodes/vm-1/registration", { body: registration });
    await problem(
      await h.request("POST", "/v1/nodes/vm-1/heartbeat", {
        body: { checks: [{ id: "x", status: "passing" }] },
      }),
      409,
    );
    const ok = await h.request("POST", "/v1/nodes/vm-1/heartbeat", {
      body: { checks: [{ id: "web", status: "passing" }] },
    });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).ttlMs, 15_000);
  }));

Deno.test("API tokens: created once with a secret, revoked at once", () =>
  withApp(async (h) => {
    const res = await h.request("POST", "/v1/tokens", {
      body: { role: "viewer", description: "grafana", ttl: "1h" },
    });
    assert.equal(res.status, 201);
    const created = await res.json();
    assert.match(created.token, /^imt\.[0-9a-f]{16}\./);
    assert.equal((await h.request("GET", "/v1/nodes", { token: created.token })).status, 200);
    const listed = await (await h.request("GET", "/v1/tokens")).json();
    assert.ok(
      listed.items.every((t: Record<string, unknown>) => !("token" in t) && !("secretHash" in t)),
    );
    assert.equal((await h.request("DELETE", `/v1/tokens/${created.id}`)).status, 204);
    await problem(await h.request("GET", "/v1/nodes", { token: created.token }), 401);
    await problem(await h.request("POST", "/v1/tokens", { body: { role: "root" } }), 422);
    await problem(await h.request("DELETE", "/v1/tokens/unknown"), 404);
  }));

Deno.test("API /metrics counts requests by route and heartbeats", () =>
  withApp(async (h) => {
    await h.request("PUT", "/v1/nodes/vm-1/registration", { body: registration });
    await h.request("POST", "/v1/nodes/vm-1/heartbeat", { body: { checks: [] } });
    const text = await (await h.request("GET", "/metrics", { token: null })).text();
    assert.match(
      text,
      /ironmesh_http_requests_total\{route="\/v1\/nodes\/:name\/registration",method="PUT",status="200"\} 1/,
    );
    assert.match(text, /ironmesh_heartbeats_total\{result="unchanged"\} 1/);
    assert.match(text, /ironmesh_registry_objects\{kind="instance"\} 1/);
    assert.match(text, /ironmesh_watches 0/);
  }));

Deno.test("API unknown routes and liveness answer as documented", () =>
  withApp(async (h) => {
    await problem(await h.request("GET", "/v1/nope"), 404);
    assert.deepEqual(await (await h.request("GET", "/healthz", { token: null })).json(), {
      status: "ok",
    });
    assert.equal((await h.request("GET", "/readyz", { token: null })).status, 200);
  }));

Deno.test("API /v1/ca/roots serves JSON or PEM and names a bad format", () =>
  withApp(async (h) => {
    const json = await (await h.request("GET", "/v1/ca/roots", { token: null })).json();
    assert.equal(json.roots.length, 1);
    const pem = await (await h.request("GET", "/v1/ca/roots?format=pem", { token: null })).text();
    assert.match(pem, /^-----BEGIN CERTIFICATE-----/);
    const p = await problem(
      await h.request("GET", "/v1/ca/roots?format=der", { token: null }),
      422,
    );
    assert.equal(p.problems?.[0]?.pointer, "/format");
  }));
