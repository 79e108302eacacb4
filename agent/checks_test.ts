import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import type { CheckConfig, CheckTarget } from "../core/agent_config.ts";
import {
  type HealthCheckRequest,
  healthServiceDefinition,
  SERVING_STATUS,
} from "../core/grpc_health.ts";
import { createCheckRunner, MAX_OUTPUT, truncateOutput } from "./checks.ts";

function config(target: CheckTarget, timeoutMs = 1_000): CheckConfig {
  return { target, intervalMs: 5_000, timeoutMs, healthyThreshold: 1, unhealthyThreshold: 1 };
}

async function runOnce(target: CheckTarget, timeoutMs?: number) {
  const runner = createCheckRunner(config(target, timeoutMs));
  try {
    return await runner.run(new AbortController().signal);
  } finally {
    runner.close();
  }
}

/** A stand-in for the application being checked. */
function startApp(handler: (request: Request) => Response | Promise<Response>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return { server, base: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("createCheckRunner() http passes on 2xx and 3xx, fails on 5xx", async () => {
  const { server, base } = startApp((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/ok") return new Response("fine");
    if (path === "/moved") return Response.redirect(`${base}/elsewhere`, 302);
    return new Response("database down", { status: 500 });
  });
  try {
    assert.deepEqual(await runOnce({ kind: "http", url: `${base}/ok` }), {
      ok: true,
      output: `HTTP GET ${base}/ok: 200 OK: fine`,
    });
    assert.equal((await runOnce({ kind: "http", url: `${base}/moved` })).ok, true);
    assert.deepEqual(await runOnce({ kind: "http", url: `${base}/broken` }), {
      ok: false,
      output: `HTTP GET ${base}/broken: 500 Internal Server Error: database down`,
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("createCheckRunner() http fails after its timeout", async () => {
  const { server, base } = startApp(async () => {
    await new Promise((resolve) => setTimeout(resolve, 400));
    return new Response("late");
  });
  try {
    const started = performance.now();
    assert.deepEqual(await runOnce({ kind: "http", url: `${base}/slow` }, 100), {
      ok: false,
      output: "Timed out after 100ms",
    });
    assert.ok(performance.now() - started < 350);
  } finally {
    await server.shutdown();
  }
});

Deno.test("createCheckRunner() tcp passes when a connection is accepted", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const accepting = (async () => {
    for await (const conn of listener) conn.close();
  })();
  try {
    assert.deepEqual(await runOnce({ kind: "tcp", hostname: "127.0.0.1", port }), {
      ok: true,
      output: `TCP connect 127.0.0.1:${port}: success`,
    });
  } finally {
    listener.close();
    await accepting.catch(() => {});
  }
  // Port 1 (tcpmux) has no listener on these machines. The port just closed would do only until a
  // test running alongside binds port 0 and is handed it.
  const refused = await runOnce({ kind: "tcp", hostname: "127.0.0.1", port: 1 });
  assert.equal(refused.ok, false);
  assert.match(refused.output, /^TCP connect 127\.0\.0\.1:1: .*refused/i);
});

Deno.test("createCheckRunner() grpc passes only on SERVING", async () => {
  const server = new grpc.Server();
  server.addService(healthServiceDefinition, {
    check(
      call: grpc.ServerUnaryCall<HealthCheckRequest, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) {
      if (call.request.service === "gone") {
        callback({ code: grpc.status.NOT_FOUND, details: "Unknown service" });
        return;
      }
      callback(null, {
        status: call.request.service === "" ? SERVING_STATUS.SERVING : SERVING_STATUS.NOT_SERVING,
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
  const runner = createCheckRunner(
    config({ kind: "grpc", hostname: "127.0.0.1", port, service: "" }),
  );
  const signal = new AbortController().signal;
  try {
    assert.deepEqual(await runner.run(signal), {
      ok: true,
      output: `gRPC health 127.0.0.1:${port} service "": SERVING`,
    });
    assert.equal((await runner.run(signal)).ok, true, "the channel is reused");
    assert.deepEqual(await runOnce({ kind: "grpc", hostname: "127.0.0.1", port, service: "db" }), {
      ok: false,
      output: `gRPC health 127.0.0.1:${port} service "db": NOT_SERVING`,
    });
    const gone = await runOnce({ kind: "grpc", hostname: "127.0.0.1", port, service: "gone" });
    assert.equal(gone.ok, false);
    assert.match(gone.output, /NOT_FOUND: Unknown service/);
  } finally {
    runner.close();
    server.forceShutdown();
  }
});

Deno.test("createCheckRunner() exec passes on exit status 0", async () => {
  assert.deepEqual(await runOnce({ kind: "exec", command: ["true"] }), {
    ok: true,
    output: "exit status 0",
  });
  assert.deepEqual(await runOnce({ kind: "exec", command: ["false"] }), {
    ok: false,
    output: "exit status 1",
  });
  assert.deepEqual(
    await runOnce({ kind: "exec", command: ["sh", "-c", "echo out; echo err >&2; exit 3"] }),
    { ok: false, output: "exit status 3: out\nerr" },
  );
});

Deno.test("createCheckRunner() exec kills a program that outlives its timeout", async () => {
  const started = performance.now();
  assert.deepEqual(await runOnce({ kind: "exec", command: ["sleep", "5"] }, 100), {
    ok: false,
    output: "Timed out after 100ms",
  });
  assert.ok(performance.now() - started < 1_000);
});

Deno.test("createCheckRunner() exec fails when the program does not exist", async () => {
  const outcome = await runOnce({ kind: "exec", command: ["/nonexistent/check"] });
  assert.equal(outcome.ok, false);
  assert.match(outcome.output, /nonexistent/);
});

Deno.test("truncateOutput() keeps output within what the server accepts", () => {
  assert.equal(truncateOutput("short"), "short");
  const cut = truncateOutput("x".repeat(10_000));
  assert.equal(cut.length, MAX_OUTPUT);
  assert.ok(cut.endsWith("…"));
});
