/**
 * Stopping what you started (issue 14 item 5): a signal sent to the launcher
 * must reach the program. `npx` does not pass signals on (its `sh -c` dies and
 * leaves `deno task` and the program running as orphans), so the README has
 * the quickstart run `deno` itself; these tests hold the two launchers it
 * documents to that: `deno task`, which forwards SIGTERM to the program, and
 * the installed launcher, which `exec`s Deno so that it *is* the program.
 */
import assert from "node:assert/strict";
import { LAUNCHER } from "../cmd/install_artifacts.ts";
import { ROOT, serverArgs, tempDir, waitFor } from "./harness.ts";

async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // A zombie has exited; only its parent has not collected it yet.
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

Deno.test({
  name: "deno task ironmesh server: SIGTERM to the task stops the server, which cleans up",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await tempDir("stop");
    const task = new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "ironmesh", ...serverArgs(dir)],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = task.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let output = "";
    const pump = (async () => {
      for (let r = await stderr.read(); !r.done; r = await stderr.read()) output += r.value;
    })();
    try {
      const info = await waitFor("server.json", async () => {
        return JSON.parse(await Deno.readTextFile(`${dir}/server.json`)) as { pid: number };
      }, 60_000);
      assert.notEqual(info.pid, task.pid, "the server is a child of deno task, not the task");
      assert.ok(await alive(info.pid));

      task.kill("SIGTERM");
      const status = await task.status;
      await pump;
      await waitFor("the server process to end", async () => !(await alive(info.pid)));
      assert.equal(status.code, 0, output);
      // It stopped gracefully: the server removes its server.json on the way out.
      await assert.rejects(Deno.stat(`${dir}/server.json`), Deno.errors.NotFound);
    } finally {
      try {
        task.kill("SIGKILL");
      } catch {
        // Already gone, as it should be.
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the installed launcher execs Deno: its process is the program's", async () => {
  const dir = await tempDir("launcher");
  try {
    const file = `${dir}/ironmesh`;
    await Deno.writeTextFile(
      file,
      // The listener first, then the pid: the test signals as soon as it reads the pid.
      `${LAUNCHER}Deno.addSignalListener("SIGTERM", () => {\n` +
        `  console.log("SIGTERM");\n  Deno.exit(0);\n});\nconsole.log(Deno.pid);\n` +
        `setInterval(() => {}, 1000);\n`,
      { mode: 0o755 },
    );
    // Through sh rather than exec'd directly: a file this process just wrote can be "busy"
    // (ETXTBSY) while parallel tests fork. sh runs the launcher, whose exec replaces sh.
    const child = new Deno.Command("sh", {
      args: [file],
      env: { IRONMESH_DENO: Deno.execPath() },
      stdout: "piped",
      stdin: "null",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const r = await lines.read();
      if (r.done) break;
      text += r.value;
    }
    assert.equal(Number(text.trim()), child.pid);
    child.kill("SIGTERM");
    for (let r = await lines.read(); !r.done; r = await lines.read()) text += r.value;
    assert.equal((await child.status).code, 0);
    assert.match(text, /SIGTERM/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
