/**
 * `deno task bench --only xds`: 2,000 proxyless clients on state-of-the-world
 * ADS against the real server.
 *
 * Targets (this 2-core machine; issue 10): a change to one service's
 * endpoints reaches (received and ACKed) the last affected proxy within
 * 50 ms at p99, flat in mesh size (1,000 services / 2,000 proxies and
 * 10,000 / 5,000), for at most 10 ms of server CPU; a policy write on one
 * service within 50 ms; with `--shared`, a change to the service every proxy
 * dials reaches all of them within 150 ms (2,000 proxies) or 400 ms (5,000);
 * server RSS <= 256 MB for 2,000 proxies (<= 512 MB peak, 400 MB settled
 * for 5,000 over 10,000 services, each proxy dialling 2-5 services); after
 * a server restart all proxies are reconnected and served within 10 s.
 *
 * 1. Starts `cmd/main.ts server` with `--xds-plaintext-addr 127.0.0.1:0` and
 *    `--push-debounce 10ms --push-max-delay 100ms`, registers S services
 *    (gRPC, two healthy instances each) as 20-instance nodes over REST, in
 *    batches, and measures the idle RSS.
 * 2. Starts `xds_load.ts` (one process): N streams over C HTTP/2 connections;
 *    measures the time until every proxy has ACKed LDS, RDS, CDS and EDS, the
 *    server's peak and settled RSS, and checks `GET /v1/proxies` (every
 *    stream in sync for four types).
 * 3. K changes, one at a time, each to a different service: a heartbeat turns
 *    one of its two instances' checks `failing`; measured from just before the
 *    heartbeat is sent to the moment the last proxy of that service ACKed the
 *    EDS response with one endpoint. Also the push duration from
 *    `ironmesh_xds_push_duration_seconds` and the server's CPU per change.
 *    With `--shared`, then M changes to the shared service (svc-0), turning
 *    one of its instances' checks failing and passing in turn, each measured
 *    to the last of all N proxies' ACK.
 * 4. P policy writes, one at a time, each a TrafficRoute on a different
 *    service (`rules: [{timeout: "<1+c>s"}]`) over `PUT /v1/policies/…`;
 *    measured from just before the PUT to the moment the last proxy of that
 *    service ACKed an RDS response with a new version and that timeout. Also
 *    the `reason="policy"` push duration and the server's CPU per write, next
 *    to the registry change's (a full recompute).
 * 5. SIGTERM, then the same command with the same data directory and ports;
 *    measures from SIGTERM until every proxy holds a new stream (first response
 *    after the old process exited) with all four types ACKed.
 *
 * Prints a markdown table to stdout (progress to stderr); exits 0 when the run
 * completed, target met or not; 1 when it could not run.
 */
import { parseArgs } from "node:util";
import { markdownTable, ms, thousands } from "./report.ts";
import { readCpuMs, readMachineTicks, readRss, scrapeMetrics } from "./server_process.ts";
import { portOf, startXdsServer, type XdsServer } from "./xds_server.ts";
import type { XdsLoadConfig } from "./xds_load.ts";

const TARGET = {
  proxies: 2_000,
  services: 1_000,
  rssMb: 256,
  /** 5,000 proxies over 10,000 services: peak and settled RSS. */
  largeRssMb: 512,
  largeSettledMb: 400,
  changeP99Ms: 50,
  changeCpuMs: 10,
  policyP99Ms: 50,
  sharedP99Ms: 150,
  largeSharedP99Ms: 400,
  restartMs: 10_000,
};

const USAGE = `Usage: deno task bench --only xds [options]

  --proxies N        proxyless ADS clients (default 2000; --quick 200)
  --services N       services, two instances each (default 1000; --quick 100)
  --connections N    HTTP/2 connections the streams share (default 40; --quick 20)
  --changes N        endpoint changes measured one at a time (default 20; --quick 10)
  --policies N       TrafficRoute writes measured one at a time (default 20; --quick 10)
  --shared           every proxy also dials svc-0 (the service everyone calls)
  --extra N          every proxy also dials N more services (default 0)
  --shared-changes N with --shared: changes to svc-0 measured (default 10)
  --debounce D       server --push-debounce (default 10ms)
  --max-delay D      server --push-max-delay (default 100ms)
  --restart-gap MS   keep the server down this long after it exits, as a slow restart would (default 0)
  --cpu-prof DIR     run the server with --cpu-prof, profiles written to DIR
  --quick            the small smoke run (not judged)
`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    proxies: { type: "string" },
    services: { type: "string" },
    connections: { type: "string" },
    changes: { type: "string" },
    policies: { type: "string" },
    shared: { type: "boolean", default: false },
    extra: { type: "string", default: "0" },
    "shared-changes": { type: "string", default: "10" },
    debounce: { type: "string", default: "10ms" },
    "max-delay": { type: "string", default: "100ms" },
    "restart-gap": { type: "string", default: "0" },
    "cpu-prof": { type: "string" },
    quick: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const quick = values.quick;
