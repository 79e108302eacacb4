import assert from "node:assert/strict";
import { heartbeatSchema, nodeRegistrationSchema } from "../core/model.ts";
import { normalizeSerial } from "../ca/identity.ts";
import {
  nodeCalls as nodeCallsOf,
  type RealServer,
  type RealServerOptions,
  type ServedRequest,
  withRealServer,
} from "./_real_server_testing.ts";
import { problem, removeDataDir, startAgent, type TestAgent, waitFor } from "./_testing.ts";

function kinds(requests: ServedRequest[]): string[] {
  return requests.map((r) => r.method);
}

const ONE_SERVICE = `
node: {name: vm-1, address: 127.0.0.1, labels: {zone: a}}
heartbeat: {interval: 100ms}
services:
  - name: web
    port: 8080
    check: {exec: ["true"], interval: 100ms}
  - name: db
    port: 5432
    protocol: tcp
`;

/**
 * A fault on the node endpoints only, numbered from 0, so the enrolment's CA
 * calls do not shift the indexes.
 */
function onNodeCalls(
  fault: (request: ServedRequest, index: number) => Response | undefined,
): RealServerOptions["fault"] {
  let count = 0;
  return (request) => request.path.startsWith("/v1/nodes/") ? fault(request, count++) : undefined;
}

/**
 * Runs `test` with the real server (and the `fault` it injects, if any) and
 * an agent enrolling on it with `yaml`; `stop()` stops the agent. Everything
 * is stopped and removed afterwards.
 */
async function withEnrolledAgent(
  yaml: string,
  test: (t: {
    server: RealServer;
    agent: TestAgent;
    nodeCalls: () => ServedRequest[];
    stop: () => Promise<void>;
  }) => Promise<void>,
  options: { fault?: RealServerOptions["fault"]; keepInstancesOnExit?: boolean } = {},
): Promise<void> {
  await withRealServer(async (server) => {
    const agent = startAgent(yaml, {
      joinToken: await server.joinToken({ node: "vm-1" }),
      ...(options.keepInstancesOnExit === undefined
        ? {}
        : { keepInstancesOnExit: options.keepInstancesOnExit }),
    });
    const nodeCalls = () => nodeCallsOf(server);
    try {
      await test({ server, agent, nodeCalls, stop: () => agent.stop() });
    } finally {
      await agent.stop();
      await removeDataDir(agent.dataDir);
    }
  }, options.fault === undefined ? {} : { fault: options.fault });
}

Deno.test("runAgent() registers, heartbeats over mTLS, writes agent.json and deregisters", async () => {
  await withRealServer(async (server) => {
    const agent = startAgent(ONE_SERVICE, { joinToken: await server.joinToken({ node: "vm-1" }) });
    const nodeCalls = () => nodeCallsOf(server);
    let serial: string | undefined;
    try {
      await waitFor(() => nodeCalls().length >= 3, "two heartbeats");
      const state = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
      serial = state.certificate.serial;
      assert.deepEqual(state, {
        node: "vm-1",
        server: server.url,
        pid: Deno.pid,
        certificate: {
          notAfter: state.certificate.notAfter,
          identity: "spiffe://ironmesh.test/ns/default/sa/web",
          serial,
        },
      });
      assert.ok(Date.parse(state.certificate.notAfter) > Date.now());
      assert.equal((await Deno.stat(agent.dataDir)).mode! & 0o777, 0o700);
      assert.equal((await server.registry.getNode("vm-1")).name, "vm-1", "registered for real");
    } finally {
      try {
        await agent.stop();
      } finally {
        await removeDataDir(agent.dataDir);
      }
    }
    const requests = nodeCalls();
    const [registration, heartbeat] = requests;
    assert.equal(registration?.method, "PUT");
    assert.equal(registration.path, "/v1/nodes/vm-1/registration");
    for (const request of server.requests) {
      assert.equal(request.auth, null, "no Authorization header, ever");
    }
    for (const request of requests) {
      assert.equal(request.authorized, true);
      assert.deepEqual(request.peer, {
        cn: "vm-1",
        san: "URI:spiffe://ironmesh.test/ns/default/sa/web",
        serial: serial === undefined ? undefined : normalizeSerial(serial),
      });
    }
    const body = nodeRegistrationSchema.parse(registration.body);
    assert.deepEqual(body.instances.map((i) => [i.id, i.check, i.address]), [
      ["web", "passing", "127.0.0.1"],
      ["db", "none", "127.0.0.1"],
    ]);
    assert.equal(heartbeat?.method, "POST");
    assert.equal(heartbeat.path, "/v1/nodes/vm-1/heartbeat");
    assert.deepEqual(heartbeatSchema.parse(heartbeat.body).checks, [
      { id: "web", status: "passing", output: "exit status 0" },
      { id: "db", status: "none", output: "" },
    ]);
    const last = requests.at(-1);
    assert.deepEqual([last?.method, last?.path, last?.status], ["DELETE", "/v1/nodes/vm-1", 204]);
  });
});

