/**
 * The real Ironmesh server as a child process, as an operator would run
 * it, plus what the bench reads about it from outside: RSS and CPU time
 * from `/proc`, counters from `GET /metrics`.
 */
import { fileURLToPath } from "node:url";

/** What the server wrote to `server.json`: its bound addresses (`host:port`) and pid. */
export interface ServerInfo {
  http: string;
  https: string;
  grpc: string;
  xdsPlaintext?: string;
  pid: number;
}

/** Options of {@link launchServer}. */
export interface LaunchOptions {
  /** `--data-dir`; a stale `server.json` in it is removed first. */
  dataDir: string;
  /** Server flags after the data dir; every address not given here is `127.0.0.1:0`. */
  args?: string[];
  /** When set, the server runs with `--cpu-prof` and writes its profile here on exit. */
  cpuProfDir?: string;
  /** How long to wait for `server.json`. Default: 60 s (the first run may download packages). */
  startTimeoutMs?: number;
}

/** A started server process. */
export interface LaunchedServer {
  info: ServerInfo;
  adminToken: string;
  /** Sends SIGTERM and waits for the exit; returns the exit code. */
  stop(): Promise<number>;
  /** Resolves with the exit code whenever the process ends. */
  exited: Promise<number>;
  /** The last lines the server wrote to stderr (its log at `warn` level). */
  stderrTail(): string;
}

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ADDRESS_FLAGS = ["--http-addr", "--https-addr", "--grpc-addr"];

/**
 * Starts the real server (`cmd/main.ts server`) as an operator would, on free
 * loopback ports unless `args` names others, and waits for its `server.json`.
 * Every bench starts its server through here.
 */
export async function launchServer(options: LaunchOptions): Promise<LaunchedServer> {
  const { dataDir } = options;
  const args = options.args ?? [];
  const profile = options.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  // The HTTPS and gRPC ports may not be measured, but must never take a fixed or public port.
  const defaults = ADDRESS_FLAGS.filter((f) => !args.includes(f)).flatMap((
    f,
  ) => [f, "127.0.0.1:0"]);
  await Deno.remove(`${dataDir}/server.json`).catch(() => {});
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...profile,
      "cmd/main.ts",
      "server",
      "--data-dir",
      dataDir,
      ...defaults,
      "--log-level",
      "warn",
      ...args,
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let tail = "";
  const draining = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(chunk) {
        tail = (tail + chunk).slice(-4000);
      },
    }),
  ).catch(() => {});
  const state: { exited: Deno.CommandStatus | null } = { exited: null };
  const status = child.status.then((s) => (state.exited = s));

  const deadline = performance.now() + (options.startTimeoutMs ?? 60_000);
  let info: ServerInfo | null = null;
  while (!info) {
    if (state.exited) {
      throw new Error(
        `The server exited with code ${state.exited.code} before it was ready:\n${tail}`,
      );
    }
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`The server did not write ${dataDir}/server.json in time:\n${tail}`);
    }
    // Read until it parses: the server may be midway through writing it.
    info = await Deno.readTextFile(`${dataDir}/server.json`).then(JSON.parse).catch(() => null);
    if (!info) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const adminToken = (await Deno.readTextFile(`${dataDir}/admin.token`)).trim();
  return {
    info,
    adminToken,
    async stop() {
      if (!state.exited) child.kill("SIGTERM");
      const { code } = await status;
      await draining;
      return code;
    },
    exited: status.then((s) => s.code),
    stderrTail: () => tail,
  };
}

/** Options of {@link startBenchServer}. */
export interface BenchServerOptions {
  /** An empty directory for `--data-dir`. */
  dataDir: string;
  /** When set, the server runs with `--cpu-prof` and writes its profile here on exit. */
  cpuProfDir?: string;
  /** How long to wait for `server.json`. Default: 60 s. */
  startTimeoutMs?: number;
}

/** A started server, as the heartbeat bench uses it. */
export interface BenchServer {
  host: string;
  port: number;
  pid: number;
  adminToken: string;
  /** Sends SIGTERM and waits for the exit; returns the exit code. */
  stop(): Promise<number>;
  /** The last lines the server wrote to stderr (its log at `warn` level). */
  stderrTail(): string;
}

/** Starts the server for the heartbeat bench, on free loopback ports. */
export async function startBenchServer(options: BenchServerOptions): Promise<BenchServer> {
  const server = await launchServer(options);
  const [host, port] = server.info.http.split(":") as [string, string];
  return {
    host,
    port: Number(port),
    pid: server.info.pid,
    adminToken: server.adminToken,
    stop: server.stop,
    stderrTail: server.stderrTail,
  };
}

/** The resident set size of process `pid` in bytes, or `null` once it is gone. */
export function readRss(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** User plus system CPU time of process `pid` in ms, or `null` once it is gone. */
export function readCpuMs(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), counted in USER_HZ (100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/**
 * Reads `GET /metrics` into a map from series (`name{labels}` exactly as
 * exposed) to value; histogram buckets are left out.
 */
export async function scrapeMetrics(host: string, port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://${host}:${port}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const series = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#") || line.includes("_bucket{")) continue;
    const space = line.lastIndexOf(" ");
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

/** Busy and total CPU time of the whole machine so far, in USER_HZ ticks, from `/proc/stat`. */
export function readMachineTicks(): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n", 1)[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  // idle and iowait are the 4th and 5th fields.
  return { busy: total - ticks[3]! - ticks[4]!, total };
}
