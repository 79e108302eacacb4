/**
 * `install.sh` as users run it: real `sh` processes against a temporary
 * `--root`, with a locally made fake release artifact (a shell script) and its
 * SHA256SUMS. Checks where files land and with which modes, upgrades,
 * uninstall, dry runs, failures, and that the generated systemd units pass
 * `systemd-analyze verify` and `shellcheck -s sh` is clean.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseAgentConfig } from "../core/agent_config.ts";
import { serverConfigSchema } from "../core/server_config.ts";
import { parseConfigText } from "../core/validate.ts";

const SCRIPT = fileURLToPath(new URL("../install.sh", import.meta.url));
const SERVER_URL = "https://mesh.example.com:15443";
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ2bS0xIn0.c2lnbmF0dXJl";
/** Every run pins the platform, so the tests do not depend on the machine's. */
const PLATFORM = { IRONMESH_UNAME_S: "Linux", IRONMESH_UNAME_M: "x86_64" };

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function exec(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Result> {
  const child = new Deno.Command(cmd, {
    args,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      TMPDIR: Deno.env.get("TMPDIR") ?? "/tmp",
      LC_ALL: "C",
      ...options.env,
    },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Runs `sh install.sh ARGS`. */
function install(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return exec("sh", [SCRIPT, ...args], { env: { ...PLATFORM, ...env } });
}

function ok(result: Result, what: string): Result {
  assert.equal(result.code, 0, `${what} failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

async function has(command: string): Promise<boolean> {
  return (await exec("sh", ["-c", `command -v ${command}`])).code === 0;
}

const SYSTEMD_ANALYZE = await has("systemd-analyze");
const SHELLCHECK = await has("shellcheck");
const CURL = await has("curl");
const IS_ROOT = Deno.uid() === 0;
const SETPRIV = await has("setpriv");

/** A temporary directory with `root/` (the install root) and `dist/` (the release). */
interface Fixture {
  dir: string;
  root: string;
  dist: string;
  /** `dist/ironmesh-linux-x86_64`, listed in `dist/SHA256SUMS`. */
  binary: string;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes fake artifacts (scripts that print their version and arguments) and SHA256SUMS. */
async function release(dist: string, version: string, names: string[]): Promise<void> {
  await Deno.mkdir(dist, { recursive: true });
  const lines = [];
  for (const name of names) {
    await Deno.writeTextFile(
      `${dist}/${name}`,
      `#!/bin/sh\necho "fake ironmesh ${version}: $*"\n`,
      { mode: 0o755 },
    );
    lines.push(`${await sha256(`${dist}/${name}`)}  ${name}\n`);
  }
  await Deno.writeTextFile(`${dist}/SHA256SUMS`, lines.join(""));
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ironmesh-install-" });
  try {
    const f = { dir, root: `${dir}/root`, dist: `${dir}/dist`, binary: "" };
    f.binary = `${f.dist}/ironmesh-linux-x86_64`;
    await Deno.mkdir(f.root);
    await release(f.dist, "v1", ["ironmesh-linux-x86_64"]);
    await fn(f);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every path under `dir` with its mode and (for files) content or (for links) target. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(`${dir}${rel}`)) {
      const path = `${rel}/${entry.name}`;
      const info = await Deno.lstat(`${dir}${path}`);
      const mode = ((info.mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
      if (info.isSymlink) out.set(path, `link -> ${await Deno.readLink(`${dir}${path}`)}`);
      else if (info.isDirectory) {
        out.set(path, `dir ${mode}`);
        await walk(path);
      } else out.set(path, `file ${mode} ${await Deno.readTextFile(`${dir}${path}`)}`);
    }
  };
  await walk("");
  return out;
}

async function modeOf(path: string): Promise<string> {
  return (((await Deno.stat(path)).mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** A failing run: exit code, the `install.sh: error:` line, and nothing written under root. */
async function assertCleanFailure(
  result: Result,
  root: string,
  message: RegExp,
  code = 1,
): Promise<void> {
  assert.equal(result.code, code, `expected exit ${code}:\n${result.stdout}\n${result.stderr}`);
  assert.match(result.stderr, /^install\.sh: error: /m);
  assert.match(result.stderr, message);
  assert.deepEqual([...(await snapshot(root)).keys()], [], "nothing installed");
}

function serverArgs(f: Fixture, ...extra: string[]): string[] {
  return ["server", "--root", f.root, "--binary", f.binary, ...extra];
}

function agentArgs(f: Fixture, ...extra: string[]): string[] {
  return [
    "agent",
    "--root",
    f.root,
    "--binary",
    f.binary,
    "--server",
    SERVER_URL,
    "--join-token",
    TOKEN,
    ...extra,
  ];
}

/** Makes `--root` look like a host where systemd runs (install.sh then prints systemctl calls). */
async function fakeSystemd(f: Fixture): Promise<void> {
  await Deno.mkdir(`${f.root}/run/systemd/system`, { recursive: true });
}

Deno.test({
  name: "install.sh: shellcheck -s sh reports nothing",
  ignore: !SHELLCHECK,
  async fn() {
    const result = await exec("shellcheck", ["-s", "sh", SCRIPT]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  },
});

Deno.test("install.sh server: files land where documented, with the documented modes", async () => {
  await withFixture(async (f) => {
    const run = ok(await install(serverArgs(f, "--no-start")), "install");
    assert.match(run.stdout, /installed ironmesh server under /);
    assert.match(run.stdout, /--root: not creating the system user 'ironmesh'/);
    assert.match(run.stdout, /--root: not running: chown ironmesh:ironmesh .*\/var\/lib\/ironmesh/);

    const r = f.root;
    assert.equal(await modeOf(`${r}/usr/local/bin/ironmesh`), "0755");
    assert.equal(await modeOf(`${r}/etc/ironmesh`), "0750");
    assert.equal(await modeOf(`${r}/etc/ironmesh/server.yaml`), "0640");
    assert.equal(await modeOf(`${r}/var/lib/ironmesh`), "0700");
    assert.equal(await modeOf(`${r}/etc/systemd/system/ironmesh-server.service`), "0644");
    assert.equal(await sha256(`${r}/usr/local/bin/ironmesh`), await sha256(f.binary));
    const version = await exec(`${r}/usr/local/bin/ironmesh`, ["version"]);
    assert.equal(version.stdout, "fake ironmesh v1: version\n");

    // The configuration is one the real server accepts.
    const yaml = await Deno.readTextFile(`${r}/etc/ironmesh/server.yaml`);
    const config = parseConfigText(yaml, "server.yaml", serverConfigSchema);
    assert.equal(config.dataDir, "/var/lib/ironmesh");

    const unit = await Deno.readTextFile(`${r}/etc/systemd/system/ironmesh-server.service`);
    for (
      const line of [
        "ExecStart=/usr/local/bin/ironmesh server --config /etc/ironmesh/server.yaml",
        "User=ironmesh",
        "Environment=NO_COLOR=1",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/ironmesh",
        "Restart=on-failure",
        "RestartSec=2",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "LimitNOFILE=65536",
        "WantedBy=multi-user.target",
      ]
    ) assert.ok(unit.split("\n").includes(line), `unit has ${line}`);
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=/m, "V8 needs W+X memory for its JIT");
  });
});

Deno.test("install.sh agent: token 0600, new token from a file, agent.yaml valid, --prefix kept", async () => {
  await withFixture(async (f) => {
    ok(await install(agentArgs(f, "--no-start", "--prefix", "/opt/ironmesh")), "install");
    const r = f.root;
    assert.equal(await modeOf(`${r}/opt/ironmesh/bin/ironmesh`), "0755");
    assert.equal(await modeOf(`${r}/etc/ironmesh/join.token`), "0600");
    assert.equal(await Deno.readTextFile(`${r}/etc/ironmesh/join.token`), `${TOKEN}\n`);
    assert.equal(await modeOf(`${r}/etc/ironmesh/agent.yaml`), "0640");
    const config = parseAgentConfig(
      await Deno.readTextFile(`${r}/etc/ironmesh/agent.yaml`),
      "agent.yaml",
    );
    assert.deepEqual(config.services, []);
    const unit = await Deno.readTextFile(`${r}/etc/systemd/system/ironmesh-agent.service`);
    assert.ok(
      unit.includes(
        "\nExecStart=/opt/ironmesh/bin/ironmesh agent --config /etc/ironmesh/agent.yaml" +
          " --data-dir /var/lib/ironmesh --join-token-file /etc/ironmesh/join.token" +
          ` --server ${SERVER_URL}\n`,
      ),
      unit,
    );
    assert.ok(!unit.includes(TOKEN), "the token stays out of the unit");
    // An agent that dies (a native abort too: SIGABRT is a failure) is started again.
    for (const line of ["Restart=on-failure", "RestartSec=2"]) {
      assert.ok(unit.split("\n").includes(line), `unit has ${line}`);
    }
    assert.ok(!(await exists(`${r}/etc/ironmesh/server.yaml`)));

    // A new token from a file replaces the old one; the server URL is kept from the unit.
    await Deno.writeTextFile(`${f.dir}/new.token`, "  second.token-value \n");
    ok(
      await install([
        "agent",
        "--root",
        r,
        "--binary",
        f.binary,
        "--join-token-file",
        `${f.dir}/new.token`,
        "--no-start",
      ]),
      "re-run with a token file",
    );
    assert.equal(await Deno.readTextFile(`${r}/etc/ironmesh/join.token`), "second.token-value\n");
    assert.equal(
      await Deno.readTextFile(`${r}/etc/systemd/system/ironmesh-agent.service`),
      unit,
      "unit unchanged, --prefix kept",
    );
    ok(await install(["--uninstall", "--root", r]), "uninstall");
    assert.ok(!(await exists(`${r}/opt/ironmesh/bin/ironmesh`)), "binary under --prefix removed");
  });
});

Deno.test({
  name: "install.sh: systemd-analyze verify accepts both units; exposure at most 2.0",
  ignore: !SYSTEMD_ANALYZE,
  async fn() {
    await withFixture(async (f) => {
      ok(await install(serverArgs(f, "--no-start")), "server");
      ok(await install(agentArgs(f, "--no-start")), "agent");
      // verify checks that ExecStart's program exists: point it at the installed fake.
      const units = `${f.dir}/units`;
      await Deno.mkdir(units);
      const paths = [];
      for (const name of ["ironmesh-server.service", "ironmesh-agent.service"]) {
        const text = await Deno.readTextFile(`${f.root}/etc/systemd/system/${name}`);
        const copy = text.replace(
          "\nExecStart=/usr/local/bin/ironmesh ",
          `\nExecStart=${f.root}/usr/local/bin/ironmesh `,
        );
        assert.notEqual(copy, text);
        await Deno.writeTextFile(`${units}/${name}`, copy);
        paths.push(`${units}/${name}`);
      }
      const verify = await exec("systemd-analyze", ["verify", "--man=no", ...paths]);
      assert.equal(verify.code, 0, verify.stderr);
      // verify only warns (exit 0) on unknown keys or bad values: demand silence.
      assert.equal(verify.stderr.trim(), "", "no warnings");
      for (const path of paths) {
        const security = await exec("systemd-analyze", [
          "security",
          "--offline=yes",
          "--man=no",
          "--threshold=20",
          path,
        ]);
        assert.equal(security.code, 0, `${path}: ${security.stdout}${security.stderr}`);
      }
    });
  },
});

Deno.test("install.sh: re-run is idempotent, keeps config and data, upgrades atomically", async () => {
  await withFixture(async (f) => {
    await fakeSystemd(f);
    const first = ok(await install(serverArgs(f)), "install");
    assert.match(first.stdout, /--root: not running: systemctl daemon-reload/);
    assert.match(
      first.stdout,
      /--root: not running: systemctl enable --now ironmesh-server\.service/,
    );
    const installed = await snapshot(f.root);

    const again = ok(await install(serverArgs(f)), "re-run");
    assert.deepEqual(await snapshot(f.root), installed, "same files, modes and contents");
    assert.doesNotMatch(again.stdout, /restart|daemon-reload/, "nothing changed: no restart");
    assert.match(again.stdout, /upgraded ironmesh server/);

    // Local edits and data survive an upgrade to a new binary.
    const config = `${f.root}/etc/ironmesh/server.yaml`;
    const edited = (await Deno.readTextFile(config)) + "logLevel: warn\n";
    await Deno.writeTextFile(config, edited);
    await Deno.writeTextFile(`${f.root}/var/lib/ironmesh/ironmesh.db`, "data");
    await release(f.dist, "v2", ["ironmesh-linux-x86_64"]);
    const upgrade = ok(await install(serverArgs(f)), "upgrade");
    assert.match(upgrade.stdout, /installed .*\/usr\/local\/bin\/ironmesh \(mode 0755\)/);
    assert.match(upgrade.stdout, /--root: not running: systemctl restart ironmesh-server\.service/);
    assert.equal(await Deno.readTextFile(config), edited);
    assert.equal(await Deno.readTextFile(`${f.root}/var/lib/ironmesh/ironmesh.db`), "data");
    const version = await exec(`${f.root}/usr/local/bin/ironmesh`, ["version"]);
    assert.equal(version.stdout, "fake ironmesh v2: version\n");
    const after = await snapshot(f.root);
    assert.deepEqual(
      [...after.keys()].sort(),
      [...installed.keys(), "/var/lib/ironmesh/ironmesh.db"].sort(),
      "no temporary files left",
    );
  });
});

Deno.test("install.sh --uninstall keeps config and data; --purge removes them", async () => {
  await withFixture(async (f) => {
    await fakeSystemd(f);
    ok(await install(serverArgs(f)), "server");
    ok(await install(agentArgs(f)), "agent");
    await Deno.writeTextFile(`${f.root}/var/lib/ironmesh/ironmesh.db`, "data");
    const unitDir = `${f.root}/etc/systemd/system`;

    // One role: its unit goes, the binary stays for the other.
    const agent = ok(await install(["agent", "--uninstall", "--root", f.root]), "uninstall agent");
    assert.match(agent.stdout, /not running: systemctl disable --now ironmesh-agent\.service/);
    assert.match(agent.stdout, /kept .*\/usr\/local\/bin\/ironmesh: still used by ironmesh-server/);
    assert.ok(!(await exists(`${unitDir}/ironmesh-agent.service`)));
    assert.ok(await exists(`${unitDir}/ironmesh-server.service`));
    assert.ok(await exists(`${f.root}/usr/local/bin/ironmesh`));

    const all = ok(await install(["--uninstall", "--root", f.root]), "uninstall");
    assert.match(all.stdout, /not running: systemctl disable --now ironmesh-server\.service/);
    assert.ok(!(await exists(`${unitDir}/ironmesh-server.service`)));
    assert.ok(!(await exists(`${f.root}/usr/local/bin/ironmesh`)));
    assert.ok(await exists(`${f.root}/etc/ironmesh/server.yaml`));
    assert.ok(await exists(`${f.root}/etc/ironmesh/join.token`));
    assert.equal(await Deno.readTextFile(`${f.root}/var/lib/ironmesh/ironmesh.db`), "data");

    // Again: nothing left to do is not an error.
    ok(await install(["--uninstall", "--root", f.root]), "second uninstall");

    ok(await install(["--uninstall", "--purge", "--root", f.root]), "purge");
    assert.ok(!(await exists(`${f.root}/etc/ironmesh`)));
    assert.ok(!(await exists(`${f.root}/var/lib/ironmesh`)));
  });
});

Deno.test("install.sh --dry-run prints every action and changes nothing", async () => {
  await withFixture(async (f) => {
    const fresh = ok(await install(serverArgs(f, "--no-start", "--dry-run")), "dry run");
    assert.deepEqual([...(await snapshot(f.root)).keys()], []);
    for (
      const action of [
        /would install .*\/usr\/local\/bin\/ironmesh \(mode 0755\)/,
        /would write .*\/etc\/ironmesh\/server\.yaml \(mode 0640\)/,
        /would run: mkdir -p .*\/var\/lib\/ironmesh/,
        /would run: chown ironmesh:ironmesh .*\/var\/lib\/ironmesh/,
        /would write .*\/etc\/systemd\/system\/ironmesh-server\.service \(mode 0644\)/,
        /dry-run: nothing was changed/,
      ]
    ) assert.match(fresh.stdout, action);

    await fakeSystemd(f);
    ok(await install(serverArgs(f)), "install");
    await release(f.dist, "v2", ["ironmesh-linux-x86_64"]);
    const before = await snapshot(f.root);
    const upgrade = ok(await install(serverArgs(f, "--dry-run")), "dry-run upgrade");
    assert.match(upgrade.stdout, /would run: systemctl restart ironmesh-server\.service/);
    const uninstall = ok(
      await install(["--uninstall", "--purge", "--dry-run", "--root", f.root]),
      "dry-run purge",
    );
    assert.match(uninstall.stdout, /would run: rm -rf .*\/var\/lib\/ironmesh/);
    assert.deepEqual(await snapshot(f.root), before);
  });
});

Deno.test({
  name: "install.sh: downloads from --base-url and runs piped into sh -s (curl | sh)",
  ignore: !CURL,
  async fn() {
    await withFixture(async (f) => {
      await release(f.dist, "v1", ["ironmesh-linux-x86_64", "ironmesh-darwin-aarch64"]);
      const script = await Deno.readTextFile(SCRIPT);
      const piped = await exec(
        "sh",
        ["-s", "--", "server", "--root", f.root, "--no-start", "--base-url", `file://${f.dist}`],
        { stdin: script, env: PLATFORM },
      );
      ok(piped, "piped install");
      assert.match(piped.stdout, /verified ironmesh-linux-x86_64/);
      assert.equal(await sha256(`${f.root}/usr/local/bin/ironmesh`), await sha256(f.binary));

      // arm64 on macOS maps to the aarch64 artifact; macOS gets no systemd unit.
      const mac = { IRONMESH_UNAME_S: "Darwin", IRONMESH_UNAME_M: "arm64" };
      const macRoot = `${f.dir}/mac`;
      await Deno.mkdir(macRoot);
      const args = ["agent", "--root", macRoot, "--server", SERVER_URL, "--join-token", TOKEN];
      const env = { ...mac, IRONMESH_BASE_URL: `file://${f.dist}/` };
      await assertCleanFailure(await install(args, env), macRoot, /macOS has no systemd/);
      ok(await install([...args, "--no-start"], env), "macOS install");
      assert.equal(
        await sha256(`${macRoot}/usr/local/bin/ironmesh`),
        await sha256(`${f.dist}/ironmesh-darwin-aarch64`),
      );
      assert.ok(!(await exists(`${macRoot}/etc/systemd`)));
    });
  },
});

Deno.test("install.sh: bad arguments fail with a clear message and install nothing", async () => {
  await withFixture(async (f) => {
    const cases: [string[], RegExp][] = [
      [serverArgs(f, "--bogus"), /unknown option '--bogus'/],
      [serverArgs(f, "--no-start=yes"), /option --no-start takes no value/],
      [["--root", f.root, "--binary", f.binary], /say what to install/],
      [["server", "agent", "--root", f.root], /give one role/],
      [serverArgs(f, "--prefix"), /option --prefix needs a value/],
      [serverArgs(f, "--prefix", "usr"), /--prefix must be an absolute path/],
      [serverArgs(f, "--purge"), /--purge goes with --uninstall/],
      [serverArgs(f, "--server", SERVER_URL), /--server is an agent option/],
      [["--uninstall", "--root", f.root, "--binary", f.binary], /does not apply to --uninstall/],
      [serverArgs(f, "--sha256", "abc"), /--sha256 must be 64 hexadecimal digits/],
      [
        ["agent", "--root", f.root, "--binary", f.binary, "--join-token", TOKEN],
        /agent needs --server URL/,
      ],
      [
        ["agent", "--root", f.root, "--binary", f.binary, "--server", SERVER_URL],
        /agent needs --join-token TOKEN/,
      ],
      [
        agentArgs(f).map((a) => a === SERVER_URL ? "http://mesh.example.com:15080" : a),
        /--server must be an https:\/\/ URL/,
      ],
      [
        agentArgs(f).map((a) => a === TOKEN ? "two words" : a),
        /--join-token must not contain spaces/,
      ],
      [serverArgs(f, "--base-url", "https://mirror"), /give --binary or --base-url, not both/],
      [serverArgs(f, "--ca-file", `${f.dir}/ca.pem`), /give --binary or --ca-file, not both/],
      [["server", "--root", f.root, "--base-url", "http://mirror"], /--base-url must be an https/],
    ];
    for (const [args, message] of cases) {
      await assertCleanFailure(await install(args), f.root, message, 2);
    }
  });
});

Deno.test("install.sh: bad checksum, platform or missing systemd fail cleanly", async () => {
  await withFixture(async (f) => {
    const fail = async (args: string[], message: RegExp, env: Record<string, string> = {}) =>
      await assertCleanFailure(await install(args, env), f.root, message);

    await fail(serverArgs(f, "--no-start", "--sha256", "0".repeat(64)), /checksum mismatch/);
    await Deno.writeTextFile(f.binary, "#!/bin/sh\necho tampered\n");
    await fail(
      serverArgs(f, "--no-start"),
      /checksum mismatch for ironmesh-linux-x86_64: expected [0-9a-f]{64} \(from .*SHA256SUMS\)/,
    );
    await fail(
      serverArgs(f, "--no-start"),
      /unsupported architecture 'sparc64'/,
      { IRONMESH_UNAME_M: "sparc64" },
    );
    await fail(
      serverArgs(f, "--no-start"),
      /unsupported operating system 'FreeBSD'/,
      { IRONMESH_UNAME_S: "FreeBSD" },
    );
    await fail(serverArgs(f), /systemd is not running on this host .*--no-start/);
    await Deno.remove(`${f.dist}/SHA256SUMS`);
    await fail(serverArgs(f, "--no-start"), /no checksum for --binary/);
    await fail(["server", "--root", `${f.dir}/missing`, "--no-start"], /is not a directory/);
  });
});

Deno.test({
  name: "install.sh: refuses to run without root unless --root is given",
  ignore: IS_ROOT && !SETPRIV,
  async fn() {
    await withFixture(async (f) => {
      // As root, drop to nobody for the run; otherwise the test already is not root.
      // The script comes on stdin (as with curl | sh), so nobody need not read the checkout.
      const args = ["sh", "-s", "--", "server", "--binary", f.binary, "--no-start"];
      const result = IS_ROOT
        ? await exec("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...args], {
          env: PLATFORM,
          stdin: await Deno.readTextFile(SCRIPT),
        })
        : await exec(args[0]!, args.slice(1), {
          env: PLATFORM,
          stdin: await Deno.readTextFile(SCRIPT),
        });
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stderr, /^install\.sh: error: must run as root/m);
    });
  },
});
