/**
 * The policy routes against the real app (SQLite, registry, validation):
 * writes with ETags, dry runs, batches, history, rollback, the audit log,
 * and refusals that store nothing.
 */
import assert from "node:assert/strict";
import { INVALID } from "../core/policy/_testing.ts";
import { withTestApp } from "./_testing.ts";

type Call = (
  method: string,
  path: string,
  options?: { body?: unknown; headers?: Record<string, string>; token?: string },
  // deno-lint-ignore no-explicit-any -- response bodies of every shape; the tests assert on them
) => Promise<{ status: number; body: any; headers: Headers }>;

function withPolicies(
  fn: (call: Call, tokenFor: (role: "viewer") => Promise<string>) => Promise<void>,
) {
  return withTestApp(async ({ app, tokenFor }) => {
    const admin = await tokenFor("admin");
    const call: Call = async (method, path, options = {}) => {
      const headers: Record<string, string> = {
        authorization: `Bearer ${options.token ?? admin}`,
        ...options.headers,
      };
      let body: string | undefined;
      if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers["content-type"] = "application/json";
      }
      const res = await app.request(path, { method, headers, ...(body ? { body } : {}) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
    };
    // The destination exists, with an HTTP and a TCP port.
    const svc = await call("PUT", "/v1/services/default/echo", {
      body: { ports: [{ port: 8080, protocol: "http" }, { port: 9000, protocol: "tcp" }] },
    });
    assert.equal(svc.status, 201, JSON.stringify(svc.body));
    await fn(call, tokenFor);
  });
}

const DEST = {
  apiVersion: "ironmesh.io/v1",
  kind: "DestinationPolicy",
  metadata: { name: "echo", namespace: "default" },
  spec: {
    service: "echo",
    subsets: [{ name: "v1", labels: { version: "v1" } }, { name: "v2", labels: { version: "v2" } }],
  },
};

function route(v1: number, v2: number) {
  return {
    apiVersion: "ironmesh.io/v1",
    kind: "TrafficRoute",
    metadata: { name: "echo", namespace: "default" },
    spec: {
      service: "echo",
      rules: [{ split: [{ subset: "v1", weight: v1 }, { subset: "v2", weight: v2 }] }],
    },
  };
}

const TR = "/v1/policies/trafficroute/default/echo";

Deno.test("policies: a batch is validated as a whole and stored atomically, with revisions and ETags", async () => {
  await withPolicies(async (call) => {
    const applied = await call("POST", "/v1/policies", { body: { items: [DEST, route(90, 10)] } });
    assert.equal(applied.status, 201, JSON.stringify(applied.body));
    assert.deepEqual(
      applied.body.items.map((
        i: { kind: string; action: string; revision: number },
      ) => [i.kind, i.action, i.revision]),
      [["DestinationPolicy", "created", 1], ["TrafficRoute", "created", 1]],
    );
    const got = await call("GET", TR);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("etag"), '"1"');
    assert.equal(got.body.metadata.revision, 1);
    assert.equal(got.body.spec.rules[0].split[1].weight, 10);

    // Applying the same content again changes nothing (kubectl's "unchanged").
    const again = await call("POST", "/v1/policies", { body: { items: [DEST, route(90, 10)] } });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.items.map((i: { action: string }) => i.action), [
      "unchanged",
      "unchanged",
    ]);
    assert.equal((await call("GET", TR)).body.metadata.revision, 1);

    // One bad document refuses the whole batch: nothing of it is stored.
    const bad = await call("POST", "/v1/policies", {
      body: {
        items: [
          {
            ...DEST,
            metadata: { name: "other", namespace: "default" },
            spec: { service: "other" },
          },
          route(80, 10),
        ],
      },
    });
    assert.equal(bad.status, 422);
    assert.deepEqual(bad.body.problems.map((p: { pointer: string }) => p.pointer), [
      "/items/1/spec/rules/0/split",
    ]);
    assert.equal((await call("GET", "/v1/policies/destinationpolicy/default/other")).status, 404);
    assert.equal((await call("GET", TR)).body.spec.rules[0].split[0].weight, 90);
  });
});

