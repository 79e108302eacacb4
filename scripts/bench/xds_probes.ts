/**
 * What the xDS bench (`xds.ts`) measures with: the load process it drives
 * (`xds_load.ts`, JSON lines out, commands in), the server's RSS and push
 * metrics, and the state of the tree it ran from.
 *
 * @module
 */
import { withTimeout } from "./load_process.ts";
import { readCpuMs, readRss, scrapeMetrics } from "./server_process.ts";

/** One JSON line from the load process. */
// deno-lint-ignore no-explicit-any
type LoadEvent = Record<string, any>;

/** The load process: JSON lines out, commands in. */
export class LoadProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #waiting = new Map<string, ((e: LoadEvent) => void)[]>();
  readonly #queued = new Map<string, LoadEvent[]>();
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(configFile: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./xds_load.ts", import.meta.url).pathname, configFile],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.exited = this.#child.status;
    this.#read();
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #read() {
    let text = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      let end;
      while ((end = text.indexOf("\n")) >= 0) {
        const event = JSON.parse(text.slice(0, end)) as LoadEvent;
        text = text.slice(end + 1);
        const waiter = this.#waiting.get(event.event)?.shift();
        if (waiter) waiter(event);
        else this.#queued.set(event.event, [...(this.#queued.get(event.event) ?? []), event]);
      }
    }
  }

  /** The next event named `name`. */
  next(name: string, timeoutMs: number): Promise<LoadEvent> {
    const queued = this.#queued.get(name)?.shift();
    if (queued) return Promise.resolve(queued);
    const promise = new Promise<LoadEvent>((resolve) =>
      this.#waiting.set(name, [...(this.#waiting.get(name) ?? []), resolve])
    );
    const died = this.exited.then((s) => {
      throw new Error(`The load process exited (code ${s.code}) before sending "${name}"`);
    });
    return withTimeout(Promise.race([promise, died]), timeoutMs, `waiting for "${name}"`);
  }

  send(cmd: Record<string, unknown>): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(JSON.stringify(cmd) + "\n"));
  }
}

/** Samples the server's RSS every 100 ms; the pid can change (restart). */
export class RssSampler {
  pid = 0;
  peak = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  constructor(pid: number) {
    this.pid = pid;
    this.#timer = setInterval(() => this.sample(), 100);
  }
  sample(): number {
    const rss = readRss(this.pid) ?? 0;
    this.peak = Math.max(this.peak, rss);
    return rss;
  }
  resetPeak(): void {
    this.peak = readRss(this.pid) ?? 0;
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Pushes by `reasons` so far: their count and total seconds. */
export function pushStats(
  m: Map<string, number>,
  ...reasons: ("endpoints" | "registry" | "policy")[]
) {
  let sum = 0;
  let count = 0;
  for (const reason of reasons) {
    sum += m.get(`ironmesh_xds_push_duration_seconds_sum{reason="${reason}"}`) ?? 0;
    count += m.get(`ironmesh_xds_push_duration_seconds_count{reason="${reason}"}`) ?? 0;
  }
  return { sum, count };
}

/** Responses the load process received, by type. */
export type ResponseCounts = Record<"LDS" | "RDS" | "CDS" | "EDS", number>;
export async function responseCounts(load: LoadProcess): Promise<ResponseCounts> {
  await load.send({ cmd: "stats" });
  return { ...(await load.next("stats", 10_000)).responsesByType } as ResponseCounts;
}
/** Responses per measured change between two counts: `RDS 2.0; all types 2.0`. */
export function perChange(before: ResponseCounts, after: ResponseCounts, n: number): string {
  const types = (Object.keys(after) as (keyof ResponseCounts)[])
    .map((t) => [t, (after[t] - before[t]) / n] as const);
  const all = types.reduce((a, [, v]) => a + v, 0);
  return `${
    types.filter(([, v]) => v > 0).map(([t, v]) => `${t} ${v.toFixed(1)}`).join(", ") || "none"
  }; all types ${all.toFixed(1)}`;
}

/** The commit the server ran from, and whether server code had uncommitted changes. */
export async function treeState(): Promise<string> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output()
      .catch(() => null);
    return out?.success ? new TextDecoder().decode(out.stdout).trimEnd() : "";
  };
  const head = await git("rev-parse", "--short", "HEAD");
  const dirty = (await git("status", "--porcelain", "--", "cmd", "xds", "registry", "api", "store"))
    .split("\n").filter(Boolean).map((l) => l.slice(3));
  return `${head || "unknown commit"}${
    dirty.length ? ` with uncommitted changes in ${dirty.join(", ")}` : ", clean"
  }`;
}

