import assert from "node:assert/strict";
import { jsonLogger } from "../core/log.ts";
import { waitFor } from "./_testing.ts";
import { envoyBootstrap } from "../core/envoy_bootstrap.ts";
import { bootstrapPath, superviseEnvoy, writeBootstrap } from "./envoy.ts";

Deno.test("envoyBootstrap() points ADS at the local xDS endpoint with the node's locality", async () => {
  const bootstrap = envoyBootstrap({
    node: "vm-1",
    labels: { region: "eu-west-1", zone: "eu-west-1a", team: "x" },
    xds: { host: "127.0.0.1", port: 15010 },
  });
  assert.deepEqual(bootstrap.node, {
    id: "vm-1",
    cluster: "vm-1",
    metadata: { IRONMESH_PROXY: "sidecar" },
    locality: { region: "eu-west-1", zone: "eu-west-1a" },
  });
  const text = JSON.stringify(bootstrap);
  assert.match(text, /"address":"127\.0\.0\.1","port_value":15010/);
  assert.match(text, /"address":"127\.0\.0\.1","port_value":15000/);
  assert.doesNotMatch(text, /transport_socket/, "plaintext on loopback; the relay adds mTLS");
  assert.deepEqual(
    envoyBootstrap({ node: "n", labels: {}, xds: { host: "127.0.0.1", port: 1 } }).node,
    { id: "n", cluster: "n", metadata: { IRONMESH_PROXY: "sidecar" }, locality: {} },
  );

  const dir = await Deno.makeTempDir();
  try {
    const path = await writeBootstrap(dir, bootstrap);
    assert.equal(path, bootstrapPath(dir));
    assert.equal(path, `${dir}/envoy/bootstrap.json`);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), bootstrap);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("superviseEnvoy() restarts a crashed Envoy, forwards its output, stops it on abort", async () => {
  const dir = await Deno.makeTempDir();
  // A fake "envoy": prints its arguments, exits with status 3 on its first run, then stays up
  // until SIGTERM.
  const fake = `${dir}/fake-envoy.sh`;
  await Deno.writeTextFile(
    fake,
    `#!/bin/sh
echo "fake-envoy args: $*"
if [ ! -e "${dir}/crashed-once" ]; then
  touch "${dir}/crashed-once"
  echo "fake-envoy crashing" >&2
  exit 3
fi
trap 'echo "fake-envoy got SIGTERM"; exit 0' TERM
echo "fake-envoy up"
while :; do sleep 0.05; done
`,
  );
  await Deno.chmod(fake, 0o755);
  const lines: string[] = [];
  const logs = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const output = () => logs().filter((l) => l.msg === "envoy").map((l) => l.line);
  const controller = new AbortController();
  const done = superviseEnvoy({
    binary: fake,
    bootstrap: `${dir}/envoy/bootstrap.json`,
    log: jsonLogger((l) => lines.push(l)),
    random: () => 0.5,
    backoff: { baseMs: 200, capMs: 1_000 },
  }, controller.signal);
  try {
    await waitFor(() => output().includes("fake-envoy up"), "the second run to stay up", 5_000);
    const pidOf = (msg: string) => logs().filter((l) => l.msg === msg).map((l) => l.pid);
    const started = pidOf("Envoy started");
    assert.equal(started.length, 2);
    assert.deepEqual(output().filter((l) => String(l).startsWith("fake-envoy args")), [
      `fake-envoy args: -c ${dir}/envoy/bootstrap.json`,
      `fake-envoy args: -c ${dir}/envoy/bootstrap.json`,
    ]);
    assert.ok(
      logs().some((l) =>
        l.msg === "envoy" && l.stream === "stderr" && l.line === "fake-envoy crashing"
      ),
    );
    const restart = logs().find((l) => l.msg === "Envoy exited; restarting");
    assert.equal(restart?.outcome, "exit status 3");
    assert.equal(restart?.level, "warn");

    controller.abort();
    await done;
    assert.ok(output().includes("fake-envoy got SIGTERM"));
    assert.equal(logs().at(-1)?.msg, "Envoy stopped");
    assert.equal(logs().at(-1)?.outcome, "exit status 0");
    // The process is gone: signalling it fails.
    assert.throws(() => Deno.kill(started[1] as number, "SIGCONT"));
  } finally {
    controller.abort();
    await done;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("superviseEnvoy() keeps retrying a binary that cannot start", async () => {
  const lines: string[] = [];
  const controller = new AbortController();
  const done = superviseEnvoy({
    binary: "/nonexistent/envoy",
    bootstrap: "/nonexistent/bootstrap.json",
    log: jsonLogger((l) => lines.push(l)),
    random: () => 0,
    backoff: { baseMs: 10, capMs: 10 },
  }, controller.signal);
  await waitFor(() => lines.length >= 2, "two failed starts");
  controller.abort();
  await done;
  const first = JSON.parse(lines[0]!);
  assert.equal(first.msg, "Envoy exited; restarting");
  assert.match(first.outcome, /^cannot start: /);
});
