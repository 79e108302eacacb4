/**
 * The real Ironmesh server as a child process for the CA benchmark, and the
 * CPU counters read from `/proc` around a measured window: the server's own
 * utime+stime (every thread, so WebCrypto's pool is included), a load
 * process's, and the whole machine's (to see what other processes took).
 */
import { launchServer } from "./server_process.ts";

/** Options of {@link startCaServer}. */
export interface CaServerOptions {
  /** An empty directory for `--data-dir`. */
  dataDir: string;
  /** When set, the server runs with `--cpu-prof` and writes its profile here on exit. */
  cpuProfDir?: string;
  /** How long to wait for `server.json`. Default: 60 s. */
  startTimeoutMs?: number;
}

/** A started server. */
export interface CaServer {
  /** `host:port` of the plain HTTP API. */
  http: string;
  /** `host:port` of the TLS API. */
  https: string;
  pid: number;
  adminToken: string;
  /** Sends SIGTERM and waits for the exit; returns the exit code. */
  stop(): Promise<number>;
  /** The last lines the server wrote to stderr (its log at `warn` level). */
  stderrTail(): string;
}

/** Starts `cmd/main.ts server` on free loopback ports and waits for `server.json`. */
export async function startCaServer(options: CaServerOptions): Promise<CaServer> {
  const server = await launchServer({
    dataDir: options.dataDir,
    ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
    ...(options.startTimeoutMs ? { startTimeoutMs: options.startTimeoutMs } : {}),
  });
  return {
    http: server.info.http,
    https: server.info.https,
    pid: server.info.pid,
    adminToken: server.adminToken,
    stop: server.stop,
    stderrTail: server.stderrTail,
  };
}

let clockTicks: number | undefined;

/** `getconf CLK_TCK`: the unit of the times in `/proc/<pid>/stat` and `/proc/stat`. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync();
      const n = Number(new TextDecoder().decode(out.stdout).trim());
      clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of process `pid` (all its threads) in seconds, or `null` once it is gone. */
export function processCpuSeconds(pid: number | "self"): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of proc(5); fields[0] is field 3.
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

/** Busy CPU time of the whole machine (all cores, everything but idle and iowait) in seconds. */
export function machineBusySeconds(): number | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return (total - idle) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

/** The 1-minute load average and the text of `uptime`, for the report. */
export function machineLoad(): string {
  try {
    const out = new Deno.Command("uptime", { stdout: "piped" }).outputSync();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return Deno.readTextFileSync("/proc/loadavg").trim();
  }
}

/** CPU seconds of process `pid`: its main (JavaScript) thread, and every other thread together. */
export interface ThreadCpu {
  total: number;
  /** The thread whose id is the pid: V8, the event loop, `Deno.serve`, SQLite. */
  main: number;
  /** Everything else: the blocking pool WebCrypto runs on, V8's GC helpers, workers (exited threads included). */
  others: number;
}

/** Reads {@link ThreadCpu} of `pid`, or `null` once it is gone. */
export function threadCpuSeconds(pid: number): ThreadCpu | null {
  const total = processCpuSeconds(pid);
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const main = (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond();
    return total === null ? null : { total, main, others: total - main };
  } catch {
    return null;
  }
}