const int = (v: string | undefined, full: number, small: number) => {
  const n = v === undefined ? (quick ? small : full) : Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`Not a positive integer: ${v}\n\n${USAGE}`);
    Deno.exit(2);
  }
  return n;
};
const N = int(values.proxies, TARGET.proxies, 200);
const S = int(values.services, TARGET.services, 100);
const C = Math.min(N, int(values.connections, 40, 20));
const K = Math.min(S, int(values.changes, 20, 10));
const P = Math.min(S, int(values.policies, 20, 10));
const SHARED = values.shared;
const EXTRA = Number(values.extra);
const SHARED_CHANGES = SHARED ? int(values["shared-changes"], 10, 10) : 0;
if (!Number.isInteger(EXTRA) || EXTRA < 0) {
  console.error(`--extra takes a whole number, not ${values.extra}`);
  Deno.exit(2);
}
const RESTART_GAP_MS = Number(values["restart-gap"]);
if (!Number.isFinite(RESTART_GAP_MS) || RESTART_GAP_MS < 0) {
  console.error(`--restart-gap takes milliseconds, not ${values["restart-gap"]}`);
  Deno.exit(2);
}
const INSTANCES_PER_SERVICE = 2;
const INSTANCES_PER_NODE = 20;
const NAMESPACE = "default";

