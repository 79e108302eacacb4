/**
 * The health-check runners: one probe per kind (HTTP, TCP, gRPC, exec), each
 * bounded by its timeout and by the agent's shutdown. A runner only reports
 * the raw outcome of one run; thresholds are applied by the monitor.
 */
// Only the status codes' names: the probe runs over the runtime's fetch (grpc_fetch.ts).
import * as grpc from "@grpc/grpc-js";
import type { CheckConfig, CheckTarget } from "../core/agent_config.ts";
import { formatDuration } from "../core/duration.ts";
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  HEALTH_CHECK_PATH,
  SERVING_STATUS,
  servingStatusName,
} from "../core/grpc_health.ts";
import { GrpcStatusError, grpcUnary } from "./grpc_fetch.ts";
import { VERSION } from "../core/version.ts";

/** The raw outcome of one run of a check. */
export interface CheckOutcome {
  ok: boolean;
  /** What the probe saw, for the operator; at most {@link MAX_OUTPUT} characters. */
  output: string;
}

/** Runs one kind of check; `close()` releases what the runner keeps between runs. */
export interface CheckRunner {
  /** Runs the check once; never rejects, and ends by the check's timeout or when `signal` aborts. */
  run(signal: AbortSignal): Promise<CheckOutcome>;
  close(): void;
}

/** Longest check output the server accepts. */
export const MAX_OUTPUT = 4096;
/** How much of an HTTP answer's body goes into the output. */
const HTTP_BODY_BYTES = 512;

/** Cuts `text` to {@link MAX_OUTPUT} characters, marking the cut. */
export function truncateOutput(text: string): string {
  return text.length <= MAX_OUTPUT ? text : text.slice(0, MAX_OUTPUT - 1) + "…";
}

/** Creates the runner for a check; gRPC runners keep one channel across runs. */
export function createCheckRunner(check: CheckConfig): CheckRunner {
  const probe = probeFor(check.target);
  return {
    async run(signal) {
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), check.timeoutMs);
      try {
        const outcome = await probe.run(AbortSignal.any([signal, timeout.signal]));
        if (timeout.signal.aborted) {
          return { ok: false, output: `Timed out after ${formatDuration(check.timeoutMs)}` };
        }
        return { ok: outcome.ok, output: truncateOutput(outcome.output) };
      } catch (error) {
        if (timeout.signal.aborted) {
          return { ok: false, output: `Timed out after ${formatDuration(check.timeoutMs)}` };
        }
        return { ok: false, output: truncateOutput(errorText(error)) };
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => probe.close(),
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function probeFor(target: CheckTarget): CheckRunner {
  switch (target.kind) {
    case "http":
      return { run: (signal) => probeHttp(target.url, signal), close: () => {} };
    case "tcp":
      return { run: (signal) => probeTcp(target.hostname, target.port, signal), close: () => {} };
    case "grpc":
      return grpcProbe(target.hostname, target.port, target.service);
    case "exec":
      return { run: (signal) => probeExec(target.command, signal), close: () => {} };
  }
}

async function probeHttp(url: string, signal: AbortSignal): Promise<CheckOutcome> {
  // Redirects are not followed: a 3xx already proves the app answers, and
  // following one could probe a different host than the one configured.
  const response = await fetch(url, {
    signal,
    redirect: "manual",
    headers: { "user-agent": `ironmesh-agent/${VERSION}` },
  });
  const body = await readPrefix(response, HTTP_BODY_BYTES);
  const ok = response.status >= 200 && response.status < 400;
  const head = `HTTP GET ${url}: ${response.status} ${response.statusText}`.trimEnd();
  return { ok, output: body === "" ? head : `${head}: ${body}` };
}

/** Reads at most `limit` bytes of a body and drops the rest, so a huge page costs nothing. */
async function readPrefix(response: Response, limit: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(bytes.subarray(0, limit)).trim();
}

function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

async function probeTcp(
  hostname: string,
  port: number,
  signal: AbortSignal,
): Promise<CheckOutcome> {
  const where = hostPort(hostname, port);
  try {
    const conn = await Deno.connect({ hostname, port, signal });
    conn.close();
    return { ok: true, output: `TCP connect ${where}: success` };
  } catch (error) {
    return { ok: false, output: `TCP connect ${where}: ${errorText(error)}` };
  }
}

function grpcProbe(hostname: string, port: number, service: string): CheckRunner {
  const target = hostPort(hostname, port);
  const url = new URL(HEALTH_CHECK_PATH, `http://${target}`);
  let client: Deno.HttpClient | undefined;
  return {
    async run(signal) {
      // One client for the life of the check: a new one per run would open a TCP
      // connection and an HTTP/2 session every interval. Cleartext HTTP/2 with prior
      // knowledge, as gRPC servers speak it, over the runtime's own HTTP/2 (see grpc_fetch.ts).
      client ??= Deno.createHttpClient({ http1: false, http2: true });
      try {
        const answer = await grpcUnary(
          client,
          url,
          encodeHealthCheckRequest({ service }),
          signal,
        );
        const status = decodeHealthCheckResponse(answer).status ?? SERVING_STATUS.UNKNOWN;
        return {
          ok: status === SERVING_STATUS.SERVING,
          output: `gRPC health ${target} service "${service}": ${servingStatusName(status)}`,
        };
      } catch (error) {
        const text = error instanceof GrpcStatusError
          ? `${error.code} ${grpc.status[error.code] ?? "UNKNOWN"}: ${error.details}`
          : errorText(error);
        return { ok: false, output: `gRPC health ${target}: ${text}` };
      }
    },
    close() {
      client?.close();
      client = undefined;
    },
  };
}

async function probeExec(
  command: [string, ...string[]],
  signal: AbortSignal,
): Promise<CheckOutcome> {
  const [program, ...args] = command;
  const child = new Deno.Command(program, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  // SIGKILL, not SIGTERM: a check that outlived its timeout has nothing to
  // save, and one that ignores SIGTERM would pile up with every interval.
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited between the abort and the kill.
    }
  };
  if (signal.aborted) kill();
  else signal.addEventListener("abort", kill, { once: true });
  try {
    const result = await child.output();
    const decoder = new TextDecoder();
    const text = [result.stdout, result.stderr].map((b) => decoder.decode(b).trim())
      .filter((t) => t !== "").join("\n");
    const how = result.signal ? `killed by ${result.signal}` : `exit status ${result.code}`;
    return { ok: result.success, output: text === "" ? how : `${how}: ${text}` };
  } finally {
    signal.removeEventListener("abort", kill);
  }
}
