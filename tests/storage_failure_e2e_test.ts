/**
 * Storage failures of the real server say what happened (issue 14 item 2): its data directory on
 * a small tmpfs that is filled up or remounted read-only, or on an ext4 image that turns
 * read-only while the server runs. Writes are refused with a 503
 * problem+json of the storage type with the cause and `Retry-After`, nothing partial is stored,
 * `/readyz` answers 503 until writes work again, and a start on such a directory exits 1 naming
 * it. Needs root (mount, loop devices); every mount is undone in `finally`.
 */
import assert from "node:assert/strict";
import { denoArgs, Proc, serverArgs, ServerProc, tempDir } from "./harness.ts";

const STORAGE_TYPE = "https://ironmesh.io/problems/storage-unavailable";

async function run(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A tmpfs of `size` on a new directory; the data directory is inside it. */
async function withTmpfs(size: string, fn: (mount: string, dataDir: string) => Promise<void>) {
  const mount = await tempDir("storage");
  await run("mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", mount);
  try {
    await fn(mount, `${mount}/data`);
  } finally {
    await run("umount", "-l", mount).catch(() => {});
    await Deno.remove(mount, { recursive: true });
  }
}

/** Writes zeros to `file` until the file system is full. */
async function fill(file: string): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true });
  const chunk = new Uint8Array(64 * 1024);
  try {
    while (true) await f.write(chunk);
  } catch (error) {
    assert.equal((error as { code?: string }).code, "ENOSPC", String(error));
  } finally {
    f.close();
  }
}

/** The checks of a refused write: 503, the storage type, the cause in words, `Retry-After`. */
async function assertWriteRefused(server: ServerProc, name: string, cause: RegExp) {
  const write = await server.api("PUT", `/v1/services/default/${name}`, { body: {} });
  assert.equal(write.status, 503, JSON.stringify(write.body));
  assert.equal(write.headers.get("content-type"), "application/problem+json");
  assert.equal(write.body.type, STORAGE_TYPE);
  assert.equal(write.body.title, "Storage unavailable");
  assert.match(write.body.detail, new RegExp(`SQLite database "${server.dataDir}/ironmesh.db"`));
  assert.match(write.body.detail, cause);
  assert.equal(write.headers.get("retry-after"), "5");
  // Nothing partial was stored.
  assert.equal((await server.api("GET", `/v1/services/default/${name}`)).status, 404);
  const ready = await server.api("GET", "/readyz");
  assert.equal(ready.status, 503, JSON.stringify(ready.body));
  assert.equal(ready.body.type, STORAGE_TYPE);
  // The log has the cause, not a failed ROLLBACK, and no stack trace.
  assert.match(server.proc.output, /Request failed: storage unavailable/);
  assert.doesNotMatch(server.proc.output, /no transaction is active/);
  assert.doesNotMatch(server.proc.output, /"stack"/);
}

Deno.test("a full disk: writes get 503 storage-unavailable with the cause, /readyz 503, both recover when space is freed", async () => {
  await withTmpfs("24m", async (mount, dataDir) => {
    const server = await ServerProc.start(dataDir);
    try {
      const first = await server.api("PUT", "/v1/services/default/web", { body: {} });
      assert.equal(first.status, 201, JSON.stringify(first.body));
      assert.equal((await server.api("GET", "/readyz")).status, 200);
      await fill(`${mount}/filler`);
      await assertWriteRefused(server, "api", /full|I\/O error/);

      await Deno.remove(`${mount}/filler`);
      const ready = await server.api("GET", "/readyz");
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      const again = await server.api("PUT", "/v1/services/default/api", { body: {} });
      assert.equal(again.status, 201, JSON.stringify(again.body));
    } finally {
      await Deno.remove(`${mount}/filler`).catch(() => {});
      const status = await server.proc.stop();
      assert.equal(status.code, 0, server.proc.output);
    }
  });
});

/**
 * An ext4 image on a loop device, mounted `errors=remount-ro`, on a new directory: a tmpfs cannot
 * be remounted read-only while the server holds its database open for writing ("mount point is
 * busy"), but ext4 turns read-only under open files on an error, as a failing disk does. The
 * switch is one-way until unmounted, so this case cannot show the recovery (the full disk does).
 */
async function withExt4(fn: (mount: string, readOnly: () => Promise<void>) => Promise<void>) {
  const mount = await tempDir("storage-ext4");
  const image = `${mount}.img`;
  await Deno.writeFile(image, new Uint8Array());
  await Deno.truncate(image, 64 * 1024 * 1024);
  await run("mkfs.ext4", "-q", image);
  await run("mount", "-o", "loop,errors=remount-ro", image, mount);
  try {
    const source = (await new Deno.Command("findmnt", { args: ["-n", "-o", "SOURCE", mount] })
      .output()).stdout;
    const device = new TextDecoder().decode(source).trim().replace(/^\/dev\//, "");
    await fn(mount, async () => {
      await Deno.writeTextFile(`/sys/fs/ext4/${device}/trigger_fs_error`, "ironmesh test");
    });
  } finally {
    await run("umount", "-l", mount).catch(() => {});
    await Deno.remove(mount, { recursive: true });
    await Deno.remove(image);
  }
}

Deno.test("a data directory turned read-only: writes get 503 storage-unavailable with the cause, /readyz 503, the server still stops cleanly", async () => {
  await withExt4(async (mount, readOnly) => {
    const server = await ServerProc.start(`${mount}/data`);
    try {
      assert.equal(
        (await server.api("PUT", "/v1/services/default/web", { body: {} })).status,
        201,
      );
      await readOnly();
      await assertWriteRefused(server, "api", /read-only|readonly|I\/O error/);
      // Reads still work.
      assert.equal((await server.api("GET", "/v1/services/default/web")).status, 200);
    } finally {
      const status = await server.proc.stop();
      assert.equal(status.code, 0, server.proc.output);
    }
  });
});

/** Starts a server on `dataDir` and returns its exit code and output once it exits. */
async function failedStart(dataDir: string): Promise<{ code: number; output: string }> {
  const proc = new Proc("server", denoArgs(serverArgs(dataDir)));
  const outcome = await Promise.race([
    proc.status,
    proc.waitForLine(/server ready/, 60_000).then(() => "started" as const),
  ]);
  if (outcome === "started") await proc.stop();
  assert.notEqual(outcome, "started", `the server started:\n${proc.output}`);
  return { code: (await proc.status).code, output: proc.output };
}

Deno.test("a start on a read-only or full data directory exits 1 naming the path and the reason, without a stack trace", async () => {
  await withTmpfs("24m", async (mount, dataDir) => {
    // A data directory a server has used, as after a reboot that mounted it read-only.
    const server = await ServerProc.start(dataDir);
    await server.proc.stop();

    await run("mount", "-o", "remount,ro", mount);
    try {
      const readOnly = await failedStart(dataDir);
      assert.equal(readOnly.code, 1, readOnly.output);
      assert.match(
        readOnly.output,
        new RegExp(`^Error: .*"${dataDir}.*Read-only file system`, "m"),
      );
      assert.doesNotMatch(readOnly.output, /^\s+at /m);
    } finally {
      await run("mount", "-o", "remount,rw", mount);
    }

    await fill(`${mount}/filler`);
    const full = await failedStart(dataDir);
    assert.equal(full.code, 1, full.output);
    assert.match(
      full.output,
      new RegExp(`^Error: .*"${dataDir}.*(No space left|full|I/O error)`, "m"),
    );
    assert.doesNotMatch(full.output, /^\s+at /m);
  });
});
