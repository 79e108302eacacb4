/**
 * One load process of the `agent-tls` heartbeat shape, started by
 * `scripts/bench/main.ts` (never by hand). Each simulated agent does what
 * the real agent does, through the agent's own client (`agent/server_api.ts`
 * over `agent/tls_clients.ts`): it makes a P-256 key and CSR, enrols with the
 * join token, then registers and heartbeats over its own mTLS connection to
 * the TLS port at a fixed interval.
 *
 * Protocol, one JSON object per line, as `heartbeat_load.ts`: it reads its
 * {@link AgentTlsLoadConfig} from the file named by its only argument,
 * prints `{"event":"ready"}` once its agents are enrolled and registered,
 * waits for `{"event":"start","at":<epoch ms>}` on stdin, and prints one
 * {@link AgentTlsLoadResult} at the end.
 *
 * Schedule: each agent beats from its registration on, as a real agent
 * does, so none turns stale while the rest of the fleet enrols. Agent `i`
 * of `n` (fleet-wide) beats at wall-clock times `(i / n + k) * interval`,
 * so the fleet's beats are spread evenly, as the real agents' jitter
 * spreads them. A beat's latency is measured from its due time; an agent
 * whose previous beat is still running sends the next one late and the
 * wait counts.
 */
import process from "node:process";
import { decodeJoinToken, joinTokenIdentity } from "../../core/join_token.ts";
import { systemClock } from "../../core/clock.ts";
import { formatDuration } from "../../core/duration.ts";
import { createCsr, generateKeyPair, privateKeyPem } from "../../agent/pki.ts";
import type { HeartbeatBody, RegistrationBody } from "../../agent/registration.ts";
import { type ApiResult, ServerApi } from "../../agent/server_api.ts";
import { ClientPool, type ClientSource } from "../../agent/tls_clients.ts";
import { Histogram, type HistogramData } from "./histogram.ts";
import { startSignal } from "./load_process.ts";

/** What one load process is asked to do. */
export interface AgentTlsLoadConfig {
  /** The TLS port, e.g. `https://127.0.0.1:4430`. */
  url: string;
  /** The roots that verify the server (the trust bundle, PEM). */
  caPem: string;
  /** A join token with a use for each agent of the run. */
  joinToken: string;
  /** Global index of this process's first agent. */
  firstAgent: number;
  /** Agents in this process. */
  agents: number;
  /** Agents in the whole run (for the phase of each agent's beats). */
  fleet: number;
  intervalMs: number;
  /** Time before the measured window; its heartbeats are sent but not counted. */
  warmupMs: number;
  durationMs: number;
  /** How long to wait after the window for heartbeats still running. */
  drainMs: number;
}

/** What one load process reports. */
export interface AgentTlsLoadResult {
  event: "result";
  registered: number;
  /** Enrolments and registrations that failed, each with the agent left out of the run. */
  setupErrors: number;
  setupMs: number;
  /** Heartbeats due in the measured window. */
  scheduled: number;
  /** Heartbeats due in the window answered 200. */
  ok: number;
  /** Heartbeats due in the window that failed, by reason. */
  errors: Record<string, number>;
  /** Heartbeats due in the window not answered before the drain deadline. */
  unanswered: number;
  /** Times a call was sent again on a fresh connection (the server closed the reused one). */
  resends: number;
  /** From due time to answer, heartbeats due in the window. */
  latency: HistogramData;
  /** From send to answer: the part of `latency` spent outside this process. */
  service: HistogramData;
  /** This process's CPU time in the window, in ms. */
  cpuMs: number;
  /** This process's RSS at the end of the window, in bytes. */
  rssBytes: number;
  /**
   * Longest delay of a 10 ms timer in the window: a stall of this process
   * (e.g. its own garbage collection), which delays reading answers and so
   * shows in the latency without being the server's.
   */
  maxStallMs: number;
  firstError: string | null;
}

