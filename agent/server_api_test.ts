import assert from "node:assert/strict";
import { InvalidError } from "../core/errors.ts";
import { ServerError } from "../client/api_client.ts";
import { ServerApi } from "./server_api.ts";
import type { RegistrationBody } from "./registration.ts";
import { problem, startServerDouble } from "./_testing.ts";
import { createTestCa, startTlsServerDouble } from "./_tls_server_testing.ts";
import { ClientPool } from "./tls_clients.ts";

const BODY: RegistrationBody = {
  hostname: "vm-1",
  addresses: ["127.0.0.1"],
  agentVersion: "0.1.0",
  heartbeatInterval: "5s",
  instances: [],
};

Deno.test("ServerApi.register() PUTs JSON without an Authorization header", async () => {
  const double = startServerDouble(() => Response.json({ node: { name: "vm-1" }, instances: [] }));
  try {
    const api = new ServerApi(double.url);
    const result = await api.register("vm-1", BODY);
    assert.deepEqual(result, {
      kind: "ok",
      status: 200,
      body: { node: { name: "vm-1" }, instances: [] },
    });
    assert.deepEqual(double.requests, [{
      method: "PUT",
      path: "/v1/nodes/vm-1/registration",
      auth: null,
      contentType: "application/json",
      body: BODY,
    }]);
  } finally {
    await double.close();
  }
});

Deno.test("ServerApi keeps a path prefix of the server URL", async () => {
  const double = startServerDouble(() => new Response(null, { status: 204 }));
  try {
    const api = new ServerApi(`${double.url}/mesh/`);
    assert.deepEqual(await api.deregister("vm-1"), { kind: "ok", status: 204, body: null });
    assert.deepEqual(await api.heartbeat("vm-1", { checks: [] }), {
      kind: "ok",
      status: 204,
      body: null,
    });
    assert.deepEqual(
      double.requests.map((r) => [r.method, r.path, r.auth]),
      [["DELETE", "/mesh/v1/nodes/vm-1", null], ["POST", "/mesh/v1/nodes/vm-1/heartbeat", null]],
    );
  } finally {
    await double.close();
  }
});

Deno.test("ServerApi decodes a problem document", async () => {
  const double = startServerDouble(() =>
    new Response(
      JSON.stringify({
        type: "about:blank",
        title: "Bad Request",
        status: 400,
        detail: "Invalid registration",
        problems: [{ pointer: "/instances/0/port", message: "Must be between 1 and 65535" }, 7],
      }),
      { status: 400, headers: { "content-type": "application/problem+json" } },
    )
  );
  try {
    const result = await new ServerApi(double.url).register("vm-1", BODY);
    const problems = [{ pointer: "/instances/0/port", message: "Must be between 1 and 65535" }];
    assert.deepEqual(result, {
      kind: "rejected",
      status: 400,
      problem: {
        type: "about:blank",
        title: "Bad Request",
        status: 400,
        detail: "Invalid registration",
        instance: "/v1/nodes/vm-1/registration",
        problems,
      },
      error: new InvalidError("Invalid registration", problems),
    });
    assert.ok(result.kind === "rejected" && result.error instanceof InvalidError);
  } finally {
    await double.close();
  }
});

Deno.test("ServerApi reads a non-problem error body as its detail", async () => {
  const double = startServerDouble(() => new Response("upstream down", { status: 502 }));
  try {
    const result = await new ServerApi(double.url).heartbeat("vm-1", { checks: [] });
    assert.ok(result.kind === "rejected");
    const { error, ...rest } = result;
    assert.deepEqual(rest, {
      kind: "rejected",
      status: 502,
      problem: {
        type: "about:blank",
        title: "Bad Gateway",
        status: 502,
        detail: "upstream down",
        instance: "/v1/nodes/vm-1/heartbeat",
        problems: [],
      },
    });
    assert.ok(error instanceof ServerError);
    assert.equal(error.status, 502);
    assert.equal(error.message, `Server "${double.url}" answered HTTP 502: upstream down`);
  } finally {
    await double.close();
  }
});

Deno.test("ServerApi reports an unreachable server and a timeout", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  const refused = await new ServerApi(`http://127.0.0.1:${closedPort}`).heartbeat("vm-1", {});
  assert.equal(refused.kind, "unreachable");

  const double = startServerDouble(async () => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return new Response(null, { status: 204 });
  });
  try {
    const api = new ServerApi(double.url, { timeoutMs: 100 });
    assert.deepEqual(await api.heartbeat("vm-1", {}), {
      kind: "unreachable",
      error: "No answer within 100ms",
    });
  } finally {
    await double.close();
  }
});

Deno.test("ServerApi reports Retry-After of a rejected call", async () => {
  const double = startServerDouble(() => problem(429, "Slow down", { "retry-after": "7" }));
  try {
    const result = await new ServerApi(double.url).renew({ csr: "x" });
    assert.equal(result.kind, "rejected");
    assert.equal(result.kind === "rejected" && result.retryAfterMs, 7_000);
    assert.deepEqual(double.requests.map((r) => [r.method, r.path]), [["POST", "/v1/ca/renew"]]);
  } finally {
    await double.close();
  }
});

Deno.test("ServerApi verifies the server with the pool's roots and says why it failed", async () => {
  const double = await startTlsServerDouble();
  const trusted = new ClientPool({ caPem: double.ca.rootPem });
  const stranger = new ClientPool({ caPem: (await createTestCa("Stranger")).rootPem });
  try {
    const ok = await new ServerApi(double.url, { clients: trusted }).roots();
    assert.equal(ok.kind, "ok");
    const refused = await new ServerApi(double.url, { clients: stranger }).roots();
    assert.equal(refused.kind, "unreachable");
    assert.match(refused.kind === "unreachable" ? refused.error : "", /UnknownIssuer/);
  } finally {
    trusted.close();
    stranger.close();
    await double.close();
  }
});