const log = (msg: string) =>
  console.error(`[xds bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const now = () => performance.timeOrigin + performance.now();
const sleep = (msMs: number) => new Promise((r) => setTimeout(r, msMs));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One JSON line from the load process. */
// deno-lint-ignore no-explicit-any
type LoadEvent = Record<string, any>;

/** The load process: JSON lines out, commands in. */
class LoadProcess {
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
class RssSampler {
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

async function api(server: XdsServer, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://${server.http}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : null;
}

/** Node n holds instances n*20 … n*20+19; instance j serves svc-(j mod S), so a service's two
 * instances sit on different nodes (S >= 20). */
function nodeName(n: number): string {
  return `xds-bench-${String(n).padStart(4, "0")}`;
}
function nodeAddress(n: number): string {
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}
function registration(n: number, total: number) {
  const instances = [];
  for (let j = n * INSTANCES_PER_NODE; j < Math.min(total, (n + 1) * INSTANCES_PER_NODE); j++) {
    instances.push({
      id: `i${j}`,
      namespace: NAMESPACE,
      service: `svc-${j % S}`,
      port: 9000,
      protocol: "grpc",
      check: "passing",
    });
  }
  return {
    hostname: `${nodeName(n)}.bench`,
    addresses: [nodeAddress(n)],
    agentVersion: "xds-bench",
    heartbeatInterval: "10m",
    instances,
  };
}

async function populate(server: XdsServer): Promise<{ ms: number; nodes: number }> {
  const total = S * INSTANCES_PER_SERVICE;
  const nodes = Math.ceil(total / INSTANCES_PER_NODE);
  const start = performance.now();
  const batch = Math.max(1, Math.ceil(nodes / 4));
  for (let first = 0; first < nodes; first += batch) {
    const list = Array.from({ length: Math.min(batch, nodes - first) }, (_, i) => first + i);
    // Up to 8 registrations in flight within a batch.
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < list.length) {
        const n = list[next++]!;
        await api(server, "PUT", `/v1/nodes/${nodeName(n)}/registration`, registration(n, total));
      }
    }));
  }
  return { ms: performance.now() - start, nodes };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Pushes by `reasons` so far: their count and total seconds. */
function pushStats(m: Map<string, number>, ...reasons: ("endpoints" | "registry" | "policy")[]) {
  let sum = 0;
  let count = 0;
  for (const reason of reasons) {
    sum += m.get(`ironmesh_xds_push_duration_seconds_sum{reason="${reason}"}`) ?? 0;
    count += m.get(`ironmesh_xds_push_duration_seconds_count{reason="${reason}"}`) ?? 0;
  }
  return { sum, count };
}

/** The `c`-th of up to S distinct services, spread over 0 … S-1 (a stride coprime to S). */
function spreadService(c: number, offset: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let stride = 97;
  while (gcd(stride, S) !== 1) stride++;
  return (c * stride + offset) % S;
}

/** Responses the load process received, by type. */
type ResponseCounts = Record<"LDS" | "RDS" | "CDS" | "EDS", number>;
async function responseCounts(load: LoadProcess): Promise<ResponseCounts> {
  await load.send({ cmd: "stats" });
  return { ...(await load.next("stats", 10_000)).responsesByType } as ResponseCounts;
}
/** Responses per measured change between two counts: `RDS 2.0; all types 2.0`. */
function perChange(before: ResponseCounts, after: ResponseCounts, n: number): string {
  const types = (Object.keys(after) as (keyof ResponseCounts)[])
    .map((t) => [t, (after[t] - before[t]) / n] as const);
  const all = types.reduce((a, [, v]) => a + v, 0);
  return `${
    types.filter(([, v]) => v > 0).map(([t, v]) => `${t} ${v.toFixed(1)}`).join(", ") || "none"
  }; all types ${all.toFixed(1)}`;
}

interface ProxyStatusLite {
  kind: string;
  types: { inSync: boolean }[];
}

async function proxiesInSync(server: XdsServer): Promise<{ streams: number; inSync: number }> {
  const body = await api(server, "GET", "/v1/proxies");
  const items = (Array.isArray(body) ? body : body.items) as ProxyStatusLite[];
  const inSync = items.filter((p) => p.types.length === 4 && p.types.every((t) => t.inSync)).length;
  return { streams: items.length, inSync };
}

/** The commit the server ran from, and whether server code had uncommitted changes. */
async function treeState(): Promise<string> {
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

// ---------------------------------------------------------------------------

const dataDir = await Deno.makeTempDir({ prefix: "ironmesh-xds-bench-" });
const serverOptions = {
  dataDir,
  pushDebounce: values.debounce,
  pushMaxDelay: values["max-delay"],
  ...(values["cpu-prof"] ? { cpuProfDir: values["cpu-prof"] } : {}),
};
let server: XdsServer | null = null;
let load: LoadProcess | null = null;
let code = 0;
try {
  const uptime = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  log(`load average before the run: ${uptime}`);
  server = await startXdsServer(serverOptions);
  log(`server pid ${server.pid}: http ${server.http}, xds ${server.xdsPlaintext}`);
  const rss = new RssSampler(server.pid);

  // 1. Registry.
  const populated = await populate(server);
  log(
    `registered ${
      S * INSTANCES_PER_SERVICE
    } instances of ${S} services on ${populated.nodes} nodes in ${ms(populated.ms)}`,
  );
  const registryObjects = await scrapeMetrics(
    server.http.split(":")[0]!,
    portOf(server.http),
  );
  await sleep(1_500); // the last push, then quiet
  let idle = 0;
  for (let i = 0; i < 10; i++) {
    idle += readRss(server.pid) ?? 0;
    await sleep(100);
  }
  const idleRss = idle / 10;
  log(`idle server RSS ${mb(idleRss)}`);

  // 2. Connect.
  const configFile = `${dataDir}/xds-load.json`;
  const loadConfig: XdsLoadConfig = {
    target: server.xdsPlaintext,
    proxies: N,
    services: S,
    connections: C,
    namespace: NAMESPACE,
    ...(SHARED ? { shared: 0 } : {}),
    ...(EXTRA > 0 ? { extra: EXTRA } : {}),
  };
  await Deno.writeTextFile(configFile, JSON.stringify(loadConfig));
  load = new LoadProcess(configFile);
  await load.next("ready", 60_000);
  rss.resetPeak();
  const cpu0 = readCpuMs(server.pid)!;
  const loadCpu0 = (await (load.send({ cmd: "stats" }), load.next("stats", 10_000)))
    .cpuMs as number;
  const machine0 = readMachineTicks();
  const t0 = now();
  await load.send({ cmd: "start" });
  const served = await load.next("served", 180_000);
  const connectMs = served.at - t0;
  const connectCpu = readCpuMs(server.pid)! - cpu0;
  const machine1 = readMachineTicks();
  const loadStats = await (load.send({ cmd: "stats" }), load.next("stats", 10_000));
  const connectLoadCpu = (loadStats.cpuMs as number) - loadCpu0;
  const connectPeak = rss.peak;
  log(
    `all ${N} served in ${ms(connectMs)}; server CPU ${ms(connectCpu)}, peak RSS ${
      mb(connectPeak)
    }`,
  );
  await sleep(2_000);
  // Idle CPU with every stream held (keepalives, timers), to put the per-change CPU in context.
  const idleCpu0 = readCpuMs(server.pid)!;
  await sleep(3_000);
  const idleCpuPerSec = (readCpuMs(server.pid)! - idleCpu0) / 3;
  let settled = 0;
  for (let i = 0; i < 10; i++) {
    settled += readRss(server.pid) ?? 0;
    await sleep(100);
  }
  const settledRss = settled / 10;
  const sync1 = await proxiesInSync(server);
  log(
    `server view: ${sync1.streams} streams, ${sync1.inSync} with LDS/RDS/CDS/EDS in sync; settled RSS ${
      mb(settledRss)
    }`,
  );

  // 3. Changes.
  const host = server.http.split(":")[0]!;
  const changeResponses0 = await responseCounts(load);
  const changeWindow = {
    machine: readMachineTicks(),
    server: readCpuMs(server.pid)!,
    load: readCpuMs(load.pid)!,
    at: performance.now(),
  };
  const changes: {
    latency: number;
    first: number;
    pushMs: number;
    cpuMs: number;
    pushes: number;
  }[] = [];
  for (let c = 0; c < K; c++) {
    const service = spreadService(c, 13) || 1;
    const node = Math.floor(service / INSTANCES_PER_NODE); // instance j = service is on node j/20
    await load.send({ cmd: "expect", id: c, service, endpoints: INSTANCES_PER_SERVICE - 1 });
    await load.next("expecting", 10_000);
    const before = pushStats(
      await scrapeMetrics(host, portOf(server.http)),
      "endpoints",
      "registry",
    );
    const cpuBefore = readCpuMs(server.pid)!;
    const start = now();
    await api(server, "POST", `/v1/nodes/${nodeName(node)}/heartbeat`, {
      checks: [{ id: `i${service}`, status: "failing" }],
    });
    const changed = await load.next("changed", 15_000);
    // The push goes on to the streams after the affected ones; wait for its end (its histogram
    // sample), so its CPU is counted here and the next change does not queue behind it.
    let after = pushStats(await scrapeMetrics(host, portOf(server.http)), "endpoints", "registry");
    for (let i = 0; i < 100 && after.count === before.count; i++) {
      await sleep(20);
      after = pushStats(await scrapeMetrics(host, portOf(server.http)), "endpoints", "registry");
    }
    const cpuAfter = readCpuMs(server.pid)!;
    const pushes = after.count - before.count;
    changes.push({
      latency: changed.last - start,
      first: changed.first - start,
      pushMs: pushes > 0 ? ((after.sum - before.sum) * 1000) / pushes : NaN,
      cpuMs: cpuAfter - cpuBefore,
      pushes,
    });
    log(
      `change ${c + 1}/${K} (svc-${service}): last proxy ACKed after ${
        ms(changed.last - start)
      }, push ${ms(changes.at(-1)!.pushMs)} (${pushes} push)`,
    );
    await sleep(250);
  }
  const changeMachine = readMachineTicks();
  const windowMs = performance.now() - changeWindow.at;
  // Shares of one core during the change phase: whole machine, server, load, everything else.
  const share = (cpu: number) => (cpu / windowMs) * 100;
  const machineBusyChanges = ((changeMachine.busy - changeWindow.machine.busy) /
    (changeMachine.total - changeWindow.machine.total)) * 2 * 100;
  const serverShare = share(readCpuMs(server.pid)! - changeWindow.server);
  const loadShare = share(readCpuMs(load.pid)! - changeWindow.load);
  const otherShare = Math.max(0, machineBusyChanges - serverShare - loadShare);
  const latencies = changes.map((c) => c.latency).sort((a, b) => a - b);
  const pushMss = changes.map((c) => c.pushMs).filter(Number.isFinite).sort((a, b) => a - b);
  const cpus = changes.map((c) => c.cpuMs).sort((a, b) => a - b);
  const changeP50 = percentile(latencies, 50);
  const changeP99 = percentile(latencies, 99);
  const changeResponses = perChange(changeResponses0, await responseCounts(load), K);

  // 3b. Changes to the shared service: every proxy is affected.
  const shared: { latency: number; cpuMs: number; pushMs: number }[] = [];
  const sharedResponses0 = await responseCounts(load);
  for (let c = 0; c < SHARED_CHANGES; c++) {
    // svc-0's first instance is i0 on node 0; it fails, then passes again, in turn.
    const failing = c % 2 === 0;
    const id = K + c;
    await load.send({
      cmd: "expect",
      id,
      service: 0,
      endpoints: failing ? INSTANCES_PER_SERVICE - 1 : INSTANCES_PER_SERVICE,
    });
    await load.next("expecting", 10_000);
    const before = pushStats(
      await scrapeMetrics(host, portOf(server.http)),
      "endpoints",
      "registry",
    );
    const cpuBefore = readCpuMs(server.pid)!;
    const start = now();
    await api(server, "POST", `/v1/nodes/${nodeName(0)}/heartbeat`, {
      checks: [{ id: "i0", status: failing ? "failing" : "passing" }],
    });
    const changed = await load.next("changed", 30_000);
    let after = pushStats(await scrapeMetrics(host, portOf(server.http)), "endpoints", "registry");
    for (let i = 0; i < 100 && after.count === before.count; i++) {
      await sleep(20);
      after = pushStats(await scrapeMetrics(host, portOf(server.http)), "endpoints", "registry");
    }
    const pushes = after.count - before.count;
    shared.push({
      latency: changed.last - start,
      cpuMs: readCpuMs(server.pid)! - cpuBefore,
      pushMs: pushes > 0 ? ((after.sum - before.sum) * 1000) / pushes : NaN,
    });
    log(
      `shared change ${
        c + 1
      }/${SHARED_CHANGES} (svc-0): all ${changed.proxies} proxies ACKed after ${
        ms(changed.last - start)
      }`,
    );
    await sleep(250);
  }
  const sharedResponses = SHARED_CHANGES > 0
    ? perChange(sharedResponses0, await responseCounts(load), SHARED_CHANGES)
    : "";
  const sharedLatencies = shared.map((c) => c.latency).sort((a, b) => a - b);

  // 4. Policy changes: a TrafficRoute on one service changes that service's route configuration;
  // the push recomputes only the proxies that send to it (here the namespace's proxyless snapshot).
  const policyResponses0 = await responseCounts(load);
  const policyWindow = { server: readCpuMs(server.pid)!, at: performance.now() };
  const writes: {
    latency: number;
    first: number;
    putMs: number;
    pushMs: number;
    cpuMs: number;
    pushes: number;
  }[] = [];
  for (let c = 0; c < P; c++) {
    const service = spreadService(c, 13 + Math.floor(S / 2));
    const timeout = `${1 + c}s`;
    await load.send({ cmd: "expectRoute", id: c, service, timeout });
    await load.next("expectingRoute", 10_000);
    const before = pushStats(await scrapeMetrics(host, portOf(server.http)), "policy");
    const cpuBefore = readCpuMs(server.pid)!;
    const start = now();
    await api(server, "PUT", `/v1/policies/trafficroute/${NAMESPACE}/svc-${service}`, {
      apiVersion: "ironmesh.io/v1",
      kind: "TrafficRoute",
      metadata: { name: `svc-${service}`, namespace: NAMESPACE },
      spec: { service: `svc-${service}`, rules: [{ timeout }] },
    });
    const putMs = now() - start;
    const routed = await load.next("routed", 15_000);
    // As for the changes: wait for the push's histogram sample, so its CPU is counted here.
    let after = pushStats(await scrapeMetrics(host, portOf(server.http)), "policy");
    for (let i = 0; i < 100 && after.count === before.count; i++) {
      await sleep(20);
      after = pushStats(await scrapeMetrics(host, portOf(server.http)), "policy");
    }
    const cpuAfter = readCpuMs(server.pid)!;
    const pushes = after.count - before.count;
    writes.push({
      latency: routed.last - start,
      first: routed.first - start,
      putMs,
      pushMs: pushes > 0 ? ((after.sum - before.sum) * 1000) / pushes : NaN,
      cpuMs: cpuAfter - cpuBefore,
      pushes,
    });
    log(
      `policy ${
        c + 1
      }/${P} (TrafficRoute svc-${service}, timeout ${timeout}): last proxy ACKed after ${
        ms(routed.last - start)
      }, push ${ms(writes.at(-1)!.pushMs)} (${pushes} push)`,
    );
    await sleep(250);
  }
  const policyServerShare = ((readCpuMs(server.pid)! - policyWindow.server) /
    (performance.now() - policyWindow.at)) * 100;
  const policyResponses = perChange(policyResponses0, await responseCounts(load), P);
  const policyLatencies = writes.map((w) => w.latency).sort((a, b) => a - b);
  const policyPushMss = writes.map((w) => w.pushMs).filter(Number.isFinite).sort((a, b) => a - b);
  const policyCpus = writes.map((w) => w.cpuMs).sort((a, b) => a - b);
  const policyP50 = percentile(policyLatencies, 50);
  const policyP99 = percentile(policyLatencies, 99);

  // 5. Restart.
  const ports = {
    http: portOf(server.http),
    https: portOf(server.https),
    grpc: portOf(server.grpc),
    xds: portOf(server.xdsPlaintext),
  };
  const tTerm = now();
  const exitCode = await server.stop();
  const tExit = now();
  log(`old server exited with code ${exitCode} after ${ms(tExit - tTerm)}`);
  await load.send({ cmd: "reserved", after: tExit });
  if (RESTART_GAP_MS > 0) await sleep(RESTART_GAP_MS);
  server = await startXdsServer({ ...serverOptions, ports });
  const tReady = now();
  rss.pid = server.pid;
  rss.resetPeak();
  const cpuR0 = readCpuMs(server.pid) ?? 0;
  const reserved = await load.next("reserved", 120_000);
  const restartMs = reserved.at - tTerm;
  const restartPeak = rss.peak;
  const restartCpu = (readCpuMs(server.pid) ?? 0) - cpuR0;
  log(
    `all ${N} reconnected and served ${ms(reserved.at - tReady)} after the new server was ready, ${
      ms(restartMs)
    } after SIGTERM`,
  );
  await sleep(1_000);
  const sync2 = await proxiesInSync(server);
  const finalStats = await (load.send({ cmd: "stats" }), load.next("stats", 10_000));
  rss.stop();

  // Report.
  const rssPerProxyKb = (settledRss - idleRss) / N / 1024;
  const judged = N >= TARGET.proxies && S >= TARGET.services;
  const large = N >= 5_000 && S >= 10_000;
  const verdict = (ok: boolean) => (judged ? (ok ? "PASS" : "MISS") : "not judged");
  const peakAll = Math.max(connectPeak, rss.peak, restartPeak);
  const rssTarget = large ? TARGET.largeRssMb : TARGET.rssMb;
  const sharedTarget = large ? TARGET.largeSharedP99Ms : TARGET.sharedP99Ms;
  const sharedP99 = percentile(sharedLatencies, 99);
  const rows = [
    [
      `${thousands(N)} proxies / ${thousands(S)} services: server peak RSS`,
      `<= ${rssTarget} MB${large ? `, settled <= ${TARGET.largeSettledMb} MB` : ""}`,
      `${mb(peakAll)} (settled ${mb(settledRss)}; idle ${mb(idleRss)}; ${
        rssPerProxyKb.toFixed(0)
      } KB/proxy)`,
      verdict(
        peakAll <= rssTarget * 1024 * 1024 &&
          (!large || settledRss <= TARGET.largeSettledMb * 1024 * 1024),
      ),
    ],
    [
      `change -> last affected proxy ACKed (${K} changes)`,
      `p99 <= ${TARGET.changeP99Ms} ms`,
      `p50 ${ms(changeP50)}, p99 ${ms(changeP99)}, max ${ms(latencies.at(-1)!)}`,
      verdict(changeP99 <= TARGET.changeP99Ms),
    ],
    [
      "server CPU per endpoint change (/proc, 10 ms ticks)",
      `<= ${TARGET.changeCpuMs} ms`,
      `p50 ${ms(percentile(cpus, 50))}, max ${ms(cpus.at(-1)!)}`,
      verdict(percentile(cpus, 50) <= TARGET.changeCpuMs),
    ],
    ...(SHARED_CHANGES > 0
      ? [[
        `change to svc-0, dialled by every proxy -> all ${
          thousands(N)
        } ACKed (${SHARED_CHANGES} changes)`,
        `p99 <= ${sharedTarget} ms`,
        `p50 ${ms(percentile(sharedLatencies, 50))}, p99 ${ms(sharedP99)}, max ${
          ms(sharedLatencies.at(-1)!)
        }`,
        verdict(sharedP99 <= sharedTarget),
      ]]
      : []),
    [
      `policy write -> last affected proxy ACKed (${P} writes)`,
      `p99 <= ${TARGET.policyP99Ms} ms`,
      `p50 ${ms(policyP50)}, p99 ${ms(policyP99)}, max ${ms(policyLatencies.at(-1)!)}`,
      verdict(policyP99 <= TARGET.policyP99Ms),
    ],
    [
      "restart (SIGTERM) -> all reconnected and every type ACKed",
      `<= ${TARGET.restartMs / 1000} s`,
      `${ms(restartMs)}`,
      verdict(restartMs <= TARGET.restartMs),
    ],
    ["initial connect -> all served (not a target)", "", ms(connectMs), ""],
  ];
  const busy = (machine1.busy - machine0.busy) / (machine1.total - machine0.total) * 2 * 100;
  console.log(markdownTable(["measure", "target", "result", "verdict"], rows));
  console.log("");
  console.log(
    `- load: ${thousands(N)} proxyless ADS streams (SotW) over ${C} HTTP/2 connections (${
      (N / C).toFixed(0)
    } streams each) from 1 process; proxy i dials svc-(i mod ${S}).default${
      SHARED ? " and svc-0.default" : ""
    }${
      EXTRA > 0 ? ` and ${EXTRA} more services` : ""
    }; LDS → RDS → CDS → EDS, every response ACKed; reconnect as grpc-js-xds (immediate re-open after a response, else 1 s ×1.6 backoff; channel reconnect backoff 1 s ×1.6)`,
  );
  console.log(
    `- registry: ${S} services (grpc), ${
      S * INSTANCES_PER_SERVICE
    } instances on ${populated.nodes} nodes, registered in ${ms(populated.ms)}; objects ${
      [...registryObjects].filter(([k]) => k.startsWith("ironmesh_registry_objects")).map((
        [k, v],
      ) => `${k.replace(/.*kind="([^"]+)".*/, "$1")}=${v}`).join(" ")
    }`,
  );
  console.log(
    `- server: --push-debounce ${values.debounce} --push-max-delay ${
      values["max-delay"]
    }; load average before the run ${uptime}`,
  );
  console.log(
    `- connect: all served in ${ms(connectMs)}; server CPU ${ms(connectCpu)} (${
      (connectCpu / N * 1000).toFixed(0)
    } µs/proxy), load CPU ${ms(connectLoadCpu)}; machine busy ${
      busy.toFixed(0)
    }% of one core; server view after: ${sync1.streams} streams, ${sync1.inSync} in sync on all four types`,
  );
  console.log(
    `- RSS: idle ${mb(idleRss)} (registry loaded, no streams), peak during connect ${
      mb(connectPeak)
    }, settled ${mb(settledRss)}, peak after restart ${mb(restartPeak)}; ${
      rssPerProxyKb.toFixed(1)
    } KB per proxy above idle`,
  );
  console.log(
    `- CPU during the change phase (100% = one core): machine ${
      machineBusyChanges.toFixed(0)
    }%, server ${serverShare.toFixed(0)}%, load ${loadShare.toFixed(0)}%, other processes ${
      otherShare.toFixed(0)
    }%`,
  );
  console.log(
    `- changes: last ACK p50 ${ms(changeP50)}, p99 ${ms(changeP99)}, max ${
      ms(latencies.at(-1)!)
    }; first affected proxy p50 ${
      ms(percentile(
        changes.map((c) => c.first).sort((a, b) => a - b),
        50,
      ))
    }; includes the ${values.debounce} debounce and the heartbeat request`,
  );
  console.log(
    `- push (ironmesh_xds_push_duration_seconds, one per change): p50 ${
      ms(percentile(pushMss, 50))
    }, max ${ms(pushMss.at(-1) ?? NaN)}; server CPU per change ${ms(percentile(cpus, 50))} p50, ${
      ms(cpus.at(-1)!)
    } max (/proc, 10 ms ticks; idle with streams held: ${
      ms(idleCpuPerSec)
    }/s); pushes per change: ${
      [...new Set(changes.map((c) => c.pushes))].join(",")
    }; responses to proxies per change: ${changeResponses}`,
  );
  if (SHARED_CHANGES > 0) {
    const sharedCpus = shared.map((c) => c.cpuMs).sort((a, b) => a - b);
    const sharedPush = shared.map((c) => c.pushMs).filter(Number.isFinite).sort((a, b) => a - b);
    console.log(
      `- shared changes (svc-0's i0 failing, then passing, in turn): all ${
        thousands(N)
      } ACKed p50 ${ms(percentile(sharedLatencies, 50))}, p99 ${ms(sharedP99)}; push p50 ${
        ms(percentile(sharedPush, 50))
      }; server CPU per change p50 ${ms(percentile(sharedCpus, 50))}, max ${
        ms(sharedCpus.at(-1)!)
      }; responses to proxies per change: ${sharedResponses}`,
    );
  }
  console.log(
    `- policy writes (TrafficRoute \`rules: [{timeout}]\` on a different service each, PUT /v1/policies/trafficroute/${NAMESPACE}/svc-k): last ACK of an RDS response with the new timeout p50 ${
      ms(policyP50)
    }, p99 ${ms(policyP99)}, max ${ms(policyLatencies.at(-1)!)}; first affected proxy p50 ${
      ms(percentile(writes.map((w) => w.first).sort((a, b) => a - b), 50))
    }; PUT answered p50 ${
      ms(percentile(writes.map((w) => w.putMs).sort((a, b) => a - b), 50))
    }; includes the ${values.debounce} debounce and the PUT`,
  );
  console.log(
    `- policy push vs registry push (p50, max): push ${ms(percentile(policyPushMss, 50))}, ${
      ms(policyPushMss.at(-1) ?? NaN)
    } per policy write vs ${ms(percentile(pushMss, 50))}, ${
      ms(pushMss.at(-1) ?? NaN)
    } per registry change; server CPU ${ms(percentile(policyCpus, 50))}, ${
      ms(policyCpus.at(-1)!)
    } per policy write vs ${ms(percentile(cpus, 50))}, ${
      ms(cpus.at(-1)!)
    } per registry change; server ${
      policyServerShare.toFixed(0)
    }% of one core during the policy phase; pushes per write: ${
      [...new Set(writes.map((w) => w.pushes))].join(",")
    }; responses to proxies per write: ${policyResponses}`,
  );
  console.log(
    `- restart: SIGTERM → exit ${ms(tExit - tTerm)} (code ${exitCode}); ${
      RESTART_GAP_MS > 0 ? `held down ${ms(RESTART_GAP_MS)} (--restart-gap); ` : ""
    }exit → new server ready ${ms(tReady - tExit)}; ready → all ${thousands(N)} served ${
      ms(reserved.at - tReady)
    }; new server CPU meanwhile ${
      ms(restartCpu)
    }; server view after: ${sync2.streams} streams, ${sync2.inSync} in sync`,
  );
  const spread = (x: { min: number; p50: number; max: number }) =>
    `min ${ms(x.min)}, p50 ${ms(x.p50)}, max ${ms(x.max)}`;
  console.log(
    `- restart, per proxy, after the old process exited: first response ${
      spread(reserved.firstResponse)
    }; all four types ACKed ${spread(reserved.served)} (the gaps are grpc-js' reconnect backoff)`,
  );
  console.log(
    `- load process: ${finalStats.streamsOpened} streams opened, ${finalStats.responses} responses, ${finalStats.requests} requests, stream ends ${
      JSON.stringify(finalStats.endedBy)
    }, responses without the asked resource ${finalStats.missing}, load CPU total ${
      ms(finalStats.cpuMs)
    }`,
  );
  console.log(`- tree: ${await treeState()}`);
  const uptimeAfter = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(`- load average after the run: ${uptimeAfter}`);
} catch (error) {
  console.error(`The xDS bench could not run: ${(error as Error).stack}`);
  if (server) console.error(`Server stderr:\n${server.stderrTail()}`);
  code = 1;
} finally {
  if (load) {
    await load.send({ cmd: "exit" }).catch(() => {});
    await withTimeout(load.exited, 10_000, "for the load process").catch(() => {});
  }
  if (server) {
    const exit = await server.stop();
    if (exit !== 0) {
      console.error(`Server exited with code ${exit} on SIGTERM:\n${server.stderrTail()}`);
    }
  }
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
}
Deno.exit(code);
