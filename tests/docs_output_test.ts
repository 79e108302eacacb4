/**
 * The docs' example outputs, checked against the real program. A fenced block preceded by
 * `<!-- output: ARGS -->` in docs/cli.md or docs/getting-started.md is what `ironmesh ARGS`
 * prints (several commands: `ARGS; ARGS`, their outputs separated by a blank line);
 * `<!-- output: server -->` is the server's start banner; in a `console` block marked
 * `<!-- output -->`, each `$ ironmesh …` (or `$ im …`) line is run and followed by its output.
 *
 * Values differ from run to run (times, fingerprints, ids, ports, counts), so both sides are
 * compared with every number, hex string and time replaced by a placeholder and runs of spaces
 * squeezed: what is checked is the wording, the columns, the rows and their order.
 *
 * The server is set up as getting-started.md's walk-through has it when each block is shown:
 * three join tokens for `vm-1`..`vm-3`, then the three nodes registered with a `web` instance
 * on port 808N. Paths under `/tmp/ironmesh-demo` are mapped to a temporary directory.
 */
import assert from "node:assert/strict";
import { denoArgs, ROOT, runCli, serverArgs, tempDir } from "./harness.ts";

// getting-started.md first: its blocks follow the walk-through's order of events.
const DOCS = ["docs/getting-started.md", "docs/cli.md"];
const DEMO = "/tmp/ironmesh-demo";

/** One checked block: where it is, what produces it, and what it shows. */
interface Example {
  where: string;
  /** `server`, a list of argument lists, or `console` (the commands are in the block). */
  produce: "server" | "console" | string[][];
  text: string;
}

/** The marked blocks of `file`, in order. */
async function examples(file: string): Promise<Example[]> {
  const lines = (await Deno.readTextFile(`${ROOT}${file}`)).split("\n");
  const found: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const mark = /^(\s*)<!-- output(?:: (.+?))? -->$/.exec(lines[i]!);
    if (!mark) continue;
    const indent = mark[1]!;
    // The formatter puts a blank line between the mark and the block.
    while (lines[i + 1]?.trim() === "") i++;
    const fence = lines[i + 1] ?? "";
    assert.ok(
      fence === `${indent}\`\`\`text` || fence === `${indent}\`\`\`console`,
      `${file}:${i + 2}: a text or console block follows the mark`,
    );
    const end = lines.findIndex((l, j) => j > i + 1 && l === `${indent}\`\`\``);
    const text = lines.slice(i + 2, end).map((l) => l.slice(indent.length)).join("\n");
    const args = mark[2];
    const produce = args === undefined
      ? "console"
      : args === "server"
      ? "server"
      : args.split(";").map((a) => a.trim().split(/\s+/));
    found.push({ where: `${file}:${i + 2}`, produce, text });
    i = end;
  }
  return found;
}

/** The text with what varies between runs replaced, for comparison. */
function normalize(text: string): string {
  return text
    .split("\n")
    .map((line) =>
      line
        .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, "<time>")
        .replace(/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{16,}\b/g, "<hex>")
        .replace(/\d+/g, "<n>")
        .replace(/ {2,}/g, " ")
        .trimEnd()
    )
    .join("\n")
    .trim();
}

/** Starts the server on `dir` (ports 0) and returns its banner, its URL, admin token and stop. */
async function startServer(dir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: denoArgs(serverArgs(dir)),
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!/Admin token: .*\n/.test(banner)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The server exited before its banner:\n${banner}`);
    banner += value;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe flowing */ }
  })();
  const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
  const adminToken = (await Deno.readTextFile(`${dir}/admin.token`)).trim();
  return {
    banner: banner.trimEnd(),
    url: `http://${info.http}`,
    adminToken,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drain;
    },
  };
}

Deno.test("docs: every example output marked in cli.md and getting-started.md is what the program prints", async () => {
  const marked = (await Promise.all(DOCS.map(examples))).flat();
  assert.ok(marked.length >= 8, `found ${marked.length} marked blocks`);
  const dir = await tempDir("docs");
  const server = await startServer(`${dir}/server`);
  const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
  const api = async (method: string, path: string, body: unknown, token = server.adminToken) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    assert.ok(res.ok, `${method} ${path}: ${JSON.stringify(answer)}`);
    return answer;
  };
  const run = async (args: string[]) => {
    const mapped = args.map((a) => a.replaceAll("$DEMO", DEMO).replaceAll(DEMO, dir));
    const out = await runCli(mapped, env);
    assert.equal(out.code, 0, `ironmesh ${args.join(" ")}: ${out.stderr}`);
    return out.stdout.trimEnd().replaceAll(dir, DEMO);
  };
  try {
    // getting-started.md, step 2: a join token per host.
    for (const n of [1, 2, 3]) {
      await api("POST", "/v1/tokens", { kind: "join", serviceAccount: "web", node: `vm-${n}` });
    }
    let registered = false;
    const failures: string[] = [];
    for (const example of marked) {
      let actual: string;
      let shown = example.text;
      if (example.produce === "server") {
        actual = server.banner.replaceAll(dir, DEMO);
      } else if (example.produce === "console") {
        const parts: string[] = [];
        for (const line of example.text.split("\n")) {
          const command = /^\$ (?:ironmesh|im) (.+)$/.exec(line);
          if (command) parts.push(line, await run(command[1]!.split(/\s+/)));
        }
        actual = parts.join("\n");
        shown = shown.replaceAll("$DEMO", DEMO);
        actual = actual.replaceAll("$DEMO", DEMO);
      } else {
        const outputs: string[] = [];
        for (const args of example.produce) outputs.push(await run(args));
        actual = outputs.join("\n\n");
      }
      // Once the token list is shown, the hosts come up (step 3).
      if (
        !registered && Array.isArray(example.produce) &&
        example.produce.some((a) => a.join(" ") === "token list")
      ) {
        registered = await registerHosts(api);
      }
      if (normalize(actual) !== normalize(shown)) {
        failures.push(
          `${example.where}: the docs show\n${shown}\n\nthe program prints\n${actual}\n`,
        );
      }
    }
    assert.deepEqual(failures, []);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Registers `vm-1`..`vm-3` with a `web` instance each, as their agents would. */
async function registerHosts(
  api: (method: string, path: string, body: unknown, token?: string) => Promise<{ token: string }>,
): Promise<boolean> {
  for (const n of [1, 2, 3]) {
    const node = `vm-${n}`;
    const { token } = await api("POST", "/v1/tokens", { role: "agent", node });
    await api("PUT", `/v1/nodes/${node}/registration`, {
      hostname: node,
      addresses: ["127.0.0.1"],
      agentVersion: "0.1.0",
      // Long enough that no node turns stale on a slow run: nothing heartbeats here.
      heartbeatInterval: "60s",
      instances: [{ id: "web", service: "web", port: 8080 + n, labels: { version: "v1" } }],
    }, token);
  }
  return true;
}
