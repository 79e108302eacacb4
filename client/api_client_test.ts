import assert from "node:assert/strict";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  PreconditionFailedError,
  TooLargeError,
  UnauthorizedError,
  UnavailableError,
} from "../core/errors.ts";
import { ApiClient, parseRetryAfter, ServerError } from "./api_client.ts";

/** Starts a test-double HTTP server on a free loopback port and returns its URL. */
async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  body: (server: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

function problem(status: number, detail: string, extra: Record<string, unknown> = {}): Response {
  return Response.json(
    { type: "about:blank", title: "Error", status, detail, ...extra },
    { status, headers: { "content-type": "application/problem+json" } },
  );
}

Deno.test("ApiClient.request() sends token, query and JSON body to a test-double server", async () => {
  let seen: { method: string; url: URL; auth: string | null; type: string | null; body: unknown };
  await withServer(async (request) => {
    seen = {
      method: request.method,
      url: new URL(request.url),
      auth: request.headers.get("authorization"),
      type: request.headers.get("content-type"),
      body: await request.json(),
    };
    return Response.json({ ok: true }, { status: 201 });
  }, async (server) => {
    const client = new ApiClient({ server, token: "s3cret" });
    const answer = await client.request("POST", "/v1/tokens", {
      body: { role: "viewer" },
      query: { dryRun: true, skip: undefined },
    });
    assert.deepEqual(answer, { ok: true });
  });
  assert.equal(seen!.method, "POST");
  assert.equal(seen!.url.pathname, "/v1/tokens");
  assert.equal(seen!.url.search, "?dryRun=true");
  assert.equal(seen!.auth, "Bearer s3cret");
  assert.equal(seen!.type, "application/json");
  assert.deepEqual(seen!.body, { role: "viewer" });
});

Deno.test("ApiClient.request() keeps a path prefix of the server URL (test double)", async () => {
  let path = "";
  await withServer((request) => {
    path = new URL(request.url).pathname;
    return new Response(null, { status: 204 });
  }, async (server) => {
    const answer = await new ApiClient({ server: `${server}/mesh/` }).request("DELETE", "/v1/x");
    assert.equal(answer, undefined);
  });
  assert.equal(path, "/mesh/v1/x");
});

Deno.test("ApiClient.request() throws the error class of each status with the detail (test double)", async () => {
  const cases = [
    [401, UnauthorizedError],
    [403, ForbiddenError],
    [404, NotFoundError],
    [409, ConflictError],
    [412, PreconditionFailedError],
    [413, TooLargeError],
    [503, UnavailableError],
    [500, ServerError],
  ] as const;
  await withServer(
    (request) => problem(Number(new URL(request.url).searchParams.get("status")), "It went wrong"),
    async (server) => {
      const client = new ApiClient({ server });
      for (const [status, errorClass] of cases) {
        await assert.rejects(
          client.request("GET", "/v1/x", { query: { status } }),
          (error: unknown) => {
            assert.ok(error instanceof errorClass, `status ${status}`);
            assert.equal(error.message, "It went wrong");
            return true;
          },
        );
      }
    },
  );
});

Deno.test("ApiClient.request() carries the field problems of a 422 (test double)", async () => {
  const problems = [{ pointer: "/ports/0/port", message: "Must be between 1 and 65535" }];
  await withServer(
    () => problem(422, `Invalid service: /ports/0/port: Must be between 1 and 65535`, { problems }),
    async (server) => {
      await assert.rejects(
        new ApiClient({ server }).request("PUT", "/v1/services/default/web", { body: {} }),
        (error: unknown) => {
          assert.ok(error instanceof InvalidError);
          assert.deepEqual(error.problems, problems);
          return true;
        },
      );
    },
  );
});

Deno.test("ApiClient.request() reports a non-JSON error answer by status and first line (test double)", async () => {
  await withServer(
    () => new Response("<html>Bad gateway</html>\n<body/>", { status: 502 }),
    async (server) => {
      await assert.rejects(
        new ApiClient({ server }).request("GET", "/v1/version"),
        (error: unknown) => {
          assert.ok(error instanceof ServerError);
          assert.equal(error.status, 502);
          assert.equal(
            error.message,
            `Server "${server}" answered HTTP 502: <html>Bad gateway</html>`,
          );
          return true;
        },
      );
    },
  );
});

Deno.test("ApiClient.request() throws UnavailableError when nothing listens", async () => {
  let address = "";
  await withServer(() => new Response(), (server) => {
    address = server;
    return Promise.resolve();
  });
  await assert.rejects(
    new ApiClient({ server: address }).request("GET", "/v1/version"),
    (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.match(error.message, new RegExp(`^Cannot reach server "${address}": `));
      return true;
    },
  );
});

Deno.test("ApiClient() rejects a server URL that is not http or https", () => {
  assert.throws(() => new ApiClient({ server: "127.0.0.1:15080" }), InvalidError);
  assert.throws(() => new ApiClient({ server: "ftp://mesh" }), {
    message: `Invalid server URL "ftp://mesh": the scheme must be "http" or "https"`,
  });
});

Deno.test("ApiClient.list() follows next cursors and keeps the filters (test double)", async () => {
  const queries: string[] = [];
  await withServer((request) => {
    const url = new URL(request.url);
    queries.push(url.search);
    const cursor = url.searchParams.get("cursor");
    if (cursor === null) return Response.json({ items: [1, 2], next: "c1" });
    if (cursor === "c1") return Response.json({ items: [3], next: "c2" });
    return Response.json({ items: [4], next: null });
  }, async (server) => {
    const items = await new ApiClient({ server }).list<number>("/v1/instances", {
      service: "web",
      health: undefined,
    });
    assert.deepEqual(items, [1, 2, 3, 4]);
  });
  assert.deepEqual(queries, ["?service=web", "?service=web&cursor=c1", "?service=web&cursor=c2"]);
});

Deno.test("ApiClient.list() refuses an answer without items or with a repeating cursor (test double)", async () => {
  await withServer((request) => {
    const url = new URL(request.url);
    if (url.pathname === "/v1/bad") return Response.json({ things: [] });
    return Response.json({ items: [1], next: "again" });
  }, async (server) => {
    const client = new ApiClient({ server });
    await assert.rejects(client.list("/v1/bad"), /expected \{"items": \[\.\.\.\]\}/);
    await assert.rejects(client.list("/v1/loop"), /cursor "again" repeats/);
  });
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  const now = Date.UTC(2026, 0, 1);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter(" 3 ", now), 3_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", now), 10_000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
});
