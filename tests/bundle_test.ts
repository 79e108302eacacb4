/**
 * The single-file release: `deno bundle` output (`ironmesh.js`) copied
 * alone into an empty directory — no source tree, no `node_modules`, no
 * `deno.json` anywhere above it, an empty `DENO_DIR` — must run the real
 * server and a real agent that enrols over TLS and registers a service.
 *
 * The bundle is built once per run of this file (about a second), into a
 * temporary directory so `dist/` is left alone. Set `IRONMESH_BUNDLE` to the
 * path of an `ironmesh.js` built earlier (e.g. by `deno task bundle` in CI)
 * to test that file instead.
 */
import assert from "node:assert/strict";
import {
  buildBundle,
  BUNDLE_NAME,
  type Finding,
  formatFindings,
  inspectBundle,
  isolatedTempDir,
  projectAbove,
  ROOT,
} from "../scripts/build.ts";
import { LAUNCHER } from "../cmd/install_artifacts.ts";
import { serverArgs } from "./harness.ts";
import { sharedCluster } from "../store/_postgres_testing.ts";
import { caPassphraseArgs } from "./harness.ts";

let built: Promise<string> | undefined;
/** The PostgreSQL the bundled server is run against (started here, outside any test). */
const cluster = await sharedCluster();

/** The bundle under test: `IRONMESH_BUNDLE`, or one built by the first test that asks. */
function bundle(): Promise<string> {
  const given = Deno.env.get("IRONMESH_BUNDLE");
  if (given) return Promise.resolve(given);
  built ??= (async () => {
    const outDir = await Deno.makeTempDir({ prefix: "ironmesh-bundle-" });
    addEventListener("unload", () => Deno.removeSync(outDir, { recursive: true }));
    // The smoke run is the second test below, with more to see; skip the build's own.
    return (await buildBundle({ outDir, smoke: false })).file;
  })();
  return built;
}

/**
 * Code in the bundle that cannot work from a single file but is never reached
 * in the shipped configuration. Anything else the scan finds fails the test.
 */
const KNOWN: { source: RegExp; message: RegExp; why: string }[] = [
  {
    source: /^npm:@grpc\/grpc-js\/build\/src\/(channelz|orca)\.js$/,
    message: /__dirname/,
    why: "grpc-js loads channelz/ORCA .proto files only for the admin service and ORCA, unused",
  },
];

Deno.test("bundle: one self-contained file, no path into the source tree", async () => {
  const file = await bundle();
  const text = await Deno.readTextFile(file);
  const root = ROOT.replace(/\/+$/, "");
  assert.ok(!text.includes(root), `${BUNDLE_NAME} mentions the source tree ${root}`);
  const findings = inspectBundle(text);
  const unexpected = findings.filter((f: Finding) =>
    f.level === "error" || !KNOWN.some((k) => k.source.test(f.source) && k.message.test(f.message))
  );
  assert.deepEqual(
    unexpected,
    [],
    `code in ${BUNDLE_NAME} that depends on files next to it or on this machine:\n` +
      formatFindings(unexpected),
  );
  // Only `node:` built-ins stay imports.
  const imports = [...text.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]!);
  assert.deepEqual(imports.filter((s) => !s.startsWith("node:")), [], "non-node: imports");
});

/** A child process whose output is kept for failure messages. */
class Child {
  readonly #child: Deno.ChildProcess;
  #output = "";
  readonly status: Promise<Deno.CommandStatus>;

