/**
 * `bin/ironmesh`, the way to run the CLI from a checkout: quiet (nothing but the program's own
 * output, even on a first run that has to lay out `node_modules`), runnable from any directory,
 * and the program itself as the process, so signals reach it.
 */
import assert from "node:assert/strict";
import { ROOT, serverArgs, tempDir, waitFor } from "./harness.ts";

const LAUNCHER = `${ROOT}bin/ironmesh`;
const decoder = new TextDecoder();

async function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", IRONMESH_DENO: Deno.execPath(), ...options.env },
    stdin: "null",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A copy of the checkout's tracked files without `node_modules`, as a fresh clone has it. */
async function freshCheckout(): Promise<string> {
  const dir = await tempDir("checkout");
  const listed = await new Deno.Command("git", { args: ["ls-files", "-z"], cwd: ROOT }).output();
  assert.equal(listed.code, 0, "git ls-files");
  for (const file of decoder.decode(listed.stdout).split("\0").filter(Boolean)) {
    const target = `${dir}/${file}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(`${ROOT}${file}`, target);
  }
  await Deno.chmod(`${dir}/bin/ironmesh`, 0o755);
  return dir;
}

Deno.test("bin/ironmesh: a first run in a fresh checkout prints only the program's output", async () => {
  const dir = await freshCheckout();
  try {
    // From another directory, with node_modules still to be laid out (the npm packages come from
    // Deno's cache, as on any machine that ran the project once).
    const first = await run(`${dir}/bin/ironmesh`, ["version"], { cwd: "/" });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, "ironmesh 0.1.0\n");
    assert.equal(first.stderr, "", "no download lines, no build-script warning");
    assert.ok(
      (await Deno.stat(`${dir}/node_modules`)).isDirectory,
      "the run laid out node_modules",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno.json: no npm package's build script is left pending", async () => {
  // Without -q, Deno warns about every npm package whose lifecycle script was neither approved
  // nor denied; the only one (protobufjs's postinstall, a version-scheme notice) is denied.
  const dir = await freshCheckout();
  try {
    const out = await run(Deno.execPath(), ["run", "-A", "cmd/main.ts", "version"], { cwd: dir });
    assert.equal(out.code, 0, out.stderr);
    assert.doesNotMatch(out.stderr, /build scripts/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bin/ironmesh: arguments are not echoed, and a signal to it reaches the program", async () => {
  const dir = await tempDir("launcher");
  const child = new Deno.Command(LAUNCHER, {
    args: serverArgs(dir),
    cwd: ROOT,
    env: { NO_COLOR: "1", IRONMESH_DENO: Deno.execPath(), IRONMESH_LOG_FORMAT: "json" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await waitFor("server.json", () => Deno.readTextFile(`${dir}/server.json`).catch(() => null));
    const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
    // The launcher execs Deno: the pid we started is the server itself.
    assert.equal(info.pid, child.pid);
  } finally {
    child.kill("SIGTERM");
  }
  const out = await child.output();
  await Deno.remove(dir, { recursive: true });
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  const stderr = decoder.decode(out.stderr);
  assert.doesNotMatch(stderr, /Task|--data-dir/, "no echo of the command line");
  assert.match(stderr, /Stopped cleanly/);
});
