/**
 * The real Ironmesh server as a child process, as an operator would run
 * it, plus what the bench reads about it from outside: RSS and CPU time
 * from `/proc`, counters from `GET /metrics`.
 */
import { fileURLToPath } from "node:url";

/** Options of {@link startBenchServer}. */
export interface BenchServerOptions {
  /** An empty directory for `--data-dir`. */
  dataDir: string;
  /** When set, the server runs with `--cpu-prof` and writes its profile here on exit. */
  cpuProfDir?: string;
  /** How long to wait for `server.json`. Default: 60 s (the first run may download packages). */
  startTimeoutMs?: number;
}

/** A started server. */
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

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Starts `cmd/main.ts server` on free loopback ports (all of them) and waits until it is ready. */
export async function startBenchServer(options: BenchServerOptions): Promise<BenchServer> {
  const { dataDir } = options;
  const profile = options.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...profile,
      "cmd/main.ts",
      "server",
      "--data-dir",
      dataDir,
      "--http-addr",
      "127.0.0.1:0",
      "--grpc-addr",
      "127.0.0.1:0",
      // The HTTPS (mTLS) port is not measured, but must not take a fixed or public port.
      "--https-addr",
      "127.0.0.1:0",
      "--log-level",
      "warn",
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
  let info: { http: string; pid: number } | null = null;
  while (!info) {
    if (state.exited) {
      throw new Error(
        `The server exited with code ${state.exited.code} before it was ready:\n${tail}`,
      );
    }
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`The server did not write ${dataDir}/server.json in time:\n${tail}`);
    }
    // Read until it parses: the server may be midway through writing it.
    info = await Deno.readTextFile(`${dataDir}/server.json`).then(JSON.parse).catch(() => null);
    if (!info) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const [host, port] = info.http.split(":") as [string, string];
  const adminToken = (await Deno.readTextFile(`${dataDir}/admin.token`)).trim();
  return {
    host,
    port: Number(port),
    pid: info.pid,
    adminToken,
    async stop() {
      if (!state.exited) child.kill("SIGTERM");
      const { code } = await status;
      await draining;
      return code;
    },
    stderrTail: () => tail,
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
