/**
 * Installing an agent from the server itself, end to end: a real server (run
 * from this checkout, so it builds the bundle it hands out), the line that
 * `ironmesh token create --kind join --print-install` prints, run verbatim by
 * `sh` in the installer's `--root` test mode (a `sudo` on `PATH` that only
 * runs its arguments), and the installed launcher started as the unit would
 * start it: it enrols and registers. The same line with another root in it
 * downloads nothing.
 */
import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import { LAUNCHER } from "../cmd/install_artifacts.ts";
import { ROOT, runCli, ServerProc, tempDir, waitFor } from "./harness.ts";

async function sh(
  line: string,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", line],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function otherRootPem(dir: string): Promise<string[]> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${dir}/other.key`,
      "-out",
      `${dir}/other.pem`,
      "-subj",
      "/CN=someone else's root",
      "-days",
      "1",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return (await Deno.readTextFile(`${dir}/other.pem`)).trim().split("\n");
}

const HAS_OPENSSL = await new Deno.Command("sh", { args: ["-c", "command -v openssl curl"] })
  .output().then((o) => o.code === 0, () => false);

Deno.test({
  name: "install from the server: the printed line installs an agent that enrols and registers",
  ignore: !HAS_OPENSSL,
  async fn() {
    const dir = await tempDir("install-server");
    const server = await ServerProc.start(`${dir}/server`);
    try {
      // What the server hands out besides the program.
      const script = await (await fetch(`${server.url}/install.sh`)).text();
      assert.equal(script, await Deno.readTextFile(`${ROOT}install.sh`));
      const skeleton = await (await fetch(`${server.url}/install/agent.yaml`)).text();
      assert.deepEqual(parseAgentConfig(skeleton, "agent.yaml").services, []);
      const missing = await server.api("GET", "/install/ironmesh-plan9-mips", { token: null });
      assert.equal(missing.status, 404);
      assert.match(
        missing.body.detail,
        /has no program "ironmesh-plan9-mips".*ironmesh-linux-x86_64/,
      );

      const created = await runCli([
        "token",
        "create",
        "--kind",
        "join",
        "--service-account",
        "web",
        "--node",
        "vm-installed",
        "--print-install",
        "--server",
        server.url,
        "--token",
        server.adminToken,
      ]);
      assert.equal(created.code, 0, created.stderr);
      const line = created.stdout.trim();
      assert.equal(line.split("\n").length, 1, "one line");
      assert.ok(line.includes(`--server '${server.tlsUrl}'`), line);
      const token = line.match(/--join-token '([^']+)'$/)?.[1];
      assert.ok(token, line);

      // A sudo that only runs its arguments: --root needs no privileges.
      await Deno.mkdir(`${dir}/bin`);
      await Deno.writeTextFile(`${dir}/bin/sudo`, '#!/bin/sh\nexec "$@"\n', { mode: 0o755 });
      const root = `${dir}/root`;
      await Deno.mkdir(root);
      const env = {
        PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
        TMPDIR: dir,
        LC_ALL: "C",
      };

      // The same line with someone else's root: curl refuses the server, nothing is installed.
      const forged = line.replace(
        /printf '%s\\n' .*? >"\$d\/ca\.pem"/,
        `printf '%s\\n' ${(await otherRootPem(dir)).map((l) => `'${l}'`).join(" ")} >"$d/ca.pem"`,
      );
      assert.notEqual(forged, line);
      const refused = await sh(`${forged} --root ${root} --no-start`, env);
      assert.notEqual(refused.code, 0, refused.output);
      assert.match(refused.output, /curl: \(60\)/, "refused by certificate verification");
      assert.deepEqual([...Deno.readDirSync(root)], [], "nothing installed");

      const installed = await sh(`${line} --root ${root} --no-start`, env);
      assert.equal(installed.code, 0, installed.output);
      assert.match(installed.output, /verified ironmesh-linux-/);
      const program = `${root}/usr/local/bin/ironmesh`;
      const head = new TextDecoder().decode((await Deno.readFile(program)).slice(0, 200));
      assert.ok(head.startsWith(LAUNCHER), head);
      assert.equal(await Deno.readTextFile(`${root}/etc/ironmesh/join.token`), `${token}\n`);
      const unit = await Deno.readTextFile(`${root}/etc/systemd/system/ironmesh-agent.service`);
      assert.match(unit, new RegExp(`--server ${server.tlsUrl.replaceAll(".", "\\.")}\\n`));

      // Started as the unit starts it (paths under --root), the agent enrols and registers.
      const config = `${root}/etc/ironmesh/agent.yaml`;
      await Deno.writeTextFile(
        config,
        (await Deno.readTextFile(config)).replace("node: {}", "node: {name: vm-installed}"),
      );
      const agent = new Deno.Command(program, {
        args: [
          "agent",
          "--config",
          config,
          "--data-dir",
          `${root}/var/lib/ironmesh`,
          "--join-token-file",
          `${root}/etc/ironmesh/join.token`,
          "--server",
          server.tlsUrl,
          "--dns-addr",
          "127.0.0.1:0",
          "--metrics-addr",
          "127.0.0.1:0",
          "--local-xds-addr",
          "127.0.0.1:0",
        ],
        env: { IRONMESH_DENO: Deno.execPath(), NO_COLOR: "1", DENO_DIR: `${dir}/deno-dir` },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        await waitFor("the installed agent's node", async () => {
          const node = await server.api("GET", "/v1/nodes/vm-installed");
          return node.status === 200 && node.body.status === "alive";
        }, 60_000);
      } finally {
        // The launcher execs Deno, so this signal reaches the agent itself.
        agent.kill("SIGTERM");
        const out = await agent.output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      }
    } finally {
      await server.proc.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
