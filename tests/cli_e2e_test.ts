/** End to end: the `ironmesh` CLI as scripts use it, against a real server process. */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { runCli, ServerProc, tempDir } from "./harness.ts";

Deno.test("e2e CLI: token create prints only the token, get lists in every format", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  try {
    const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
    const created = await runCli([
      "token",
      "create",
      "--kind",
      "api",
      "--role",
      "agent",
      "--node",
      "vm-c",
    ], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(
      created.stdout,
      /^imt\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\n$/,
      "stdout is the token alone",
    );
    const agentToken = created.stdout.trim();
    const reg = {
      hostname: "vm-c",
      addresses: ["127.0.0.1"],
      agentVersion: "e2e",
      heartbeatInterval: "5s",
      instances: [{ id: "web", service: "web", port: 8080, labels: { version: "v2" } }],
    };
    assert.equal(
      (await server.api("PUT", "/v1/nodes/vm-c/registration", { token: agentToken, body: reg }))
        .status,
      200,
    );

    const json = await runCli(["get", "instances", "-o", "json"], env);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).items.map((i: { id: string }) => i.id), ["web@vm-c"]);
    const yaml = await runCli(["get", "nodes", "vm-c", "-o", "yaml"], env);
    assert.equal(parse(yaml.stdout).name, "vm-c");
    const table = await runCli(["get", "instances", "-l", "version=v2"], env);
    assert.match(table.stdout, /^ID\s+SERVICE\s+NAMESPACE\s+NODE\s+ADDRESS\s+PORT\s+HEALTH/);
    assert.match(table.stdout, /web@vm-c\s+web\s+default\s+vm-c\s+127\.0\.0\.1\s+8080\s+healthy/);
    const none = await runCli(["get", "instances", "-l", "version=v1", "-o", "json"], env);
    assert.deepEqual(JSON.parse(none.stdout).items, []);
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e CLI: errors are one clear line and a non-zero exit", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  try {
    const viewer = await server.token("viewer");
    const refused = await runCli(["token", "create", "--role", "admin"], {
      IRONMESH_SERVER: server.url,
      IRONMESH_TOKEN: viewer,
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Role "viewer" may not do this/);
    assert.doesNotMatch(refused.stderr, /\n\s+at /, "no stack trace");
    const unreachable = await runCli([
      "get",
      "nodes",
      "--server",
      "http://127.0.0.1:1",
      "--token",
      "x",
    ]);
    assert.notEqual(unreachable.code, 0);
    assert.match(unreachable.stderr, /Cannot reach server/);
    const badFlag = await runCli(["server", "--http-addr", "nowhere", "--data-dir", dir]);
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.stderr, /--http-addr: Invalid address "nowhere"/);
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e CLI: the agent refuses a bad config file naming file, line and field", async () => {
  const dir = await tempDir("agent");
  try {
    const file = `${dir}/agent.yaml`;
    await Deno.writeTextFile(
      file,
      "node:\n  name: vm-1\nservices:\n  - name: web\n    port: 99999\n    colour: blue\n",
    );
    const res = await runCli([
      "agent",
      "--server",
      "https://127.0.0.1:1",
      "--config",
      file,
      "--data-dir",
      dir,
    ]);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, new RegExp(`${file}:5:\\d+: /services/0/port`));
    assert.match(
      res.stderr,
      new RegExp(`${file}:6:\\d+: /services/0/colour: Unknown field "colour"`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e CLI: server writes admin.token 0600 once and reuses it", async () => {
  const dir = await tempDir("server");
  try {
    const first = await ServerProc.start(dir);
    const token = first.adminToken;
    assert.equal((await Deno.stat(`${dir}/admin.token`)).mode! & 0o777, 0o600);
    assert.equal((await first.proc.stop("SIGTERM")).code, 0, "SIGTERM exits 0");
    const second = await ServerProc.start(dir);
    assert.equal(second.adminToken, token);
    assert.equal((await second.api("GET", "/v1/nodes")).status, 200);
    assert.equal((await second.proc.stop("SIGINT")).code, 0, "SIGINT exits 0");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e CLI: the agent reads its settings from the file, and a flag wins over the file", async () => {
  const dir = await tempDir("agent");
  try {
    const file = `${dir}/agent.yaml`;
    await Deno.writeTextFile(
      file,
      `server: https://127.0.0.1:1\ndataDir: ${dir}/from-file\nlogLevel: debug\nnode: {name: vm-1}\n`,
    );
    const fromFile = await runCli(["agent", "--config", file]);
    assert.equal(fromFile.code, 1);
    assert.match(fromFile.stderr, new RegExp(`No identity in "${dir}/from-file/identity"`));
    const flagWins = await runCli(["agent", "--config", file, "--data-dir", `${dir}/from-flag`]);
    assert.match(flagWins.stderr, new RegExp(`No identity in "${dir}/from-flag/identity"`));
    await Deno.writeTextFile(file, "server: http://127.0.0.1:1\n");
    const bad = await runCli(["agent", "--config", file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`${file}:1:\\d+: /server: Must be an https:// URL`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
