/**
 * One heartbeat load process, started by `scripts/bench/main.ts` (never by
 * hand): it simulates a slice of the agents over a bounded pool of HTTP/1.1
 * keep-alive connections, registers each agent once, then drives heartbeats
 * open-loop at a fixed rate and reports a latency histogram.
 *
 * Protocol, one JSON object per line: it reads its {@link LoadConfig} from
 * the file named by its only argument, prints `{"event":"ready"}` once the
 * agents are registered, waits for `{"event":"start","at":<epoch ms>}` on
 * stdin, and prints one `{"event":"result",…}` ({@link LoadResult}) at the end.
 *
 * Open loop: request k is due at `start + k / rate`, whatever happened to
 * earlier requests, and its latency is measured from that due time. When the
 * server (or this process) falls behind, requests queue here and the wait
 * counts, so a stall cannot hide behind a slower send rate (coordinated
 * omission).
 */
import process from "node:process";
import { encodeRequest, Http1Connection } from "./http1.ts";
import { Histogram, type HistogramData } from "./histogram.ts";
import { startSignal } from "./load_process.ts";

/** One simulated agent: its node name and its own agent-role token. */
export interface BenchAgent {
  /** Global index, used for the hostname, address and service. */
  index: number;
  node: string;
  token: string;
}

/** What one load process is asked to do. */
export interface LoadConfig {
  host: string;
  port: number;
  agents: BenchAgent[];
  /** Heartbeats per second this process sends, across all its agents. */
  rate: number;
  /** Keep-alive connections this process holds (at most one request in flight each). */
  connections: number;
  /** Time before the measured window; its requests are sent but not counted. */
  warmupMs: number;
  /** The measured window. */
  durationMs: number;
  /** How long to wait after the window for requests still queued or in flight. */
  drainMs: number;
  /** `raw`: hand-written HTTP/1.1 over `Deno.connect`; `fetch`: the runtime's `fetch`. */
  client: "raw" | "fetch";
}

/** What one load process reports. */
export interface LoadResult {
  event: "result";
  registered: number;
  registrationErrors: number;
  registrationMs: number;
  /** Heartbeats due in the measured window. */
  scheduled: number;
  /** Successful (200, JSON) heartbeats completed inside the measured window. */
  okInWindow: number;
  /** Heartbeats due in the window that failed, by reason (`status 503`, `network`, …). */
  errors: Record<string, number>;
  /** Heartbeats due in the window never sent before the drain deadline. */
  unsent: number;
  /** Successful heartbeats over the whole run, warm-up and drain included (to match server counters). */
  okTotal: number;
  /** Latency from due time to response, for heartbeats due in the window. */
  latency: HistogramData;
  /** Latency from actual send to response: the part of `latency` spent outside this process. */
  service: HistogramData;
  /**
   * Per second of the run, warm-up included: latency of the heartbeats due
   * in that second, and how many completed with a 200 in it.
   */
  seconds: { latency: HistogramData; ok: number }[];
  /** CPU time this process used during the measured window, in ms. */
  cpuMs: number;
  /**
   * Longest gap between two turns of the pacing loop in the window (it
   * wakes every millisecond): a stall of this process, not of the server.
   */
  maxStallMs: number;
  firstError: string | null;
}

/** A channel carrying one request at a time. */
interface Lane {
  /** Sends and returns `null` on success or a short error reason. */
  send(agent: number, kind: "register" | "heartbeat"): Promise<string | null>;
  close(): void;
}

function nodeBody(agent: BenchAgent): string {
  const i = agent.index;
  return JSON.stringify({
    hostname: `bench-${i}`,
    addresses: [`10.0.${Math.floor(i / 256) % 256}.${i % 256}`],
    agentVersion: "bench",
    heartbeatInterval: "5s",
    instances: [{
      id: "web",
      service: `svc-${i % 100}`,
      port: 8080,
      protocol: "http",
      check: "passing",
      labels: { version: "v1" },
    }],
  });
}

const HEARTBEAT_BODY = JSON.stringify({ checks: [{ id: "web", status: "passing" }] });
const decoder = new TextDecoder();

/** Checks a heartbeat or registration answer: 200 with a JSON object body. */
function judge(status: number, body: string, kind: "register" | "heartbeat"): string | null {
  if (status !== 200) return `status ${status}`;
  try {
    const value = JSON.parse(body);
    const ok = kind === "heartbeat" ? typeof value?.ttlMs === "number" : value?.node;
    return ok ? null : "unexpected body";
  } catch {
    return "body not JSON";
  }
}

function rawLanes(config: LoadConfig): Lane[] {
  const requests = config.agents.map((agent) => {
    const auth = { authorization: `Bearer ${agent.token}` };
    return {
      register: encodeRequest(
        "PUT",
        `/v1/nodes/${agent.node}/registration`,
        auth,
        nodeBody(agent),
      ),
      heartbeat: encodeRequest("POST", `/v1/nodes/${agent.node}/heartbeat`, auth, HEARTBEAT_BODY),
    };
  });
  return Array.from({ length: config.connections }, () => {
    let conn: Http1Connection | null = null;
    return {
      async send(agent, kind) {
        if (!conn || conn.closed) conn = await Http1Connection.open(config.host, config.port);
        const res = await conn.send(requests[agent]![kind]);
        return judge(res.status, decoder.decode(res.body), kind);
      },
      close: () => conn?.close(),
    };
  });
}

