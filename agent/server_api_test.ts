import assert from "node:assert/strict";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { InvalidError } from "../core/errors.ts";
import { ServerError } from "../client/api_client.ts";
import { ServerApi } from "./server_api.ts";
import type { RegistrationBody } from "./registration.ts";
import { problem, startServerDouble } from "./_testing.ts";
import { issueTestLeaf, openTestAuthority } from "../ca/_testing.ts";
import { withRealServer } from "./_real_server_testing.ts";
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
  await withRealServer(async (server) => {
    const trusted = new ClientPool({ caPem: server.authority.bundle().pem });
    const strangerCa = await openTestAuthority("stranger.test");
    const stranger = new ClientPool({ caPem: strangerCa.authority.bundle().pem });
    await strangerCa.close();
    try {
      const ok = await new ServerApi(server.url, { clients: trusted }).roots();
      assert.equal(ok.kind, "ok");
      const refused = await new ServerApi(server.url, { clients: stranger }).roots();
      assert.equal(refused.kind, "unreachable");
      assert.match(refused.kind === "unreachable" ? refused.error : "", /UnknownIssuer/);
    } finally {
      trusted.close();
      stranger.close();
    }
  });
});

/** One request as {@link startClosingServer} read it. */
interface ClosingSeen {
  method: string;
  path: string;
  /** Which connection carried it, counted from 1. */
  connection: number;
  /** Whether the server answered it or closed the connection instead. */
  answered: boolean;
}

/**
 * The keep-alive race without the clock: a real mTLS server (raw `node:tls`,
 * HTTP/1.1 by hand) that answers the first request on each connection with
 * keep-alive and, when a second request arrives on that connection, closes
 * it without answering, as a server whose idle timeout fires just as the
 * client reuses the connection does.
 */
async function startClosingServer() {
  const mesh = await openTestAuthority("ironmesh.test");
  const ca = mesh.authority;
  const serving = await ca.issueServerCertificate({ ipAddresses: ["127.0.0.1"] });
  const seen: ClosingSeen[] = [];
  let connections = 0;
  const sockets = new Set<TLSSocket>();
  const server = createTlsServer({
    key: serving.keyPem,
    cert: serving.chainPem,
    ca: ca.bundle().pem,
    requestCert: true,
    rejectUnauthorized: true,
  }, (socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffered = "";
    let requests = 0;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buffered.slice(0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      buffered = buffered.slice(end + 4 + length);
      const [method = "", path = ""] = head.split(" ", 2);
      const answered = ++requests === 1;
      seen.push({ method, path, connection, answered });
      if (!answered) {
        socket.destroy();
        return;
      }
      const body = JSON.stringify({ ok: true });
      socket.write(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const client = await issueTestLeaf(ca, { node: "vm-1", namespace: "a", serviceAccount: "b" });
  return {
    url: `https://127.0.0.1:${port}`,
    seen,
    pool: new ClientPool({
      caPem: ca.bundle().pem,
      certPem: client.leaf.chainPem,
      keyPem: client.keyPem,
    }),
    async close() {
      await new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      await mesh.close();
    },
  };
}

Deno.test("ServerApi sends a heartbeat again on a fresh connection when the server closes the reused one", async () => {
  const server = await startClosingServer();
  try {
    const api = new ServerApi(server.url, { clients: server.pool });
    assert.equal((await api.heartbeat("vm-1", { checks: [] })).kind, "ok");
    const second = await api.heartbeat("vm-1", { checks: [] });
    assert.deepEqual(second, { kind: "ok", status: 200, body: { ok: true } });
    // PUT is idempotent by method.
    assert.equal((await api.register("vm-1", BODY)).kind, "ok");
    assert.deepEqual(server.seen, [
      { method: "POST", path: "/v1/nodes/vm-1/heartbeat", connection: 1, answered: true },
      { method: "POST", path: "/v1/nodes/vm-1/heartbeat", connection: 1, answered: false },
      { method: "POST", path: "/v1/nodes/vm-1/heartbeat", connection: 2, answered: true },
      { method: "PUT", path: "/v1/nodes/vm-1/registration", connection: 2, answered: false },
      { method: "PUT", path: "/v1/nodes/vm-1/registration", connection: 3, answered: true },
    ]);
  } finally {
    server.pool.close();
    await server.close();
  }
});

Deno.test("ServerApi never sends a non-idempotent call twice, even when the server closed the connection", async () => {
  const server = await startClosingServer();
  try {
    const api = new ServerApi(server.url, { clients: server.pool });
    const body = { token: "t", csr: "c", node: "vm-1" };
    assert.equal((await api.enrol(body)).kind, "ok");
    const second = await api.enrol(body);
    assert.equal(second.kind, "unreachable");
    assert.match(second.kind === "unreachable" ? second.error : "", /close_notify|closed|reset/);
    assert.deepEqual(server.seen.map((r) => [r.path, r.connection, r.answered]), [
      ["/v1/ca/enrol", 1, true],
      ["/v1/ca/enrol", 1, false],
    ]);
  } finally {
    server.pool.close();
    await server.close();
  }
});
