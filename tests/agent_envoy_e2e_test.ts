/**
 * End to end, issue 12: Envoy found on `PATH` and supervised, and a node
 * condition where sidecar ports are declared but no Envoy runs. Envoy
 * itself cannot run here, so `envoy` is a fake: a shell script that records
 * its arguments and stays up (a mock of Envoy, named as such), or one that
 * exits at once.
 */
import assert from "node:assert/strict";
import { runCli, ServerProc, startAgent, tempDir, waitFor } from "./harness.ts";

const SIDECAR_CONFIG = (node: string) => `
node: {name: ${node}, address: 127.0.0.1}
heartbeat: {interval: 300ms}
services:
  - {name: web, port: 18080, inboundPort: 15001}
upstreams:
  - {service: api.default, localPort: 19001}
`;

/** A directory holding a fake `envoy` with `body` after the line that records its arguments. */
async function fakeEnvoy(body: string): Promise<{ dir: string; calls: string }> {
  const dir = await tempDir("fake-envoy");
  const calls = `${dir}/calls.log`;
  await Deno.writeTextFile(
    `${dir}/envoy`,
    `#!/bin/sh\n# A fake Envoy for tests: records its arguments, then ${body}\necho "$@" >> "${calls}"\n${body}\n`,
    { mode: 0o755 },
  );
  return { dir, calls };
}

const lines = async (file: string) =>
  (await Deno.readTextFile(file).catch(() => "")).split("\n").filter(Boolean);

interface NodeView {
  name: string;
  conditions: { type: string; reason: string; message: string }[];
}

Deno.test("agent finds envoy on PATH, starts it with the bootstrap, restarts it; nodes say when no Envoy runs", async () => {
  const dir = await tempDir("envoy-e2e");
  const server = await ServerProc.start(dir);
  const staying = await fakeEnvoy("exec sleep 600");
  const failing = await fakeEnvoy("exit 3");
  const empty = await tempDir("no-envoy");
  const path = (first: string) => `${first}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
  const args = ["--local-xds-addr", "127.0.0.1:0"];
  const withEnvoy = await startAgent("vm-envoy", server, SIDECAR_CONFIG("vm-envoy"), {
    joinToken: await server.joinToken(),
    extraArgs: args,
    env: { PATH: path(staying.dir) },
  });
  const crashing = await startAgent("vm-crash", server, SIDECAR_CONFIG("vm-crash"), {
    joinToken: await server.joinToken(),
    extraArgs: args,
    env: { PATH: path(failing.dir) },
  });
  const without = await startAgent("vm-none", server, SIDECAR_CONFIG("vm-none"), {
    joinToken: await server.joinToken(),
    extraArgs: args,
    env: { PATH: path(empty) },
  });
  const agents = [withEnvoy, crashing, without];
  try {
    // Found on PATH and started with the bootstrap the agent wrote.
    await withEnvoy.proc.waitForLine(/Envoy found on PATH/);
    const started = await withEnvoy.proc.waitForLine(/"msg":"Envoy started".*"pid":(\d+)/);
    const bootstrap = `${withEnvoy.dataDir}/envoy/bootstrap.json`;
    await waitFor(
      "the fake Envoy's first call",
      async () => (await lines(staying.calls)).length === 1,
    );
    assert.deepEqual(await lines(staying.calls), [`-c ${bootstrap}`]);
    assert.ok(JSON.parse(await Deno.readTextFile(bootstrap)).dynamic_resources.ads_config);

    // Killed, it is started again.
    Deno.kill(Number(started[1]), "SIGKILL");
    await withEnvoy.proc.waitForLine(/Envoy exited; restarting/);
    await waitFor("the restart", async () => (await lines(staying.calls)).length === 2, 10_000);

    // No Envoy on PATH: said at start, and a condition of the node; an Envoy that keeps
    // exiting: a condition too. The node that runs one has none.
    await without.proc.waitForLine(/Sidecar ports are declared .* but no Envoy runs/);
    const nodes = await waitFor("the conditions in the registry", async () => {
      const res = await server.api("GET", "/v1/nodes");
      const items = res.body.items as NodeView[];
      const by = new Map(items.map((n) => [n.name, n]));
      // vm-envoy's condition from the kill above clears once its Envoy runs again.
      return by.get("vm-none")?.conditions.length === 1 &&
          by.get("vm-crash")?.conditions.length === 1 && by.get("vm-envoy")?.conditions.length === 0
        ? by
        : undefined;
    }, 15_000);
    assert.deepEqual(
      nodes.get("vm-none")!.conditions.map((c) => [c.type, c.reason]),
      [["SidecarNotRunning", "EnvoyNotFound"]],
    );
    assert.match(nodes.get("vm-none")!.conditions[0]!.message, /inboundPort 15001 of web/);
    assert.deepEqual(
      nodes.get("vm-crash")!.conditions.map((c) => [c.type, c.reason]),
      [["SidecarNotRunning", "EnvoyExited"]],
    );
    assert.match(nodes.get("vm-crash")!.conditions[0]!.message, /exit status 3/);
    assert.deepEqual(nodes.get("vm-envoy")!.conditions, []);

    const cli = await runCli([
      "get",
      "nodes",
      "--server",
      server.url,
      "--token",
      server.adminToken,
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    const row = (name: string) => cli.stdout.split("\n").find((l) => l.startsWith(`${name} `));
    assert.match(cli.stdout.split("\n")[0]!, /CONDITIONS$/);
    assert.match(row("vm-none")!, /SidecarNotRunning\(EnvoyNotFound\)$/);
    assert.match(row("vm-crash")!, /SidecarNotRunning\(EnvoyExited\)$/);
    assert.match(row("vm-envoy")!, /\s-$/);
  } catch (error) {
    for (const a of agents) console.error(`--- ${a.proc.name} ---\n${a.proc.output}`);
    throw error;
  } finally {
    await Promise.all(agents.map((a) => a.proc.stop()));
    await server.proc.stop();
    for (const d of [dir, staying.dir, failing.dir, empty, ...agents.map((a) => a.dataDir)]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  }
});
