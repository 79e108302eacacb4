import assert from "node:assert/strict";
import { denoArgs, Proc, serverArgs, ServerProc, tempDir } from "./harness.ts";

/** `ironmesh server` on `dataDir` with every port on 0, as a process the test waits on. */
function serverOn(dataDir: string): Proc {
  return new Proc("second server", denoArgs(serverArgs(dataDir)));
}

Deno.test("a second server on a running server's data directory exits 1 naming it and the holder", async () => {
  const dir = await tempDir("datadir-lock");
  const first = await ServerProc.start(dir);
  try {
    const second = serverOn(dir);
    // Without the lock the second server would start and serve: fail then, don't hang.
    const outcome = await Promise.race([
      second.status,
      second.waitForLine(/server ready/, 60_000).then(() => "started" as const),
    ]);
    if (outcome === "started") await second.stop();
    assert.notEqual(outcome, "started", `the second server started:\n${second.output}`);
    assert.equal((await second.status).code, 1, second.output);
    assert.match(
      second.output,
      new RegExp(
        `Error: Data directory "${dir}" is in use by another Ironmesh server \\(pid ${first.proc.pid}\\)`,
      ),
    );
    // The first server's files are untouched and it still serves.
    const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
    assert.equal(info.pid, first.proc.pid);
    assert.equal((await first.api("GET", "/readyz")).status, 200);
  } finally {
    await first.proc.stop();
  }
  // The lock goes with the process: the directory is free again.
  const again = await ServerProc.start(dir);
  await again.proc.stop();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a server that cannot create its data directory exits 1 with the path and the reason", async () => {
  const dir = await tempDir("datadir-bad");
  await Deno.writeTextFile(`${dir}/file`, "");
  const server = serverOn(`${dir}/file/data`);
  const status = await server.status;
  assert.equal(status.code, 1, server.output);
  assert.match(server.output, new RegExp(`Error: Cannot use data directory "${dir}/file/data": `));
  await Deno.remove(dir, { recursive: true });
});
