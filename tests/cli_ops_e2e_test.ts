/**
 * End to end: the CLI features of remote operation against a real server process: the TLS port
 * with `--ca-file`, `-o wide`, `get -w`, `drain`/`undrain`, and did-you-mean for kinds.
 */
import assert from "node:assert/strict";
import { ROOT, runCli, ServerProc, tempDir, waitFor } from "./harness.ts";

/** A server with one registered node `vm-w` serving `web`, and the environment to reach it. */
async function serverWithNode(): Promise<
  { server: ServerProc; dir: string; env: Record<string, string> }
> {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const agentToken = await server.token("agent", { node: "vm-w" });
  const reg = {
    hostname: "vm-w",
    addresses: ["127.0.0.1"],
    agentVersion: "e2e",
    heartbeatInterval: "5s",
    instances: [{ id: "web", service: "web", port: 8080, labels: { version: "v1" } }],
  };
  const res = await server.api("PUT", "/v1/nodes/vm-w/registration", {
    token: agentToken,
    body: reg,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { server, dir, env: { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken } };
}

Deno.test("e2e CLI: the TLS port with --ca-file or IRONMESH_CA_FILE, and a clear error without", async () => {
  const { server, dir } = await serverWithNode();
  try {
    const pem = await fetch(`${server.url}/v1/ca/roots?format=pem`).then((r) => r.text());
    await Deno.writeTextFile(`${dir}/mesh-ca.pem`, pem);
    const remote = { IRONMESH_TOKEN: server.adminToken, IRONMESH_SERVER: server.tlsUrl };

    const without = await runCli(["get", "nodes"], remote);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /UnknownIssuer/);
    assert.match(without.stderr, /pass the mesh CA with --ca-file or IRONMESH_CA_FILE/);
    assert.doesNotMatch(without.stderr, /\n\s+at /, "no stack trace");

    const flag = await runCli(["get", "nodes", "--ca-file", `${dir}/mesh-ca.pem`], remote);
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, /^NAME\s+STATUS[\s\S]*\nvm-w\s+alive/);
    const variable = await runCli(["get", "nodes", "-o", "json"], {
      ...remote,
      IRONMESH_CA_FILE: `${dir}/mesh-ca.pem`,
    });
    assert.equal(variable.code, 0, variable.stderr);
    assert.equal(JSON.parse(variable.stdout).items[0].name, "vm-w");

    const missing = await runCli(["get", "nodes", "--ca-file", `${dir}/nope.pem`], remote);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: Cannot read CA file ".*nope\.pem"/);
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e CLI: -o wide, drain and undrain, did-you-mean for kinds", async () => {
  const { server, dir, env } = await serverWithNode();
  try {
    const narrow = await runCli(["get", "instances"], env);
    const wide = await runCli(["get", "instances", "-o", "wide"], env);
    assert.equal(wide.code, 0, wide.stderr);
    assert.doesNotMatch(narrow.stdout, /PROTOCOL/);
    assert.match(wide.stdout, /HEALTH\s+PROTOCOL\s+INBOUND-PORT\s+DRAINING\s+CHECK\s+LABELS\n/);
    assert.match(wide.stdout, /web@vm-w .* healthy\s+http\s+-\s+false\s+\S+\s+version=v1\n/);

    const drained = await runCli(["drain", "node", "vm-w"], env);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /^NAME\s+STATUS\s+DRAINING[\s\S]*\nvm-w\s+alive\s+true/);
    assert.equal((await server.instance("web@vm-w"))?.health, "draining");
    const back = await runCli(["undrain", "node", "vm-w"], env);
    assert.equal(back.code, 0, back.stderr);
    assert.equal((await server.instance("web@vm-w"))?.health, "healthy");

    const one = await runCli(["drain", "instance", "web@vm-w", "-o", "json"], env);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(JSON.parse(one.stdout).health, "draining");
    assert.equal((await runCli(["undrain", "instance", "web@vm-w"], env)).code, 0);
    assert.equal((await server.instance("web@vm-w"))?.health, "healthy");

    const wrongKind = await runCli(["drain", "service", "web"], env);
    assert.equal(wrongKind.code, 1);
    assert.match(wrongKind.stderr, /Unknown kind "service": expected one of "nodes", "instances"/);
    const typo = await runCli(["get", "instnaces"], env);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /Unknown kind "instnaces" \(did you mean "instances"\?\)/);
    const notFound = await runCli(["drain", "node", "vm-nope"], env);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /vm-nope/);
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e CLI: get -w prints the list, then each change as it happens", async () => {
  const { server, dir, env } = await serverWithNode();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/main.ts`, "get", "instances", "-w", "-o", "json"],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(chunk) {
        lines.push(...chunk.split("\n").filter(Boolean));
      },
    }),
  );
  try {
    await waitFor("the initial list", () => lines.length >= 1);
    assert.deepEqual(JSON.parse(lines[0]!).type, "ADDED");
    assert.equal(JSON.parse(lines[0]!).object.id, "web@vm-w");
    // Give the watch time to be waiting on its blocking query, then change something.
    await new Promise((r) => setTimeout(r, 300));
    const res = await server.api("PATCH", "/v1/instances/web@vm-w", { body: { draining: true } });
    assert.equal(res.status, 200);
    await waitFor("the change", () => lines.length >= 2, 10_000);
    const change = JSON.parse(lines[1]!);
    assert.equal(change.type, "MODIFIED");
    assert.equal(change.object.health, "draining");
    assert.equal(lines.length, 2, "only the changed object is printed");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading.catch(() => {});
    await child.stderr.cancel().catch(() => {});
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
