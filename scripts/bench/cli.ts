/**
 * The CLI's round trip from a checkout: how long `ironmesh get nodes` takes,
 * from the shell's fork to the process's exit, against a running server, for
 * each way of running the CLI the docs have shown:
 *
 * - `npx`: `npx --yes deno@2.9.6 task ironmesh get nodes` (the old way);
 * - `task -q`: `deno task -q ironmesh get nodes` with the Deno on PATH;
 * - `bin/ironmesh`: the launcher (`bin/ironmesh get nodes`, the new way).
 *
 *   deno run -A scripts/bench/cli.ts [--runs N] [--quick]   (default 10 runs; 3 with --quick)
 *
 * The ways run in turn, round after round (one warm-up round first), so a
 * busy spell on the shared machine falls on all of them alike. Each call must
 * exit 0 and print the table header, or the bench fails. Prints a markdown
 * table: median, p90 and fastest per way, in milliseconds.
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { markdownTable } from "./report.ts";
import { launchServer } from "./server_process.ts";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string" }, quick: { type: "boolean", default: false } },
});
const RUNS = Number(values.runs ?? (values.quick ? 3 : 10));
if (!Number.isInteger(RUNS) || RUNS < 1) {
  console.error(`Invalid --runs "${values.runs}": expected a whole number from 1`);
  Deno.exit(2);
}

/** A way of running `ironmesh get nodes`: the command as a user types it. */
interface Way {
  name: string;
  command: string[];
}

const WAYS: Way[] = [
  { name: "npx", command: ["npx", "--yes", "deno@2.9.6", "task", "ironmesh", "get", "nodes"] },
  { name: "task -q", command: [Deno.execPath(), "task", "-q", "ironmesh", "get", "nodes"] },
  { name: "bin/ironmesh", command: ["bin/ironmesh", "get", "nodes"] },
];

async function timeOnce(way: Way, env: Record<string, string>): Promise<number> {
  const [program, ...args] = way.command;
  const started = performance.now();
  const { code, stdout, stderr } = await new Deno.Command(program!, {
    args,
    cwd: REPO_ROOT,
    env,
    stdin: "null",
  }).output();
  const elapsed = performance.now() - started;
  const out = new TextDecoder().decode(stdout);
  if (code !== 0 || !out.startsWith("NAME")) {
    throw new Error(
      `"${way.command.join(" ")}" exited ${code}:\n${out}${new TextDecoder().decode(stderr)}`,
    );
  }
  return elapsed;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const dataDir = await Deno.makeTempDir({ prefix: "ironmesh-bench-cli-" });
const server = await launchServer({ dataDir });
try {
  const env = {
    IRONMESH_SERVER: `http://${server.info.http}`,
    IRONMESH_TOKEN: server.adminToken,
    NO_COLOR: "1",
  };
  const times = new Map<string, number[]>(WAYS.map((w) => [w.name, []]));
  for (let round = 0; round <= RUNS; round++) {
    for (const way of WAYS) {
      const ms = await timeOnce(way, env);
      if (round > 0) times.get(way.name)!.push(ms);
    }
    console.error(`bench cli: round ${round}/${RUNS}${round === 0 ? " (warm-up)" : ""}`);
  }
  const rows = WAYS.map((way) => {
    const sorted = [...times.get(way.name)!].sort((a, b) => a - b);
    return [
      `\`${way.command.join(" ").replace(Deno.execPath(), "deno")}\``,
      percentile(sorted, 50).toFixed(0),
      percentile(sorted, 90).toFixed(0),
      sorted[0]!.toFixed(0),
    ];
  });
  console.log(
    `CLI round trip, \`get nodes\` against a running server, ${RUNS} runs per way (ms):\n`,
  );
  console.log(markdownTable(["command", "median", "p90", "fastest"], rows));
} finally {
  await server.stop();
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
}