const HEARTBEAT: HeartbeatBody = { checks: [{ id: "web", status: "passing" }] };
/** Enrolments and registrations in flight at once, per process. */
const SETUP_CONCURRENCY = 16;

function nodeName(index: number): string {
  return `agent-${String(index + 1).padStart(5, "0")}`;
}

function registration(index: number, intervalMs: number): RegistrationBody {
  return {
    hostname: nodeName(index),
    addresses: [`10.1.${Math.floor(index / 256) % 256}.${index % 256}`],
    agentVersion: "bench",
    heartbeatInterval: formatDuration(intervalMs),
    instances: [{
      id: "web",
      service: `svc-${index % 100}`,
      port: 8080,
      protocol: "http",
      check: "passing",
      labels: { version: "v1" },
    }],
  };
}

function reason(result: ApiResult<unknown>): string {
  if (result.kind === "rejected") return `status ${result.status}: ${result.problem.detail}`;
  if (result.kind === "unreachable") return `network: ${result.error}`;
  return "ok";
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** One simulated agent, enrolled and registered. */
interface Agent {
  index: number;
  node: string;
  api: ServerApi;
  pool: ClientPool;
}

/** Enrols and registers one agent the way `agent/enrol.ts` and `agent/agent.ts` do. */
async function setUp(
  config: AgentTlsLoadConfig,
  index: number,
  enrolApi: ServerApi,
  identity: string,
  counter: { resends: number },
): Promise<Agent | string> {
  const node = nodeName(index);
  const keys = await generateKeyPair();
  const csr = await createCsr(keys, node, identity);
  const enrolled = await enrolApi.enrol({ token: config.joinToken, csr, node });
  if (enrolled.kind !== "ok") return `enrol ${node}: ${reason(enrolled)}`;
  const issued = enrolled.body as { certificate: string; bundle: string };
  const pool = new ClientPool({
    caPem: issued.bundle,
    certPem: issued.certificate,
    keyPem: await privateKeyPem(keys.privateKey),
  });
  // Counts the resends: the client asks for a fresh connection just before each.
  const clients: ClientSource = {
    acquire: () => pool.acquire(),
    refresh: () => {
      counter.resends++;
      pool.refresh();
    },
  };
  const api = new ServerApi(config.url, { clients });
  const registered = await api.register(node, registration(index, config.intervalMs));
  if (registered.kind !== "ok") {
    pool.close();
    return `register ${node}: ${reason(registered)}`;
  }
  return { index, node, api, pool };
}

/**
 * Enrols and registers every agent, a few at a time; each starts beating as
 * soon as it is registered (a node left silent for 3 intervals turns stale).
 */
async function setUpAll(
  config: AgentTlsLoadConfig,
  counter: { resends: number },
  start: (agent: Agent) => void,
) {
  const claims = decodeJoinToken(config.joinToken, systemClock);
  const identity = joinTokenIdentity(claims);
  const enrolPool = new ClientPool({ caPem: config.caPem });
  const enrolApi = new ServerApi(config.url, { clients: enrolPool });
  const agents: Agent[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, async () => {
    while (next < config.agents) {
      const result = await setUp(config, config.firstAgent + next++, enrolApi, identity, counter);
      if (typeof result === "string") {
        errors++;
        firstError ??= result;
      } else {
        agents.push(result);
        start(result);
      }
    }
  }));
  enrolPool.close();
  return { agents, errors, firstError };
}

/** Wall-clock milliseconds, precise: the schedule is shared by every load process. */
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The measured window, in wall-clock ms; unknown (never counted) until the
 * driver's start signal, while the agents already beat.
 */
interface Window {
  start: number;
  end: number;
  deadline: number;
}

/** Heartbeat statistics of one process. */
class Tally {
  readonly latency = new Histogram();
  readonly service = new Histogram();
  readonly errors: Record<string, number> = {};
  firstError: string | null = null;
  scheduled = 0;
  ok = 0;
}

/**
 * One agent's heartbeat loop, as the agent's own: from its registration
 * until the window's end. Its beats fall on a fleet-wide grid (`phase +
 * k * interval`, wall clock), so the fleet's load is even at every second.
 */
