/**
 * Who may call what, per route, from the route declarations. The roles each
 * access level admits are written out here, not read from `authorize()`, so
 * a role granted too much (a viewer that may write) fails here even though
 * the document, which derives its roles from `authorize()`, would agree.
 */
import assert from "node:assert/strict";
import type { Role } from "../core/model.ts";
import { DECLARED as ROUTES, samplePath, withTestApp } from "./_testing.ts";
import type { Access } from "./operation.ts";

/** The roles a token of which is refused with 403, by the access a route declares. */
const REFUSED: Record<Access, readonly Role[]> = {
  public: [],
  read: [],
  agent: ["viewer"],
  write: ["viewer", "agent"],
  admin: ["operator", "viewer", "agent"],
  // Renewal is proven by the certificate itself: no token will do.
  mtls: ["admin", "operator", "viewer", "agent"],
};

Deno.test("no route that changes anything is declared readable by every role", () => {
  // A write declared "read" would pass the test below for the wrong reason: nobody is refused.
  const changing = ROUTES.filter((r) => r.method !== "get");
  assert.ok(changing.length > 0);
  for (const route of changing) {
    assert.notEqual(route.access, "read", `${route.method.toUpperCase()} ${route.path}`);
  }
});

Deno.test("a viewer on every write route, an agent on every route not granted to agents, and so on are refused with 403", () =>
  withTestApp(async ({ app, tokenFor }) => {
    const tokens = new Map<Role, string>();
    for (const role of ["admin", "operator", "viewer", "agent"] as const) {
      tokens.set(role, await tokenFor(role));
    }
    let refusals = 0;
    for (const route of ROUTES) {
      const where = `${route.method.toUpperCase()} ${route.path}`;
      for (const role of REFUSED[route.access]) {
        const res = await app.request(samplePath(route), {
          method: route.method.toUpperCase(),
          headers: {
            authorization: `Bearer ${tokens.get(role)}`,
            "content-type": "application/json",
          },
          ...(route.body ? { body: "{}" } : {}),
        });
        assert.equal(res.status, 403, `${where}: role ${role} got ${res.status}`);
        const problem = await res.json();
        assert.equal(problem.type, "https://ironmesh.io/problems/forbidden", where);
        refusals++;
      }
    }
    // Every write route is tried by a viewer and an agent, every admin route by three roles.
    const expected = ROUTES.reduce((n, r) => n + REFUSED[r.access].length, 0);
    assert.equal(refusals, expected);
    assert.ok(refusals >= 2 * ROUTES.filter((r) => r.access === "write").length);
  }));
