/** End to end: logs are structured, carry a request log, and never hold a secret. */
import assert from "node:assert/strict";
import { runCli, ServerProc, startAgent, startApp, tempDir, waitFor } from "./harness.ts";

Deno.test("e2e logs: JSON lines with a request log, and no token, key or certificate secret in them", async () => {
  const dir = await tempDir("server");
  const server = await ServerProc.start(dir, ["--log-level", "debug"]);
  const app = await startApp();
  const joinToken = await server.joinToken({ node: "vm-l" });
  const apiToken = await server.token("operator");
  const agent = await startAgent(
    "vm-l",
    server,
    `
node: {name: vm-l, address: 127.0.0.1}
heartbeat: {interval: 200ms}
services:
  - name: hello
    port: ${app.port}
    check: {http: "http://127.0.0.1:${app.port}/healthz", interval: 200ms}
`,
    { joinToken, extraArgs: ["--log-level", "debug", "--local-xds-addr", "127.0.0.1:0"] },
  );
  try {
    await waitFor(
      "instance healthy",
      async () => (await server.instance("hello@vm-l"))?.health === "healthy",
    );
    // A few calls that carry secrets in headers and bodies: refused ones too.
    await server.api("GET", "/v1/nodes", { token: apiToken });
    await server.api("GET", "/v1/nodes", { token: apiToken + "x" });
    await fetch(`${server.url}/v1/ca/enrol`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: joinToken, csr: "junk", node: "vm-l" }),
    }).then((r) => r.body?.cancel());
    const backup = await runCli(["backup", "--out", `${dir}/b.json.gz`], {
      IRONMESH_SERVER: server.url,
      IRONMESH_TOKEN: server.adminToken,
    });
    assert.equal(backup.code, 0, backup.stderr);
  } finally {
    await agent.proc.stop("SIGTERM");
    await app.proc.stop();
    await server.proc.stop("SIGTERM");
  }
  const key = await Deno.readTextFile(`${agent.dataDir}/identity/key.pem`);
  const keyBody = key.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
  const signingKey = await Deno.readTextFile(`${dir}/token-signing.key`);
  const secrets: [string, string][] = [
    ["admin token", server.adminToken],
    ["API token", apiToken],
    ["API token secret", apiToken.split(".")[2]!],
    ["join token", joinToken],
    ["join token signature", joinToken.split(".")[2]!],
    ["agent private key", keyBody.slice(0, 40)],
    ["token signing key", signingKey.split("\n")[1]!.slice(0, 40)],
  ];
  for (
    const [who, output] of [["server", server.proc.output], ["agent", agent.proc.output]] as const
  ) {
    for (const [what, secret] of secrets) {
      assert.ok(!output.includes(secret), `the ${who} log holds the ${what}`);
    }
    assert.doesNotMatch(output, /PRIVATE KEY/, `the ${who} log holds a PEM private key`);
  }
  const lines = server.proc.output.split("\n").filter((l) => l.startsWith("{"));
  const entries = lines.map((l) =>
    JSON.parse(l) as { level: string; msg: string; status?: number }
  );
  assert.ok(entries.length > 10);
  for (const e of entries) assert.ok(["debug", "info", "warn", "error"].includes(e.level));
  assert.ok(
    entries.some((e) => e.msg === "HTTP request" && e.status === 401),
    "refusals are in the request log",
  );
  assert.ok(entries.some((e) => e.msg === "Node enrolled"));
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(agent.dataDir, { recursive: true });
});
