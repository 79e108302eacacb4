/**
 * End to end: enrolment with join tokens, mTLS, renewal, root rotation and
 * revocation, with the real server and real agent processes and real TLS.
 */
import assert from "node:assert/strict";
import {
  type Proc,
  runCli,
  ServerProc,
  startAgent,
  startApp,
  tempDir,
  waitFor,
} from "./harness.ts";

function config(node: string, appPort: number): string {
  return `
node: {name: ${node}, address: 127.0.0.1}
heartbeat: {interval: 200ms}
services:
  - name: hello
    port: ${appPort}
    check: {http: "http://127.0.0.1:${appPort}/healthz", interval: 200ms, unhealthyThreshold: 1}
`;
}

async function openssl(args: string[]): Promise<{ code: number; out: string }> {
  const res = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: res.code, out: dec.decode(res.stdout) + dec.decode(res.stderr) };
}

async function metric(server: ServerProc, pattern: RegExp): Promise<number> {
  const text = (await server.api("GET", "/metrics", { token: null })).body as string;
  return Number(pattern.exec(text)?.[1] ?? 0);
}

/** Heartbeats the server refused: the "zero failures" the rotation tests demand. */
const rejected = (server: ServerProc) =>
  metric(server, /^ironmesh_heartbeats_total\{result="rejected"\} (\d+)/m);
const renewals = (server: ServerProc) =>
  metric(server, /^ironmesh_certificates_issued_total\{kind="renew"\} (\d+)/m);

/** Lines in which the agent says a heartbeat failed. */
function heartbeatFailures(agent: Proc): string[] {
  return agent.output.split("\n").filter((l) =>
    /heartbeat/i.test(l) && /"level":"(warn|error)"/.test(l)
  );
}