  constructor(readonly name: string, args: string[], cwd: string, env: Record<string, string>) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args,
      cwd,
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.#output += text;
    };
    const pumps = Promise.all([pump(this.#child.stdout), pump(this.#child.stderr)]);
    this.status = Promise.all([this.#child.status, pumps]).then(([s]) => s);
  }

  get output(): string {
    return `--- ${this.name} output ---\n${this.#output.trimEnd()}\n--- end of ${this.name} ---`;
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
    return await this.status;
  }
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  children: Child[],
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let exited: Child | undefined;
  for (const c of children) c.status.then(() => exited ??= c);
  let last: unknown;
  while (Date.now() < deadline && !exited) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const why = exited ? `${exited.name} exited` : `timed out after ${timeoutMs} ms`;
  throw new Error(
    `Waiting for ${what}: ${why}${last ? ` (last error: ${last})` : ""}\n` +
      children.map((c) => c.output).join("\n"),
  );
}

/** An empty directory holding only the bundle, to run it from. */
interface SingleFile {
  dir: string;
  /** Runs `deno run -A ironmesh.js ARGS…` in `dir`, with an empty `DENO_DIR`. */
  run(name: string, args: string[]): Child;
  children: Child[];
  /** Kills whatever still runs and removes everything. */
  remove(): Promise<void>;
}

async function singleFile(): Promise<SingleFile> {
  const file = await bundle();
  const base = await isolatedTempDir("ironmesh-single-file-");
  const dir = `${base}/app`;
  await Deno.mkdir(dir);
  await Deno.copyFile(file, `${dir}/${BUNDLE_NAME}`);
  const children: Child[] = [];
  const env = { DENO_DIR: `${base}/deno-dir` };
  return {
    dir,
    children,
    run(name, args) {
      const child = new Child(name, ["run", "-A", BUNDLE_NAME, ...args], dir, env);
      children.push(child);
      return child;
    },
    async remove() {
      await Promise.all(children.map((c) => c.stop("SIGKILL")));
      await Deno.remove(base, { recursive: true }).catch(() => {});
    },
  };
}

/** Starts the bundled server on port 0 (plus `args`) and waits until it serves. */
async function startServer(place: SingleFile, args: string[] = []) {
  const server = place.run("server", [...serverArgs("./data"), ...args]);
  const info = await waitFor("./data/server.json", async () => {
    const text = await Deno.readTextFile(`${place.dir}/data/server.json`);
    return JSON.parse(text) as { http: string; https: string };
  }, place.children);
  const admin = (await Deno.readTextFile(`${place.dir}/data/admin.token`)).trim();
  /** Calls the REST API as admin; throws on an error status. */
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://${info.http}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  return { server, info, api };
}

Deno.test("bundle: server and agent run from ironmesh.js alone in an empty directory", async () => {
  const place = await singleFile();
  const { dir, run, children } = place;
  try {
    assert.equal(await projectAbove(dir), null, "a project file is visible from the run directory");
    const { server, info, api } = await startServer(place);

    let join: string;
    try {
      join = (await api("POST", "/v1/tokens", { kind: "join", serviceAccount: "web" })).token;
    } catch (error) {
      throw new Error(`Creating a join token failed: ${error}\n${server.output}`);
    }
    assert.equal(typeof join, "string");

    // Run from the bundle, the server hands out that bundle behind the launcher, for any platform.
    const bundled = await Deno.readFile(`${dir}/${BUNDLE_NAME}`);
    const served = new Uint8Array(
      await (await fetch(`http://${info.http}/install/ironmesh-darwin-aarch64`)).arrayBuffer(),
    );
    assert.equal(new TextDecoder().decode(served.slice(0, LAUNCHER.length)), LAUNCHER);
    assert.deepEqual(served.slice(new TextEncoder().encode(LAUNCHER).length), bundled);
    const sums = await (await fetch(`http://${info.http}/install/SHA256SUMS`)).text();
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", served));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    assert.match(sums, new RegExp(`^${hex} {2}ironmesh-linux-x86_64$`, "m"));

    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      `node: {name: single-file, address: 127.0.0.1}
heartbeat: {interval: 1s}
services:
  - name: web
    port: 8080
`,
    );
    const agent = run("agent", [
      "agent",
      "--server",
      `https://${info.https}`,
      "--join-token",
      join,
      "--data-dir",
      "./agent",
      "--config",
      "./agent.yaml",
    ]);
    await waitFor("web@single-file healthy in GET /v1/instances", async () => {
      const list = await api("GET", "/v1/instances");
      const found = list.items.find((i: { id: string; health: string }) =>
        i.id === "web@single-file" && i.health === "healthy"
      );
      return found ? true : undefined;
    }, children);

    const agentStatus = await agent.stop("SIGTERM");
    assert.equal(agentStatus.code, 0, `agent exit code\n${agent.output}`);
    // On SIGTERM the agent deregisters its node over mTLS.
    const left = await api("GET", "/v1/instances");
    assert.deepEqual(
      left.items,
      [],
      `agent did not deregister on SIGTERM\n${agent.output}\n${server.output}`,
    );
    const serverStatus = await server.stop("SIGTERM");
    assert.equal(serverStatus.code, 0, `server exit code\n${server.output}`);
    const entries = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    assert.ok(!entries.includes("node_modules"), "the bundle created node_modules");
  } finally {
    await place.remove();
  }
});

Deno.test("bundle: the server runs on PostgreSQL from ironmesh.js alone", async () => {
  const place = await singleFile();
  try {
    const { server, api } = await startServer(place, [
      "--store",
      await cluster.createDatabase(),
      ...await caPassphraseArgs(),
    ]);
    await api("PUT", "/v1/services/default/web", {});
    assert.equal((await api("GET", "/readyz")).store, "postgres");
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0, `server exit code\n${server.output}`);
  } finally {
    await place.remove();
  }
});
