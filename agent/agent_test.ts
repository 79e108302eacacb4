import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import { heartbeatSchema, nodeRegistrationSchema } from "../core/model.ts";
import { problem, type RecordedRequest, startServerDouble } from "./_server_double.ts";
import { runAgent } from "./agent.ts";
import { jsonLogger } from "../core/log.ts";

const HOST = { hostname: "test-host", interfaces: [] };
const TOKEN = "agent-token-s3cret";

/** Polls `predicate` every 10ms; fails the test if it is still false after `timeoutMs`. */
async function waitFor(predicate: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function kinds(requests: RecordedRequest[]): string[] {
  return requests.map((r) => r.method);
}

/** Runs the agent against `url` until the returned `stop()` is called. */
async function startAgent(
  url: string,
  yaml: string,
  extra: { keepInstancesOnExit?: boolean } = {},
) {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const controller = new AbortController();
  const running = runAgent({
    server: url,
    token: TOKEN,
    config: parseAgentConfig(yaml, "agent.yaml"),
    dataDir: `${dataDir}/data`,
    host: HOST,
    random: () => 0.5,
    logger: jsonLogger((line) => lines.push(line)),
    ...extra,
  }, controller.signal);
  return {
    dataDir: `${dataDir}/data`,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    rawLogs: lines,
    async stop() {
      controller.abort();
      try {
        await running;
      } finally {
        await Deno.remove(dataDir, { recursive: true });
      }
    },
  };
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

Deno.test("runAgent() registers, heartbeats, writes agent.json and deregisters", async () => {
  const double = startServerDouble();
  const agent = await startAgent(double.url, ONE_SERVICE);
  try {
    await waitFor(() => double.requests.length >= 3, "two heartbeats");
    const state = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
    assert.deepEqual(state, { node: "vm-1", server: double.url, pid: Deno.pid });
    assert.equal((await Deno.stat(agent.dataDir)).mode! & 0o777, 0o700);
  } finally {
    await agent.stop();
    await double.close();
  }
  const [registration, heartbeat] = double.requests;
  assert.equal(registration?.method, "PUT");
  assert.equal(registration.path, "/v1/nodes/vm-1/registration");
  assert.equal(registration.auth, `Bearer ${TOKEN}`);
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
  const last = double.requests.at(-1);
  assert.deepEqual([last?.method, last?.path], ["DELETE", "/v1/nodes/vm-1"]);
  assert.ok(!agent.rawLogs.some((l) => l.includes(TOKEN)), "the token never reaches the log");
});

Deno.test("runAgent() registers again when a heartbeat answers 404 or 409", async () => {
  for (const status of [404, 409]) {
    const double = startServerDouble((_, index) =>
      index === 1 ? problem(status, 'Node "vm-1" is not registered') : undefined
    );
    const agent = await startAgent(double.url, ONE_SERVICE, { keepInstancesOnExit: true });
    try {
      await waitFor(() => double.requests.length >= 4, "a second registration and heartbeat");
    } finally {
      await agent.stop();
      await double.close();
    }
    assert.deepEqual(kinds(double.requests).slice(0, 4), ["PUT", "POST", "PUT", "POST"]);
    assert.ok(!kinds(double.requests).includes("DELETE"), "instances are kept on exit");
    const warning = agent.logs().find((l) => l.level === "warn");
    assert.equal(warning?.status, status);
  }
});

Deno.test("runAgent() backs off on 5xx and recovers without registering again", async () => {
  const double = startServerDouble((request, index) =>
    request.method === "POST" && index <= 3 ? problem(503, "Store unavailable") : undefined
  );
  const agent = await startAgent(double.url, ONE_SERVICE);
  try {
    await waitFor(() => double.requests.length >= 6, "heartbeats after the outage");
  } finally {
    await agent.stop();
  }
  await double.close();
  assert.deepEqual(kinds(double.requests).slice(0, 6), [
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
});

Deno.test("runAgent() reports a refused token and retries without spinning", async () => {
  const double = startServerDouble(() => problem(401, "Invalid API token"));
  const agent = await startAgent(double.url, ONE_SERVICE);
  try {
    await new Promise((resolve) => setTimeout(resolve, 700));
  } finally {
    await agent.stop();
  }
  await double.close();
  const puts = double.requests.filter((r) => r.method === "PUT").length;
  // With random 0.5 the waits are 100, 200 and 400 ms: four attempts in 700 ms.
  assert.ok(puts >= 2 && puts <= 5, `${puts} registration attempts`);
  const error = agent.logs().find((l) => l.level === "error");
  assert.equal(error?.msg, "Registration refused: check the agent's API token");
  assert.equal(error?.detail, "Invalid API token");
  assert.ok(!agent.rawLogs.some((l) => l.includes(TOKEN)));
});

Deno.test("runAgent() heartbeats at once when a check changes status", async () => {
  let healthy = true;
  const app = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(null, { status: healthy ? 200 : 500 }),
  );
  const double = startServerDouble();
  const agent = await startAgent(
    double.url,
    `
node: {name: vm-1, address: 127.0.0.1}
heartbeat: {interval: 10m}
services:
  - name: web
    port: ${app.addr.port}
    check: {http: "http://127.0.0.1:${app.addr.port}/healthz", interval: 100ms, unhealthyThreshold: 2}
`,
  );
  try {
    await waitFor(() => double.requests.length === 1, "the registration");
    healthy = false;
    await waitFor(() => double.requests.length === 2, "a heartbeat long before the interval");
  } finally {
    await agent.stop();
    await app.shutdown();
    await double.close();
  }
  const registration = nodeRegistrationSchema.parse(double.requests[0]?.body);
  assert.equal(registration.instances[0]?.check, "passing");
  const heartbeat = heartbeatSchema.parse(double.requests[1]?.body);
  assert.equal(heartbeat.checks[0]?.status, "failing");
  assert.match(heartbeat.checks[0]!.output, /500 Internal Server Error/);
  const change = agent.logs().find((l) => l.msg === "Check status changed");
  assert.deepEqual([change?.previous, change?.status], ["passing", "failing"]);
});

Deno.test("runAgent() registers a failing check as failing from the start", async () => {
  const double = startServerDouble();
  const agent = await startAgent(
    double.url,
    `
node: {name: vm-1, address: 127.0.0.1}
services: [{name: web, port: 80, check: {exec: ["false"]}}]
`,
  );
  try {
    await waitFor(() => double.requests.length >= 1, "the registration");
  } finally {
    await agent.stop();
    await double.close();
  }
  const registration = nodeRegistrationSchema.parse(double.requests[0]?.body);
  assert.deepEqual(
    [registration.instances[0]?.check, registration.instances[0]?.output],
    ["failing", "exit status 1"],
  );
});
