import assert from "node:assert/strict";
import { Hono } from "hono";
import { ApiClient } from "../client/api_client.ts";
import { ServerApi } from "../agent/server_api.ts";
import {
  ERROR_KINDS,
  type ErrorKind,
  errorOfKind,
  InvalidError,
  RateLimitedError,
  StorageUnavailableError,
} from "../core/errors.ts";
import { problemResponse, toProblem } from "./problem.ts";

const PROBLEMS = [{ in: "path" as const, pointer: "/name", message: "Must be a DNS-1123 label" }];

/**
 * A real HTTP server whose every answer is the error of the kind named in the
 * path, rendered by the REST API's own `onError` path.
 */
async function withKindServer(body: (url: string) => Promise<void>): Promise<void> {
  const app = new Hono();
  app.onError((error, c) => problemResponse(c, toProblem(error, c.req.path)));
  app.all("/v1/nodes/:kind/*", (c) => {
    throw errorOfKind(c.req.param("kind") as ErrorKind, `The ${c.req.param("kind")} case`, {
      problems: PROBLEMS,
      retryAfterMs: 2_500,
    });
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  try {
    await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("every error kind goes out as its status and comes back as the same kind through ApiClient", () =>
  withKindServer(async (server) => {
    const client = new ApiClient({ server });
    for (const kind of Object.keys(ERROR_KINDS) as ErrorKind[]) {
      await assert.rejects(client.request("POST", `/v1/nodes/${kind}/heartbeat`), (error) => {
        assert.ok(error instanceof Error && "kind" in error, `${kind}: ${error}`);
        assert.equal(error.kind, kind);
        assert.equal(error.message, `The ${kind} case`);
        if (error instanceof InvalidError) assert.deepEqual(error.problems, PROBLEMS);
        if (error instanceof RateLimitedError || error instanceof StorageUnavailableError) {
          assert.equal(error.retryAfterMs, 3_000);
        }
        return true;
      });
    }
  }));

Deno.test("every error kind goes out as its status and comes back as the same kind through the agent's ServerApi", () =>
  withKindServer(async (server) => {
    const api = new ServerApi(server);
    for (const kind of Object.keys(ERROR_KINDS) as ErrorKind[]) {
      const result = await api.heartbeat(kind, { checks: [] });
      assert.equal(result.kind, "rejected", kind);
      if (result.kind !== "rejected") continue;
      assert.equal(result.status, ERROR_KINDS[kind].status, kind);
      assert.equal(result.problem.title, ERROR_KINDS[kind].title, kind);
      assert.equal(result.problem.instance, `/v1/nodes/${kind}/heartbeat`);
      assert.equal(result.error.kind, kind);
      assert.equal(result.error.message, `The ${kind} case`);
      assert.deepEqual(result.problem.problems, kind === "Invalid" ? PROBLEMS : []);
      const retries = kind === "RateLimited" || kind === "StorageUnavailable";
      assert.equal(result.retryAfterMs, retries ? 3_000 : undefined, kind);
    }
  }));