/**
 * The push counters by `reasons` once the push that `before` preceded has
 * recorded its histogram sample (or after 2 s): the push goes on to the
 * streams after the affected ones, so its CPU is counted with the change that
 * caused it and the next change does not queue behind it.
 */
export async function pushAfter(
  metrics: { host: string; port: number },
  before: { count: number },
  ...reasons: ("endpoints" | "registry" | "policy")[]
): Promise<{ sum: number; count: number }> {
  const read = async () => pushStats(await scrapeMetrics(metrics.host, metrics.port), ...reasons);
  let after = await read();
  for (let i = 0; i < 100 && after.count === before.count; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = await read();
  }
  return after;
}

/** One measured change, times from just before the change was made. */
export interface MeasuredChange {
  /** Until the last affected proxy ACKed. */
  latency: number;
  /** Until the first affected proxy ACKed. */
  first: number;
  /** How long making the change took (the REST call). */
  actMs: number;
  /** Mean duration of the pushes it caused; NaN when none was recorded. */
  pushMs: number;
  /** Server CPU from the change to the end of its push. */
  cpuMs: number;
  pushes: number;
  /** How many proxies the load process saw ACK it. */
  proxies: number;
}

/** What to change and how the load process recognises that it arrived. */
export interface ChangeSpec {
  /** The command that tells the load process what to wait for, and its reply. */
  expect: Record<string, unknown>;
  expecting: string;
  /** The load process's event once the last affected proxy ACKed. */
  done: string;
  timeoutMs: number;
  reasons: ("endpoints" | "registry" | "policy")[];
  /** Makes the change. */
  act: () => Promise<unknown>;
}

/** Makes one change and measures it until the last affected proxy ACKed and its push ended. */
export async function measureChange(
  load: LoadProcess,
  server: { pid: number; host: string; port: number },
  spec: ChangeSpec,
): Promise<MeasuredChange> {
  await load.send(spec.expect);
  await load.next(spec.expecting, 10_000);
  const before = pushStats(await scrapeMetrics(server.host, server.port), ...spec.reasons);
  const cpuBefore = readCpuMs(server.pid)!;
  const start = performance.timeOrigin + performance.now();
  await spec.act();
  const actMs = performance.timeOrigin + performance.now() - start;
  const arrived = await load.next(spec.done, spec.timeoutMs);
  const after = await pushAfter(server, before, ...spec.reasons);
  const pushes = after.count - before.count;
  return {
    latency: arrived.last - start,
    first: arrived.first - start,
    actMs,
    pushMs: pushes > 0 ? ((after.sum - before.sum) * 1000) / pushes : NaN,
    cpuMs: readCpuMs(server.pid)! - cpuBefore,
    pushes,
    proxies: arrived.proxies,
  };
}

/** The mean of ten RSS samples 100 ms apart: one sample catches a garbage collection mid-way. */
export async function meanRss(pid: number): Promise<number> {
  let sum = 0;
  for (let i = 0; i < 10; i++) {
    sum += readRss(pid) ?? 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  return sum / 10;
}

/** The machine's 1, 5 and 15 minute load averages, as `/proc/loadavg` writes them. */
export async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
}
