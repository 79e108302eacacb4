/**
 * End to end: the real `ironmesh server`, real `ironmesh agent` processes and
 * a real app behind an HTTP health check, all on loopback.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { ServerProc, startAgent, startApp, tempDir, waitFor } from "./harness.ts";

function agentConfig(node: string, appPort: number, extra = ""): string {
  return `
node:
  name: ${node}
  address: 127.0.0.1
  labels: {region: test, zone: test-a}
heartbeat: {interval: 200ms}
services:
  - name: hello
    port: ${appPort}
    labels: {version: v1}
    check:
      http: "http://127.0.0.1:${appPort}/healthz"
      interval: 100ms
      timeout: 100ms
      unhealthyThreshold: 1
${extra}`;
}

async function health(server: ServerProc, id: string): Promise<string | undefined> {
  return (await server.instance(id))?.health;
}

Deno.test("e2e: an agent registers its app healthy, follows its check, and leaves on SIGTERM", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const joinToken = await server.joinToken({ node: "vm-1" });
  const agent = await startAgent("vm-1", server, agentConfig("vm-1", app.port), { joinToken });
  try {
    await waitFor("instance healthy", async () => await health(server, "hello@vm-1") === "healthy");
    const listed = await server.api("GET", "/v1/instances?service=hello&namespace=default");
    assert.equal(listed.body.items.length, 1);
    const inst = listed.body.items[0];
    assert.deepEqual(
      [inst.service, inst.namespace, inst.node, inst.address, inst.port, inst.labels, inst.health],
      ["hello", "default", "vm-1", "127.0.0.1", app.port, { version: "v1" }, "healthy"],
    );
    const node = await server.api("GET", "/v1/nodes/vm-1");
    assert.deepEqual(node.body.labels, { region: "test", zone: "test-a" });
    assert.equal(node.body.status, "alive");

    await fetch(`http://127.0.0.1:${app.port}/fail`, { method: "POST" }).then((r) =>
      r.body?.cancel()
    );
    await waitFor(
      "instance unhealthy",
      async () => await health(server, "hello@vm-1") === "unhealthy",
    );
    await fetch(`http://127.0.0.1:${app.port}/recover`, { method: "POST" }).then((r) =>
      r.body?.cancel()
    );
    await waitFor(
      "instance healthy again",
      async () => await health(server, "hello@vm-1") === "healthy",
    );

    const status = await agent.proc.stop("SIGTERM");
    assert.equal(status.code, 0, agent.proc.output);
    assert.equal(
      (await server.api("GET", "/v1/nodes/vm-1")).status,
      404,
      "deregistered on SIGTERM",
    );
    assert.equal(await server.instance("hello@vm-1"), null);
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    assert.equal((await server.proc.stop("SIGTERM")).code, 0, server.proc.output);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e: a SIGKILLed agent's instances turn unhealthy after the TTL", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const agent = await startAgent("vm-k", server, agentConfig("vm-k", app.port), {
    joinToken: await server.joinToken(),
  });
  try {
    await waitFor("instance healthy", async () => await health(server, "hello@vm-k") === "healthy");
    const killedAt = Date.now();
    await agent.proc.stop("SIGKILL");
    await waitFor(
      "node stale",
      async () => (await server.api("GET", "/v1/nodes/vm-k")).body.status === "stale",
    );
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed >= 600 - 250, `stale after ${elapsed}ms, TTL is 3 x 200ms`);
    assert.equal(await health(server, "hello@vm-k"), "unhealthy");
    assert.equal(
      (await server.api("GET", "/v1/instances?health=healthy")).body.items.length,
      0,
      "no healthy instance remains to receive traffic",
    );
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e: a server killed and restarted keeps its data and agents carry on", async () => {
  const dir = await tempDir("server");
  let server = await ServerProc.start(dir);
  const app = await startApp();
  const joinToken = await server.joinToken();
  const viewer = await server.token("viewer");
  await server.api("PUT", "/v1/services/default/catalog", {
    body: { ports: [{ port: 80, protocol: "http" }], labels: { team: "a" } },
  });
  const agent = await startAgent("vm-r", server, agentConfig("vm-r", app.port), {
    joinToken,
    extraArgs: ["--keep-instances-on-exit"],
  });
  try {
    await waitFor("instance healthy", async () => await health(server, "hello@vm-r") === "healthy");
    const before = await server.api("GET", "/v1/instances");
    const oldUrl = server.url;
    const oldTlsUrl = server.tlsUrl;
    await server.proc.stop("SIGKILL");

    // Same data dir, same ports, so the agent finds it again; retry while the ports are released.
    const restart = (dataDir: string) =>
      waitFor("server restarted on the same ports", async () => {
        try {
          return await ServerProc.start(dataDir, [
            "--http-addr",
            `127.0.0.1:${new URL(oldUrl).port}`,
            "--https-addr",
            `127.0.0.1:${new URL(oldTlsUrl).port}`,
          ]);
        } catch {
          return undefined;
        }
      }, 10_000);
    server = await restart(dir);
    assert.equal(server.url, oldUrl);
    assert.equal(
      (await server.api("GET", "/v1/nodes", { token: viewer })).status,
      200,
      "tokens survive",
    );
    const svc = await server.api("GET", "/v1/services/default/catalog");
    assert.deepEqual(svc.body.labels, { team: "a" });
    const after = await server.api("GET", "/v1/instances");
    assert.deepEqual(
      after.body.items.map((i: { id: string }) => i.id),
      before.body.items.map((i: { id: string }) => i.id),
    );

    // The agent keeps heartbeating the restarted server: the node stays alive past several TTLs.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal((await server.api("GET", "/v1/nodes/vm-r")).body.status, "alive");
    assert.equal(await health(server, "hello@vm-r"), "healthy");

    // Data loss: the registry comes back without this node (say, from an older backup); the
    // agent's next heartbeat gets 404 and it registers again, with the identity it already has.
    const registeredAt = (await server.api("GET", "/v1/nodes/vm-r")).body.registeredAt;
    await server.proc.stop("SIGTERM");
    const db = new DatabaseSync(`${dir}/ironmesh.db`);
    db.exec("DELETE FROM objects WHERE kind = 'node' OR kind = 'instance'");
    db.close();
    server = await restart(dir);
    await waitFor("node registered anew", async () => {
      const node = await server.api("GET", "/v1/nodes/vm-r");
      return node.status === 200 && node.body.registeredAt > registeredAt;
    });
    assert.equal(await health(server, "hello@vm-r"), "healthy");

    assert.equal((await agent.proc.stop("SIGTERM")).code, 0);
    assert.equal(
      await health(server, "hello@vm-r"),
      "healthy",
      "--keep-instances-on-exit leaves them for the TTL",
    );
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e: authentication, roles and node ownership over real HTTP", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  try {
    const reg = {
      hostname: "vm-a",
      addresses: ["127.0.0.1"],
      agentVersion: "e2e",
      heartbeatInterval: "5s",
      instances: [{ id: "web", service: "web", port: 8080 }],
    };
    assert.equal((await server.api("GET", "/v1/instances", { token: null })).status, 401);
    assert.equal(
      (await server.api("GET", "/v1/instances", {
        token: "imt.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      })).status,
      401,
    );
    const viewer = await server.token("viewer");
    assert.equal((await server.api("GET", "/v1/instances", { token: viewer })).status, 200);
    assert.equal(
      (await server.api("PUT", "/v1/nodes/vm-a/registration", { token: viewer, body: reg })).status,
      403,
    );
    assert.equal(
      (await server.api("PATCH", "/v1/nodes/vm-a", { token: viewer, body: { draining: true } }))
        .status,
      403,
    );
    const a = await server.token("agent");
    const b = await server.token("agent");
    assert.equal(
      (await server.api("PUT", "/v1/nodes/vm-a/registration", { token: a, body: reg })).status,
      200,
    );
    assert.equal(
      (await server.api("PUT", "/v1/nodes/vm-a/registration", { token: b, body: reg })).status,
      403,
    );
    assert.equal(
      (await server.api("POST", "/v1/nodes/vm-a/heartbeat", { token: b, body: { checks: [] } }))
        .status,
      403,
    );
    assert.equal((await server.api("DELETE", "/v1/nodes/vm-a", { token: b })).status, 403);
    assert.equal(
      (await server.api("PATCH", "/v1/instances/web@vm-a", { token: a, body: { draining: true } }))
        .status,
      403,
    );
    const operator = await server.token("operator");
    const drained = await server.api("PATCH", "/v1/instances/web@vm-a", {
      token: operator,
      body: { draining: true },
    });
    assert.equal(drained.status, 200);
    assert.equal(drained.body.health, "draining");
    assert.equal((await server.api("GET", "/v1/nodes/vm-a")).status, 200, "vm-a is still there");
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: malformed requests get 4xx problem+json and change nothing", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  try {
    const reg = {
      hostname: "vm-m",
      addresses: ["127.0.0.1"],
      agentVersion: "e2e",
      heartbeatInterval: "5s",
      instances: [{ id: "web", service: "web", port: 8080 }],
    };
    assert.equal(
      (await server.api("PUT", "/v1/nodes/vm-m/registration", { body: reg })).status,
      200,
    );
    const snapshot = async () =>
      JSON.stringify([
        (await server.api("GET", "/v1/nodes")).body,
        (await server.api("GET", "/v1/instances")).body,
        (await server.api("GET", "/v1/services")).body,
      ]);
    const before = await snapshot();
    const revision = (await server.api("GET", "/v1/instances")).headers.get("x-ironmesh-index");
    const battery: [string, string, Parameters<ServerProc["api"]>[2], number][] = [
      ["PUT", "/v1/nodes/vm-m/registration", { body: "{oops" }, 400],
      ["PUT", "/v1/nodes/vm-m/registration", {
        body: { ...reg, instances: [{ id: "web", service: "web", port: -1 }] },
      }, 422],
      ["PUT", "/v1/nodes/vm-m/registration", { body: { ...reg, unknownField: true } }, 422],
      ["PUT", "/v1/nodes/vm-m/registration", {
        body: { ...reg, instances: [] },
        headers: { "content-type": "text/yaml" },
      }, 415],
      ["PUT", "/v1/nodes/vm-m/registration", {
        body: JSON.stringify({ ...reg, hostname: "x".repeat(2_000_000) }),
      }, 413],
      ["PUT", "/v1/nodes/UPPER/registration", { body: reg }, 422],
      ["POST", "/v1/nodes/vm-m/heartbeat", {
        body: { checks: [{ id: "web", status: "sideways" }] },
      }, 422],
      ["POST", "/v1/nodes/vm-m/heartbeat", { body: { checks: "all good" } }, 422],
      ["PATCH", "/v1/nodes/vm-m", { body: { draining: "yes" } }, 422],
      [
        "PATCH",
        "/v1/nodes/vm-m",
        { body: { draining: true }, headers: { "if-match": '"999"' } },
        412,
      ],
      ["PATCH", "/v1/instances/not-an-id", { body: { draining: true } }, 422],
      [
        "PUT",
        "/v1/services/default/web",
        { body: { ports: [{ port: 8080, protocol: "udp" }] } },
        422,
      ],
      [
        "PUT",
        "/v1/services/default/web",
        { body: { ports: [{ port: 8080, protocol: "tcp" }] } },
        409,
      ],
      ["DELETE", "/v1/services/default/web", {}, 409],
      ["POST", "/v1/tokens", { body: { role: "agent", ttl: "-5s" } }, 422],
      ["GET", "/v1/instances?limit=100000", {}, 422],
      ["GET", "/v1/instances?labelSelector=%3D%3D", {}, 422],
      ["DELETE", "/v1/nodes/nope", {}, 404],
    ];
    for (const [method, path, options, status] of battery) {
      const res = await server.api(method, path, options);
      assert.equal(
        res.status,
        status,
        `${method} ${path} ${JSON.stringify(options).slice(0, 80)}: ${JSON.stringify(res.body)}`,
      );
      assert.equal(
        res.headers.get("content-type"),
        "application/problem+json",
        `${method} ${path}`,
      );
      assert.equal(typeof res.body.detail, "string");
    }
    assert.equal(await snapshot(), before);
    assert.equal(
      (await server.api("GET", "/v1/instances")).headers.get("x-ironmesh-index"),
      revision,
    );
    const metrics = (await server.api("GET", "/metrics", { token: null })).body as string;
    assert.doesNotMatch(metrics, /status="5\d\d"/, "no 5xx for any of them");
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: server-sent events announce each registry revision", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const controller = new AbortController();
  try {
    const res = await fetch(`${server.url}/v1/events`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
      signal: controller.signal,
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const until = async (pattern: RegExp) => {
      while (!pattern.test(seen)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${seen}`);
        seen += value;
      }
    };
    await until(/id: 0/);
    await server.api("PUT", "/v1/services/default/web", { body: { ports: [] } });
    await until(/event: change\ndata: \{"revision":1\}\nid: 1/);
    controller.abort();
    await reader.cancel().catch(() => {});
  } finally {
    controller.abort();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