function fetchLanes(config: LoadConfig): Lane[] {
  const base = `http://${config.host}:${config.port}/v1/nodes/`;
  const client = Deno.createHttpClient({ http2: false });
  const bodies = config.agents.map(nodeBody);
  return Array.from({ length: config.connections }, () => ({
    async send(agent, kind) {
      const a = config.agents[agent]!;
      const res = await fetch(
        base + a.node + (kind === "register" ? "/registration" : "/heartbeat"),
        {
          method: kind === "register" ? "PUT" : "POST",
          headers: { authorization: `Bearer ${a.token}`, "content-type": "application/json" },
          body: kind === "register" ? bodies[agent]! : HEARTBEAT_BODY,
          client,
        },
      );
      return judge(res.status, await res.text(), kind);
    },
    close: () => {},
  }));
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function registerAll(lanes: Lane[], count: number) {
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  await Promise.all(lanes.map(async (lane) => {
    while (next < count) {
      const agent = next++;
      const error = await lane.send(agent, "register").catch((e) => `network: ${e.message}`);
      if (error) {
        errors++;
        firstError ??= `registration of agent ${agent}: ${error}`;
      }
    }
  }));
  return { errors, firstError };
}

/** Drives the open-loop heartbeat schedule from `t0` (a `performance.now()` instant). */
async function drive(lanes: Lane[], config: LoadConfig, t0: number) {
  const interval = 1000 / config.rate;
  const windowStart = t0 + config.warmupMs;
  const windowEnd = windowStart + config.durationMs;
  const deadline = windowEnd + config.drainMs;
  const total = Math.floor((windowEnd - t0) / interval);
  const firstCounted = Math.ceil(config.warmupMs / interval);
  const latency = new Histogram();
  const service = new Histogram();
  const seconds = Array.from(
    { length: Math.ceil((deadline - t0) / 1000) },
    () => ({ latency: new Histogram(), ok: 0 }),
  );
  const errors: Record<string, number> = {};
  let firstError: string | null = null;
  let okInWindow = 0;
  let okTotal = 0;
  let next = 0;
  let inFlight = 0;
  let cpuAtStart = 0;
  let cpuAtEnd = 0;
  let maxStallMs = 0;
  const idle = [...lanes];

  const fire = async (lane: Lane, k: number) => {
    const due = t0 + k * interval;
    const sent = performance.now();
    const error = await lane.send(k % config.agents.length, "heartbeat")
      .catch((e) => `network: ${e.message}`);
    const done = performance.now();
    inFlight--;
    idle.push(lane);
    if (k >= firstCounted) {
      if (error) {
        const reason = error.startsWith("network") ? "network" : error;
        errors[reason] = (errors[reason] ?? 0) + 1;
        firstError ??= error;
      } else {
        latency.record(done - due);
        service.record(done - sent);
      }
    }
    if (!error) {
      okTotal++;
      const doneSecond = seconds[Math.floor((done - t0) / 1000)];
      if (doneSecond) doneSecond.ok++;
      seconds[Math.floor((due - t0) / 1000)]?.latency.record(done - due);
    }
    if (!error && done >= windowStart && done <= windowEnd) okInWindow++;
    pump();
  };

  function pump() {
    const now = performance.now();
    if (now > deadline) return;
    const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
    while (next < due && idle.length > 0) {
      inFlight++;
      fire(idle.pop()!, next++);
    }
  }

  const wait = t0 - performance.now();
  if (wait > 0) await sleep(wait);
  let lastTurn = performance.now();
  while (performance.now() < deadline && (next < total || inFlight > 0)) {
    const now = performance.now();
    if (now >= windowStart && now <= windowEnd) maxStallMs = Math.max(maxStallMs, now - lastTurn);
    lastTurn = now;
    if (!cpuAtStart && now >= windowStart) cpuAtStart = cpuMs();
    if (!cpuAtEnd && now >= windowEnd) cpuAtEnd = cpuMs();
    pump();
    await sleep(1);
  }
  cpuAtEnd ||= cpuMs();
  for (const lane of lanes) lane.close();
  // Requests cut off by closing count as network errors; let their promises settle.
  while (inFlight > 0) await sleep(5);
  return {
    scheduled: total - firstCounted,
    okInWindow,
    errors,
    unsent: total - next,
    okTotal,
    seconds: seconds.map((s) => ({ latency: s.latency.toJSON(), ok: s.ok })),
    latency: latency.toJSON(),
    service: service.toJSON(),
    cpuMs: cpuAtEnd - cpuAtStart,
    maxStallMs,
    firstError,
  };
}

async function main(configFile: string): Promise<void> {
  const config: LoadConfig = JSON.parse(await Deno.readTextFile(configFile));
  const lanes = config.client === "raw" ? rawLanes(config) : fetchLanes(config);
  const began = performance.now();
  const registration = await registerAll(lanes, config.agents.length);
  const registrationMs = performance.now() - began;
  console.log(JSON.stringify({ event: "ready" }));

  const at = await startSignal();
  const t0 = performance.now() + (at - Date.now());
  const run = await drive(lanes, config, t0);
  const result: LoadResult = {
    event: "result",
    registered: config.agents.length - registration.errors,
    registrationErrors: registration.errors,
    registrationMs,
    ...run,
    firstError: registration.firstError ?? run.firstError,
  };
  console.log(JSON.stringify(result));
}

if (import.meta.main) {
  const [configFile] = Deno.args;
  if (!configFile) {
    console.error("Usage: heartbeat_load.ts CONFIG.json (started by scripts/bench/main.ts)");
    Deno.exit(2);
  }
  await main(configFile);
  Deno.exit(0);
}