Deno.test("e2e identity: enrol, verify the chain with openssl, refuse a replay, resume without a token", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const joinToken = await server.joinToken({
    namespace: "shop",
    serviceAccount: "hello",
    node: "vm-e",
  });
  let agent = await startAgent("vm-e", server, config("vm-e", app.port), { joinToken });
  try {
    await waitFor(
      "instance healthy",
      async () => (await server.instance("hello@vm-e"))?.health === "healthy",
    );
    const id = `${agent.dataDir}/identity`;
    assert.equal((await Deno.stat(`${id}/key.pem`)).mode! & 0o777, 0o600, "private key is 0600");
    const roots = await (await fetch(`${server.url}/v1/ca/roots?format=pem`)).text();
    await Deno.writeTextFile(`${dir}/roots.pem`, roots);
    const verify = await openssl([
      "verify",
      "-CAfile",
      `${dir}/roots.pem`,
      "-untrusted",
      `${id}/cert.pem`,
      `${id}/cert.pem`,
    ]);
    assert.equal(verify.code, 0, verify.out);
    const san = await openssl([
      "x509",
      "-in",
      `${id}/cert.pem`,
      "-noout",
      "-ext",
      "subjectAltName",
      "-subject",
    ]);
    assert.match(san.out, /URI:spiffe:\/\/ironmesh\.local\/ns\/shop\/sa\/hello/);
    assert.match(san.out, /CN ?= ?vm-e/);
    const node = await server.api("GET", "/v1/nodes/vm-e");
    assert.equal(node.body.owner, "x509:vm-e", "the node is owned by its certificate identity");

    // The same token again: refused, nothing issued.
    const before = await metric(
      server,
      /^ironmesh_certificates_issued_total\{kind="enrol"\} (\d+)/m,
    );
    const replay = await fetch(`${server.url}/v1/ca/enrol`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token: joinToken,
        csr: await Deno.readTextFile(`${id}/cert.pem`),
        node: "vm-e",
      }),
    });
    assert.ok(replay.status >= 400 && replay.status < 500, `replay answered ${replay.status}`);
    await replay.body?.cancel();
    assert.equal(
      await metric(server, /^ironmesh_certificates_issued_total\{kind="enrol"\} (\d+)/m),
      before,
    );

    // A restart without a token resumes with the stored identity.
    assert.equal((await agent.proc.stop("SIGTERM")).code, 0);
    const serial = (await openssl(["x509", "-in", `${id}/cert.pem`, "-noout", "-serial"])).out;
    agent = await startAgent("vm-e", server, config("vm-e", app.port), { dataDir: agent.dataDir });
    await waitFor(
      "re-registered without a token",
      async () => (await server.instance("hello@vm-e"))?.health === "healthy",
    );
    assert.equal(
      (await openssl(["x509", "-in", `${id}/cert.pem`, "-noout", "-serial"])).out,
      serial,
    );
    assert.equal(await rejected(server), 0);
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e identity: short-lived leaves renew several times with zero failed heartbeats", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir, ["--leaf-ttl", "4s", "--max-leaf-ttl", "4s"]);
  const app = await startApp();
  const agent = await startAgent("vm-t", server, config("vm-t", app.port), {
    joinToken: await server.joinToken(),
  });
  try {
    await waitFor(
      "instance healthy",
      async () => (await server.instance("hello@vm-t"))?.health === "healthy",
    );
    // 4 s leaves renew at 50-80% of their life: every 2-3.2 s, so 3 to 5 renewals in 10 s.
    // More would be a renewal storm, fewer a renewal that did not happen.
    const start = await renewals(server);
    await new Promise((r) => setTimeout(r, 10_000));
    const renewed = await renewals(server) - start;
    assert.ok(renewed >= 3 && renewed <= 5, `${renewed} renewals in 10 s`);
    assert.equal(await rejected(server), 0, "no heartbeat was refused");
    assert.deepEqual(heartbeatFailures(agent.proc), []);
    assert.equal((await server.api("GET", "/v1/nodes/vm-t")).body.status, "alive");
    const info = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
    assert.ok(
      Date.parse(info.certificate.notAfter) > Date.now(),
      "agent.json shows the current expiry",
    );
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e identity: a full root rotation while the agent heartbeats, with zero failures", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const agent = await startAgent("vm-o", server, config("vm-o", app.port), {
    joinToken: await server.joinToken(),
  });
  try {
    await waitFor(
      "instance healthy",
      async () => (await server.instance("hello@vm-o"))?.health === "healthy",
    );
    const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
    const oldRoot = (await server.api("GET", "/v1/ca/status")).body.signingRoot;
    const rotate = await runCli(["ca", "rotate"], env);
    assert.equal(rotate.code, 0, rotate.stderr);
    assert.match(rotate.stdout, /Stage:\s+published/);
    const stages = new Set<string>();
    await waitFor("rotation complete", async () => {
      const status = (await server.api("GET", "/v1/ca/status")).body;
      stages.add(status.stage);
      return status.stage === "steady" && status.signingRoot !== oldRoot;
    }, 30_000);
    assert.ok(stages.has("steady"));
    const status = (await server.api("GET", "/v1/ca/status")).body;
    assert.equal(status.leavesOnOtherRoots, 0);
    const bundle = (await server.api("GET", "/v1/ca/roots")).body;
    assert.deepEqual(bundle.roots.map((r: { fingerprint: string }) => r.fingerprint), [
      status.signingRoot,
    ]);
    // Traffic kept working through every stage, and still does on the new root alone.
    const count = await metric(server, /^ironmesh_heartbeats_total\{result="unchanged"\} (\d+)/m);
    await waitFor(
      "heartbeats on the new root",
      async () =>
        await metric(server, /^ironmesh_heartbeats_total\{result="unchanged"\} (\d+)/m) > count + 3,
    );
    assert.equal(await rejected(server), 0);
    assert.deepEqual(heartbeatFailures(agent.proc), []);
    const cli = await runCli(["ca", "status"], env);
    assert.match(cli.stdout, /Stage:\s+steady/);
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e identity: revoking the join token refuses the node at once and closes its streams", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const created = await server.api("POST", "/v1/tokens", {
    body: { kind: "join", serviceAccount: "web", node: "vm-x" },
  });
  const agent = await startAgent("vm-x", server, config("vm-x", app.port), {
    joinToken: created.body.token,
  });
  let client: Deno.HttpClient | undefined;
  try {
    await waitFor(
      "instance healthy",
      async () => (await server.instance("hello@vm-x"))?.health === "healthy",
    );
    const id = `${agent.dataDir}/identity`;
    client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(`${id}/bundle.pem`)],
      cert: await Deno.readTextFile(`${id}/cert.pem`),
      key: await Deno.readTextFile(`${id}/key.pem`),
    });
    // A long-lived stream opened with the node's certificate.
    const stream = await fetch(`${server.tlsUrl}/v1/events`, { client });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    await reader.read();
    const ended = (async () => {
      try {
        while (!(await reader.read()).done);
      } catch {
        // A reset connection ends the stream too.
      }
      return true;
    })();

    assert.equal((await server.api("DELETE", `/v1/tokens/${created.body.id}`)).status, 204);
    assert.equal(await ended, true, "the node's open stream was closed");
    const after = await fetch(`${server.tlsUrl}/v1/nodes/vm-x`, { client });
    assert.equal(after.status, 401);
    assert.match((await after.json()).detail, /revoked/);
    await waitFor(
      "node refused and stale",
      async () => (await server.api("GET", "/v1/nodes/vm-x")).body.status === "stale",
      10_000,
    );
  } finally {
    client?.close();
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});

Deno.test("e2e identity: decommissioning a node revokes its certificate", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const agent = await startAgent("vm-d", server, config("vm-d", app.port), {
    joinToken: await server.joinToken(),
  });
  try {
    await waitFor(
      "instance healthy",
      async () => (await server.instance("hello@vm-d"))?.health === "healthy",
    );
    assert.equal((await server.api("DELETE", "/v1/nodes/vm-d")).status, 204);
    // The agent cannot come back: its certificate is on the deny list.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal((await server.api("GET", "/v1/nodes/vm-d")).status, 404);
    assert.match(agent.proc.output, /revoked/);
  } finally {
    await agent.proc.stop("SIGKILL");
    await app.proc.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(agent.dataDir, { recursive: true });
  }
});