async function beat(agent: Agent, config: AgentTlsLoadConfig, window: Window, tally: Tally) {
  const phase = (agent.index / config.fleet) * config.intervalMs;
  let due = phase + Math.ceil((epochNow() - phase) / config.intervalMs) * config.intervalMs;
  for (; due < window.end; due += config.intervalMs) {
    await sleep(due - epochNow());
    const counted = due >= window.start && due < window.end;
    if (counted) tally.scheduled++;
    const sent = epochNow();
    const remaining = Math.min(window.deadline - sent, 10_000);
    if (remaining <= 0) return;
    const result = await agent.api.heartbeat(agent.node, HEARTBEAT, { timeoutMs: remaining });
    const done = epochNow();
    if (!counted) continue;
    if (result.kind === "ok") {
      tally.ok++;
      tally.latency.record(done - due);
      tally.service.record(done - sent);
    } else {
      const why = reason(result);
      const key = why.startsWith("network") ? "network" : why.split(":")[0]!;
      tally.errors[key] = (tally.errors[key] ?? 0) + 1;
      tally.firstError ??= `${agent.node}: ${why}`;
    }
  }
}

async function main(configFile: string): Promise<void> {
  const config: AgentTlsLoadConfig = JSON.parse(await Deno.readTextFile(configFile));
  const counter = { resends: 0 };
  const window: Window = { start: Infinity, end: Infinity, deadline: Infinity };
  const tally = new Tally();
  const loops: Promise<void>[] = [];
  const began = performance.now();
  const setup = await setUpAll(config, counter, (agent) => {
    loops.push(beat(agent, config, window, tally));
  });
  const setupMs = performance.now() - began;
  console.log(JSON.stringify({ event: "ready" }));

  const at = await startSignal();
  window.start = at + config.warmupMs;
  window.end = window.start + config.durationMs;
  window.deadline = window.end + config.drainMs;
  const resendsBefore = counter.resends;
  let maxStallMs = 0;
  let tick = epochNow();
  const stallWatch = setInterval(() => {
    const now = epochNow();
    if (now >= window.start && now <= window.end) {
      maxStallMs = Math.max(maxStallMs, now - tick - 10);
    }
    tick = now;
  }, 10);
  let cpuAtStart = 0;
  let cpuAtEnd = 0;
  let rssBytes = 0;
  const marks = [
    setTimeout(() => cpuAtStart = cpuMs(), window.start - Date.now()),
    setTimeout(() => {
      cpuAtEnd = cpuMs();
      rssBytes = process.memoryUsage.rss();
    }, window.end - Date.now()),
  ];
  await Promise.all(loops);
  clearInterval(stallWatch);
  for (const mark of marks) clearTimeout(mark);
  cpuAtEnd ||= cpuMs();
  rssBytes ||= process.memoryUsage.rss();
  for (const agent of setup.agents) agent.pool.close();
  const failed = Object.values(tally.errors).reduce((a, b) => a + b, 0);
  const result: AgentTlsLoadResult = {
    event: "result",
    registered: setup.agents.length,
    setupErrors: setup.errors,
    setupMs,
    scheduled: tally.scheduled,
    ok: tally.ok,
    errors: tally.errors,
    unanswered: tally.scheduled - tally.ok - failed,
    resends: counter.resends - resendsBefore,
    latency: tally.latency.toJSON(),
    service: tally.service.toJSON(),
    cpuMs: cpuAtEnd - cpuAtStart,
    rssBytes,
    maxStallMs,
    firstError: setup.firstError ?? tally.firstError,
  };
  console.log(JSON.stringify(result));
}

if (import.meta.main) {
  const [configFile] = Deno.args;
  if (!configFile) {
    console.error("Usage: agent_tls_load.ts CONFIG.json (started by scripts/bench/main.ts)");
    Deno.exit(2);
  }
  await main(configFile);
  Deno.exit(0);
}