Deno.test("policies: If-Match makes concurrent writers lose nothing: a stale ETag gets 412", async () => {
  await withPolicies(async (call) => {
    assert.equal((await call("POST", "/v1/policies", { body: { items: [DEST] } })).status, 201);
    assert.equal(
      (await call("PUT", TR, { body: route(90, 10), headers: { "if-none-match": "*" } })).status,
      201,
    );
    // Two writers read revision 1 and write at once: exactly one wins.
    const [a, b] = await Promise.all([
      call("PUT", TR, { body: route(80, 20), headers: { "if-match": '"1"' } }),
      call("PUT", TR, { body: route(70, 30), headers: { "if-match": '"1"' } }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [200, 412]);
    const loser = a.status === 412 ? a : b;
    assert.equal(loser.headers.get("content-type"), "application/problem+json");
    const winner = a.status === 200 ? a : b;
    const stored = await call("GET", TR);
    assert.equal(stored.body.metadata.revision, 2);
    assert.deepEqual(stored.body.spec, winner.body.spec);
    // Create-only on an existing object is refused too.
    const exists = await call("PUT", TR, {
      body: route(50, 50),
      headers: { "if-none-match": "*" },
    });
    assert.equal(exists.status, 412);
    assert.equal((await call("GET", TR)).body.metadata.revision, 2);
  });
});

Deno.test("policies: dry run validates and stores nothing", async () => {
  await withPolicies(async (call) => {
    assert.equal((await call("POST", "/v1/policies", { body: { items: [DEST] } })).status, 201);
    const dry = await call("PUT", `${TR}?dryRun=true`, { body: route(90, 10) });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.equal(dry.body.dryRun, true);
    assert.equal(dry.body.items[0].action, "created");
    assert.deepEqual(dry.body.proxies, []);
    assert.equal((await call("GET", TR)).status, 404);
    const invalid = await call("PUT", `${TR}?dryRun=true`, { body: route(90, 20) });
    assert.equal(invalid.status, 422);
    assert.equal(invalid.body.problems[0].pointer, "/spec/rules/0/split");
    const audit = await call("GET", "/v1/audit?outcome=refused");
    assert.deepEqual(audit.body.items, [], "a dry run is not a write: nothing audited");
  });
});

Deno.test("policies: history shows who changed what; rollback stores an old revision as a new one", async () => {
  await withPolicies(async (call) => {
    await call("POST", "/v1/policies", { body: { items: [DEST] } });
    await call("PUT", TR, { body: route(90, 10) });
    await call("PUT", TR, { body: route(50, 50) });
    const history = await call("GET", `${TR}/history`);
    assert.equal(history.status, 200);
    assert.deepEqual(
      history.body.items.map((h: { revision: number; op: string }) => [h.revision, h.op]),
      [
        [1, "create"],
        [2, "update"],
      ],
    );
    assert.deepEqual(history.body.items[1].changes, [
      { pointer: "/spec/rules/0/split/0/weight", before: 90, after: 50 },
      { pointer: "/spec/rules/0/split/1/weight", before: 10, after: 50 },
    ]);
    assert.match(history.body.items[1].actor, /^tok_|^imt|\S+/);

    const rolled = await call("POST", `${TR}/rollback`, { body: { revision: 1 } });
    assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
    assert.equal(rolled.body.metadata.revision, 3);
    assert.equal(rolled.body.spec.rules[0].split[0].weight, 90);
    const after = await call("GET", `${TR}/history`);
    assert.deepEqual(after.body.items.at(-1).op, "rollback");

    const missing = await call("POST", `${TR}/rollback`, { body: { revision: 9 } });
    assert.equal(missing.status, 404);
    assert.match(missing.body.detail, /no revision 9 \(revisions: 1, 2, 3\)/);

    const deleted = await call("DELETE", TR, { headers: { "if-match": '"3"' } });
    assert.equal(deleted.status, 200);
    assert.equal((await call("GET", TR)).status, 404);
    // Revisions continue after a delete, so an ETag never means two contents.
    const recreated = await call("PUT", TR, { body: route(90, 10) });
    assert.equal(recreated.status, 201);
    assert.equal(recreated.body.metadata.revision, 5);
  });
});

Deno.test("policies: the audit log records every write, refused ones included", async () => {
  await withPolicies(async (call, tokenFor) => {
    await call("POST", "/v1/policies", { body: { items: [DEST] } });
    await call("PUT", TR, { body: route(90, 20) });
    await call("PUT", TR, { body: route(90, 10), headers: { "if-match": '"7"' } });
    const viewer = await tokenFor("viewer");
    const forbidden = await call("PUT", TR, { body: route(90, 10), token: viewer });
    assert.equal(forbidden.status, 403);
    const audit = await call("GET", "/v1/audit");
    assert.equal(audit.status, 200);
    const rows = audit.body.items.map((a: { kind: string; outcome: string; status: number }) => [
      a.kind,
      a.outcome,
      a.status,
    ]);
    assert.deepEqual(rows, [
      ["DestinationPolicy", "ok", 201],
      ["TrafficRoute", "refused", 422],
      ["TrafficRoute", "refused", 412],
      ["TrafficRoute", "refused", 403],
    ]);
    assert.match(
      audit.body.items[1].detail,
      /\/spec\/rules\/0\/split: Weights must sum to 100, not 110/,
    );
    assert.notEqual(
      audit.body.items[3].actor,
      audit.body.items[0].actor,
      "the viewer, not the admin",
    );
    assert.match(audit.body.items[3].detail, /may not do this/);
    const refused = await call("GET", "/v1/audit?outcome=refused&limit=1");
    assert.equal(refused.body.items.length, 1);
    assert.equal(refused.body.next, String(refused.body.items[0].id));
  });
});

Deno.test("policies: bad requests get 4xx problems naming the field, never a 500", async () => {
  await withPolicies(async (call) => {
    const cases: [string, string, unknown, number, string][] = [
      ["PUT", "/v1/policies/nosuchkind/default/x", route(90, 10), 422, "/kind"],
      ["PUT", "/v1/policies/trafficroute/Bad_NS/echo", route(90, 10), 422, "/namespace"],
      ["PUT", TR, { ...route(90, 10), metadata: { name: "other" } }, 422, "/metadata/name"],
      ["PUT", TR, { ...route(90, 10), kind: "RateLimit" }, 422, "/kind"],
      [
        "PUT",
        TR,
        { ...route(90, 10), spec: { service: "echo", rules: [], extra: 1 } },
        422,
        "/spec/extra",
      ],
      ["PUT", `${TR}?dryRun=yes`, route(90, 10), 422, "/dryRun"],
      ["POST", "/v1/policies", { items: [] }, 422, "/items"],
      ["POST", `${TR}/rollback`, { revision: "one" }, 422, "/revision"],
      ["GET", "/v1/audit?outcome=maybe", undefined, 422, "/outcome"],
    ];
    for (const [method, path, body, status, pointer] of cases) {
      const res = await call(method, path, body === undefined ? {} : { body });
      assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
      assert.ok(
        res.body.problems.some((p: { pointer: string }) => p.pointer === pointer),
        `${method} ${path}: expected a problem at ${pointer}, got ${
          JSON.stringify(res.body.problems)
        }`,
      );
    }
    assert.deepEqual((await call("GET", "/v1/policies")).body.items, []);
  });
});

Deno.test("policies: MeshConfig lives at /v1/policies/meshconfig/mesh", async () => {
  await withPolicies(async (call) => {
    const mesh = {
      apiVersion: "ironmesh.io/v1",
      kind: "MeshConfig",
      metadata: { name: "mesh" },
      spec: { mtls: { mode: "PERMISSIVE" }, push: { debounce: "50ms", maxDelay: "500ms" } },
    };
    const put = await call("PUT", "/v1/policies/meshconfig/mesh", { body: mesh });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.equal(put.body.metadata.namespace, "");
    assert.equal(
      (await call("GET", "/v1/policies/meshconfig/mesh")).body.spec.mtls.mode,
      "PERMISSIVE",
    );
    assert.equal((await call("GET", "/v1/policies/meshconfig/mesh/history")).body.items.length, 1);
    assert.equal((await call("PUT", "/v1/policies/meshconfig/other", { body: mesh })).status, 404);
    assert.equal((await call("DELETE", "/v1/policies/meshconfig/mesh")).status, 200);
  });
});

Deno.test("policies: a DestinationPolicy whose subsets a TrafficRoute uses cannot be deleted", async () => {
  await withPolicies(async (call) => {
    await call("POST", "/v1/policies", { body: { items: [DEST, route(90, 10)] } });
    const refused = await call("DELETE", "/v1/policies/destinationpolicy/default/echo");
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.match(refused.body.problems[0].message, /TrafficRoute "default\/echo" would break/);
    assert.equal((await call("GET", "/v1/policies/destinationpolicy/default/echo")).status, 200);
    assert.equal((await call("DELETE", TR)).status, 200);
    assert.equal((await call("DELETE", "/v1/policies/destinationpolicy/default/echo")).status, 200);
  });
});

Deno.test("policies: every invalid document of the validation table is refused with its exact problems, and nothing is stored", async () => {
  await withPolicies(async (call) => {
    for (const row of INVALID) {
      const res = await call("POST", "/v1/policies", { body: { items: [row.input] } });
      assert.equal(res.status, 422, `${row.name}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(
        res.body.problems.map((p: { pointer: string; message: string }) => ({
          pointer: p.pointer,
          message: p.message,
        })),
        row.problems.map((p) => ({ pointer: `/items/0${p.pointer}`, message: p.message })),
        row.name,
      );
    }
    assert.deepEqual((await call("GET", "/v1/policies")).body.items, []);
    const audit = await call("GET", "/v1/audit?limit=1000");
    assert.equal(audit.body.items.length, INVALID.length);
    assert.ok(audit.body.items.every((a: { outcome: string }) => a.outcome === "refused"));
  });
});

Deno.test("policies: lists page with cursors and block until the policy revision passes ?index=", async () => {
  await withPolicies(async (call) => {
    const rl = (name: string) => ({
      kind: "RateLimit",
      metadata: { name, namespace: "default" },
      spec: { service: name, limit: { requests: 10, per: "1s" } },
    });
    assert.equal(
      (await call("POST", "/v1/policies", { body: { items: [rl("a"), rl("b"), rl("c")] } })).status,
      201,
    );
    const first = await call("GET", "/v1/policies/ratelimit?limit=2");
    assert.deepEqual(first.body.items.map((p: { metadata: { name: string } }) => p.metadata.name), [
      "a",
      "b",
    ]);
    const second = await call("GET", `/v1/policies/ratelimit?limit=2&cursor=${first.body.next}`);
    assert.deepEqual(
      second.body.items.map((p: { metadata: { name: string } }) => p.metadata.name),
      [
        "c",
      ],
    );
    assert.equal(second.body.next, null);

    // A watcher at the current index is woken by the next policy write, not before.
    const index = Number(first.headers.get("x-ironmesh-index"));
    assert.ok(index >= 1);
    let answered = false;
    const watch = call("GET", `/v1/policies?index=${index}&wait=5s`).then((res) => {
      answered = true;
      return res;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(answered, false, "nothing changed: the query blocks");
    await call("POST", "/v1/policies", { body: { items: [rl("d")] } });
    const woken = await watch;
    assert.ok(Number(woken.headers.get("x-ironmesh-index")) > index);
    assert.equal(woken.body.items.length, 4);
    assert.equal((await call("GET", "/v1/policies?kind=ratelimit&servce=x")).status, 422);
  });
});
