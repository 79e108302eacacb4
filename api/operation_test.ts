import assert from "node:assert/strict";
import type { MiddlewareHandler } from "hono";
import type { Role } from "../core/model.ts";
import { type ApiEnv, resource, resourceApps } from "./operation.ts";
import { renderErrors } from "./problem.ts";
import { silentLogger } from "../core/log.ts";

/**
 * A stand-in for the authentication middleware (the real one is tested in
 * `app_test.ts` and `access_test.ts`): the caller's role comes from a test
 * header, so these tests see the authorization step alone.
 */
const roleFromHeader: MiddlewareHandler<ApiEnv> = async (c, next) => {
  c.set("principal", { tokenId: "t", role: c.req.header("x-test-role") as Role, node: null });
  await next();
};

const passThrough: MiddlewareHandler<ApiEnv> = (_, next) => next();

const THINGS = resource({
  prefix: "/things",
  operations: {
    readThing: {
      method: "get",
      path: "",
      tag: "Services",
      summary: "Read",
      access: "read",
      replies: [{ status: 200, description: "ok" }],
    },
    writeThing: {
      method: "put",
      path: "",
      tag: "Services",
      summary: "Write",
      access: "write",
      replies: [{ status: 200, description: "ok" }],
    },
    renewThing: {
      method: "post",
      path: "/renew",
      tag: "Services",
      summary: "Renew",
      access: "mtls",
      replies: [{ status: 200, description: "ok" }],
    },
  },
});

/** The app of {@link THINGS} whose handlers check nothing, and the refusals it reported. */
function thingsApp() {
  const refusals: string[] = [];
  const app = resourceApps({ authenticate: roleFromHeader, limitBody: passThrough })(THINGS, {
    // No handler checks who calls: the declaration alone must refuse.
    readThing: (c) => c.text("read"),
    writeThing: (c) => c.text("written"),
    renewThing: (c) => c.text("renewed"),
  }, { refused: (_, op, error) => void refusals.push(`${op.operationId}: ${error.message}`) });
  const errors = renderErrors({ log: silentLogger });
  app.onError(errors.onError);
  const call = (method: string, path: string, role: Role) =>
    app.request(path, { method, headers: { "x-test-role": role } });
  return { call, refusals };
}

Deno.test("resourceApps() refuses the roles an operation's declared access does not grant, with handlers that check nothing", async () => {
  const { call, refusals } = thingsApp();
  assert.equal((await call("GET", "/", "viewer")).status, 200);
  const refused = await call("PUT", "/", "viewer");
  assert.equal(refused.status, 403);
  assert.equal(
    (await refused.json()).detail,
    'Role "viewer" may not do this: it needs the "write" permission',
  );
  const written = await call("PUT", "/", "operator");
  assert.equal(written.status, 200);
  assert.equal(await written.text(), "written");
  assert.deepEqual(refusals, [
    'writeThing: Role "viewer" may not do this: it needs the "write" permission',
  ]);
});

Deno.test("resourceApps() refuses a token on an mtls operation whatever its role", async () => {
  const { call, refusals } = thingsApp();
  const refused = await call("POST", "/renew", "admin");
  assert.equal(refused.status, 403);
  assert.match((await refused.json()).detail, /call over mTLS with it, not with a token$/);
  assert.equal(refusals.length, 1);
});