Deno.test("runAgent() registers again when a heartbeat answers 404 or 409", async () => {
  for (const status of [404, 409]) {
    // The fault: the second node call (a heartbeat) says the node is not registered.
    const fault = onNodeCalls((_, index) =>
      index === 1 ? problem(status, 'Node "vm-1" is not registered') : undefined
    );
    await withEnrolledAgent(ONE_SERVICE, async ({ agent, nodeCalls, stop }) => {
      await waitFor(() => nodeCalls().length >= 4, "a second registration and heartbeat");
      await stop();
      assert.deepEqual(kinds(nodeCalls()).slice(0, 4), ["PUT", "POST", "PUT", "POST"]);
      assert.ok(!kinds(nodeCalls()).includes("DELETE"), "instances are kept on exit");
      const warning = agent.logs().find((l) => l.level === "warn");
      assert.equal(warning?.status, status);
    }, { keepInstancesOnExit: true, fault });
  }
});

Deno.test("runAgent() backs off on 5xx and recovers without registering again", async () => {
  // The fault: the first three heartbeats answer 503.
  const fault = onNodeCalls((request, index) =>
    request.method === "POST" && index <= 3 ? problem(503, "Store unavailable") : undefined
  );
  await withEnrolledAgent(ONE_SERVICE, async ({ agent, nodeCalls, stop }) => {
    await waitFor(() => nodeCalls().length >= 6, "heartbeats after the outage");
    await stop();
    assert.deepEqual(kinds(nodeCalls()).slice(0, 6), [
      "PUT",
      "POST",
      "POST",
      "POST",
      "POST",
      "POST",
    ]);
    const logs = agent.logs();
    const failures = logs.filter((l) => l.msg === "Heartbeat failed: server error");
    assert.equal(failures.length, 3);
    assert.equal(failures[0]?.detail, "Store unavailable");
    assert.ok(logs.some((l) => l.msg === "Heartbeat recovered"));
  }, { fault });
});

Deno.test("runAgent() reports a refused certificate and retries without spinning", async () => {
  // The fault: every node call answers 401, as for a revoked certificate.
  let start = 0;
  const fault = onNodeCalls(() => {
    start ||= performance.now();
    return problem(401, "Certificate revoked");
  });
  await withEnrolledAgent(ONE_SERVICE, async ({ agent, nodeCalls, stop }) => {
    await waitFor(() => start > 0, "the first registration");
    await new Promise((resolve) => setTimeout(resolve, 700));
    await stop();
    const puts = nodeCalls().filter((r) => r.method === "PUT").length;
    // With random 0.5 the waits are 100, 200 and 400 ms: four attempts in 700 ms.
    assert.ok(puts >= 2 && puts <= 5, `${puts} registration attempts`);
    const error = agent.logs().find((l) => l.level === "error");
    assert.equal(
      error?.msg,
      "Registration refused: the server did not accept this node's certificate",
    );
    assert.equal(error?.detail, "Certificate revoked");
  }, { fault });
});

Deno.test("runAgent() heartbeats at once when a check changes status", async () => {
  let healthy = true;
  const app = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(null, { status: healthy ? 200 : 500 }),
  );
  const yaml = `
node: {name: vm-1, address: 127.0.0.1}
heartbeat: {interval: 10m}
services:
  - name: web
    port: ${app.addr.port}
    check: {http: "http://127.0.0.1:${app.addr.port}/healthz", interval: 100ms, unhealthyThreshold: 2}
`;
  try {
    await withEnrolledAgent(yaml, async ({ agent, nodeCalls, stop }) => {
      await waitFor(() => nodeCalls().length === 1, "the registration");
      healthy = false;
      await waitFor(() => nodeCalls().length === 2, "a heartbeat long before the interval");
      await stop();
      const [first, second] = nodeCalls();
      const registration = nodeRegistrationSchema.parse(first?.body);
      assert.equal(registration.instances[0]?.check, "passing");
      const heartbeat = heartbeatSchema.parse(second?.body);
      assert.equal(second?.status, 200);
      assert.equal(heartbeat.checks[0]?.status, "failing");
      assert.match(heartbeat.checks[0]!.output, /500 Internal Server Error/);
      const change = agent.logs().find((l) => l.msg === "Check status changed");
      assert.deepEqual([change?.previous, change?.status], ["passing", "failing"]);
    });
  } finally {
    await app.shutdown();
  }
});

Deno.test("runAgent() registers a failing check as failing from the start", async () => {
  const yaml = `
node: {name: vm-1, address: 127.0.0.1}
services: [{name: web, port: 80, check: {exec: ["false"]}}]
`;
  await withEnrolledAgent(yaml, async ({ nodeCalls, stop }) => {
    await waitFor(() => nodeCalls().length >= 1, "the registration");
    await stop();
    const registration = nodeRegistrationSchema.parse(nodeCalls()[0]?.body);
    assert.equal(nodeCalls()[0]?.status, 200);
    assert.deepEqual(
      [registration.instances[0]?.check, registration.instances[0]?.output],
      ["failing", "exit status 1"],
    );
  });
});
