/**
 * Helpers shared by the agent's tests: run `runAgent()` in-process with a
 * temporary data directory, wait for conditions, and a plain HTTP server
 * double that records requests and answers as a test tells it (for the
 * failures the real server cannot be made to produce). The server an
 * enrolled agent talks to is the real one, `_real_server_testing.ts`. Tests
 * only.
 */
import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import type { Clock } from "../core/clock.ts";
import { jsonLogger } from "../core/log.ts";
import { runAgent } from "./agent.ts";

/** The host every test agent runs on. */
export const HOST = { hostname: "test-host", interfaces: [] };

/**
 * Polls `predicate` every 10ms; fails the test if it is still false after
 * `timeoutMs`. The default is generous because CI shares two cores with
 * parallel test files: it bounds a hang, it is not a speed assertion.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await predicate())) {
    if (performance.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Options of {@link startAgent}. */
export interface TestAgentOptions {
  joinToken?: string;
  server?: string;
  /** Reuse a data directory (a restart); default: a new temporary one. */
  dataDir?: string;
  keepInstancesOnExit?: boolean;
  random?: () => number;
  clock?: Clock;
}

/** A running test agent; `stop()` aborts it and waits for it to finish. */
export interface TestAgent {
  dataDir: string;
  done: Promise<void>;
  logs(): Record<string, unknown>[];
  rawLogs: string[];
  stop(): Promise<void>;
}

/**
 * Runs the agent with configuration `yaml` until `stop()`. Its data
 * directory is removed by {@link removeDataDir}, not by `stop()`, so a test
 * can restart an agent on the same directory.
 */
export function startAgent(yaml: string, options: TestAgentOptions = {}): TestAgent {
  const dataDir = options.dataDir ?? `${Deno.makeTempDirSync()}/data`;
  const lines: string[] = [];
  const controller = new AbortController();
  const done = runAgent({
    server: options.server,
    joinToken: options.joinToken,
    config: parseAgentConfig(yaml, "agent.yaml"),
    dataDir,
    host: HOST,
    random: options.random ?? (() => 0.5),
    logger: jsonLogger((line) => lines.push(line)),
    ...(options.keepInstancesOnExit === undefined
      ? {}
      : { keepInstancesOnExit: options.keepInstancesOnExit }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  }, controller.signal);
  // Tests await `done` themselves; this only keeps an early rejection from
  // counting as unhandled before they do.
  done.catch(() => {});
  return {
    dataDir,
    done,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    rawLogs: lines,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

/** Removes the temporary directory that holds an agent's data directory. */
export async function removeDataDir(dataDir: string): Promise<void> {
  await Deno.remove(dataDir.replace(/\/data$/, ""), { recursive: true });
}

/** One request the plain double received. */
export interface RecordedRequest {
  method: string;
  path: string;
  auth: string | null;
  contentType: string | null;
  body: unknown;
}

/** Decides the answer to a request; `undefined` means the double's default answer. */
export type Answer = (
  request: RecordedRequest,
  index: number,
) => Response | undefined | Promise<Response | undefined>;

/** A running plain double; call `close()` in a `finally`. */
export interface ServerDouble {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** A problem document as the server sends errors; `headers` adds e.g. `retry-after`. */
export function problem(
  status: number,
  detail: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ type: "about:blank", title: "Error", status, detail }), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/**
 * Starts a plain HTTP double on 127.0.0.1 and a free port; without an
 * answer it replies 204 to everything.
 */
export function startServerDouble(answer: Answer = () => undefined): ServerDouble {
  const requests: RecordedRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const text = await request.text();
    const recorded: RecordedRequest = {
      method: request.method,
      path: new URL(request.url).pathname,
      auth: request.headers.get("authorization"),
      contentType: request.headers.get("content-type"),
      body: text === "" ? undefined : JSON.parse(text),
    };
    const index = requests.push(recorded) - 1;
    return (await answer(recorded, index)) ?? new Response(null, { status: 204 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}
