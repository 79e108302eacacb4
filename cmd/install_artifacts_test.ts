import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import {
  agentSkeleton,
  installSource,
  LAUNCHER,
  launcherArtifacts,
  runMode,
} from "./install_artifacts.ts";

Deno.test("installSource() serves install.sh and the skeleton its agent_yaml() writes", async () => {
  const source = installSource("file:///opt/ironmesh/cmd/main.ts");
  assert.equal(source.script, await Deno.readTextFile(new URL("../install.sh", import.meta.url)));
  assert.match(source.agentConfig, /^# Ironmesh agent configuration/);
  assert.deepEqual(parseAgentConfig(source.agentConfig, "agent.yaml").services, []);
  assert.throws(() => agentSkeleton("#!/bin/sh\n"), /no agent_yaml\(\) here-document/);
});

Deno.test("runMode() tells a compiled executable, the bundle and a checkout apart", () => {
  assert.equal(runMode("file:///tmp/deno-compile-ironmesh/cmd/main.ts"), "compiled");
  assert.equal(runMode("file:///opt/ironmesh.js"), "bundle");
  assert.equal(runMode("file:///usr/local/bin/ironmesh"), "bundle");
  assert.equal(runMode("file:///src/ironmesh/cmd/main.ts"), "checkout");
});

Deno.test("launcherArtifacts() puts the launcher in front once, for every platform", async () => {
  const bundle = new TextEncoder().encode('console.log("hi");\n');
  const first = launcherArtifacts(bundle);
  assert.deepEqual(first.map((a) => a.name), [
    "ironmesh-linux-x86_64",
    "ironmesh-linux-aarch64",
    "ironmesh-darwin-x86_64",
    "ironmesh-darwin-aarch64",
  ]);
  const bytes = new Uint8Array(await new Response(await first[0]!.open()).arrayBuffer());
  assert.equal(new TextDecoder().decode(bytes), LAUNCHER + 'console.log("hi");\n');
  assert.equal(first[0]!.size, bytes.length);
  // A bundle already behind the launcher (a server run from an installed one) is served as is.
  const again = launcherArtifacts(bytes);
  assert.equal(again[0]!.sha256, first[0]!.sha256);
});

Deno.test("LAUNCHER runs a bundle as a program with its arguments", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/ironmesh`;
    await Deno.writeTextFile(file, LAUNCHER + "console.log(JSON.stringify(Deno.args));\n", {
      mode: 0o755,
    });
    // Through sh: a file this process just wrote can be "busy" (ETXTBSY) while others fork.
    const out = await new Deno.Command("sh", {
      args: [file, "agent", "a b"],
      cwd: dir,
      env: { IRONMESH_DENO: Deno.execPath() },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout), '["agent","a b"]\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
