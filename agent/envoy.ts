/**
 * The host's Envoy sidecar: the bootstrap the agent writes for it, where the
 * Envoy executable is (`--envoy-binary`, else `envoy` on `PATH`), and the
 * supervision of the Envoy process.
 *
 * The bootstrap sends Envoy to the agent's local xDS endpoint over plaintext
 * on loopback; the agent relays that stream to the server over mTLS with its
 * own certificate (`xds_relay.ts`), so Envoy needs no certificate files to
 * reach the control plane. Everything else (listeners, clusters, routes,
 * endpoints, secrets) comes over ADS: the trust bundle `ROOTCA` from the
 * server, the workload certificate `default` from the agent itself, which
 * answers that SDS request on the relayed stream (`sds.ts`), so the private
 * key never leaves the host.
 */
import { formatDuration } from "../core/duration.ts";
import type { Logger } from "../core/log.ts";
import { backoffDelay } from "./backoff.ts";
import { sleep } from "./wait.ts";

/** The executable looked for on `PATH` when `--envoy-binary` is not given. */
export const ENVOY_COMMAND = "envoy";

/**
 * The first executable file named `command` in the directories of `path`
 * (a `PATH` value, `:`-separated; an empty entry is the current directory,
 * as for a shell), or `undefined`.
 */
export async function findOnPath(command: string, path: string): Promise<string | undefined> {
  for (const dir of path.split(":")) {
    const candidate = `${dir === "" ? "." : dir.replace(/\/+$/, "")}/${command}`;
    try {
      const info = await Deno.stat(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch {
      // Not there, or not readable: the next directory.
    }
  }
  return undefined;
}

/** Where the bootstrap lives: `DATA_DIR/envoy/bootstrap.json`. */
export function bootstrapPath(dataDir: string): string {
  return `${dataDir}/envoy/bootstrap.json`;
}

/** Writes the bootstrap atomically (a reader never sees half a file); returns its path. */
export async function writeBootstrap(
  dataDir: string,
  bootstrap: Record<string, unknown>,
): Promise<string> {
  await Deno.mkdir(`${dataDir}/envoy`, { recursive: true, mode: 0o700 });
  const path = bootstrapPath(dataDir);
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(bootstrap, null, 2) + "\n", {
    mode: 0o644,
  });
  await Deno.rename(`${path}.tmp`, path);
  return path;
}

/** Options of {@link superviseEnvoy}. */
export interface EnvoySupervision {
  /** The Envoy executable. */
  binary: string;
  /** The bootstrap file, passed as `-c`. */
  bootstrap: string;
  log: Logger;
  random?: () => number;
  /** After this long up, a crash counts as the first again (backoff resets). Default: 10 s. */
  stableMs?: number;
  /** Time Envoy gets to exit after SIGTERM before SIGKILL. Default: 5 s. */
  graceMs?: number;
  /** Backoff between restarts. Default: 500 ms doubling up to 30 s, full jitter, at least 100 ms. */
  backoff?: { baseMs: number; capMs: number };
  /** Told when Envoy starts (`true`) and when it exits (`false`, with how). */
  onState?: (running: boolean, outcome?: string) => void;
}

/**
 * Runs Envoy until `signal` aborts: starts `binary -c bootstrap`, forwards
 * each line it prints to the agent's log, restarts it with backoff whenever
 * it exits or cannot start, and on abort sends SIGTERM (SIGKILL after the
 * grace time). Never rejects.
 */
export async function superviseEnvoy(
  options: EnvoySupervision,
  signal: AbortSignal,
): Promise<void> {
  const { log } = options;
  const random = options.random ?? Math.random;
  const stableMs = options.stableMs ?? 10_000;
  const backoff = options.backoff ?? { baseMs: 500, capMs: 30_000 };
  let attempt = 0;
  let starts = 0;
  while (!signal.aborted) {
    const startedAt = performance.now();
    let outcome: string;
    try {
      outcome = await runOnce(options, signal, ++starts);
    } catch (error) {
      outcome = `cannot start: ${error instanceof Error ? error.message : String(error)}`;
    }
    options.onState?.(false, outcome);
    if (signal.aborted) break;
    if (performance.now() - startedAt >= stableMs) attempt = 0;
    const delay = Math.max(100, backoffDelay(attempt++, backoff, random));
    log.warn("Envoy exited; restarting", {
      binary: options.binary,
      outcome,
      restarts: attempt,
      retryIn: formatDuration(delay),
    });
    await sleep(delay, signal);
  }
}

async function runOnce(options: EnvoySupervision, signal: AbortSignal, n: number): Promise<string> {
  const { log } = options;
  const child = new Deno.Command(options.binary, {
    args: ["-c", options.bootstrap],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  log.info("Envoy started", { binary: options.binary, pid: child.pid, start: n });
  options.onState?.(true);
  const forward = async (stream: ReadableStream<Uint8Array>, name: string) => {
    let rest = "";
    const emit = (line: string) => {
      if (line.trim() !== "") log.info("envoy", { pid: child.pid, stream: name, line });
    };
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      parts.forEach(emit);
    }
    emit(rest);
  };
  const output = Promise.all([forward(child.stdout, "stdout"), forward(child.stderr, "stderr")]);
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    log.info("Stopping Envoy", { pid: child.pid });
    try {
      child.kill("SIGTERM");
    } catch {
      return; // Already gone.
    }
    killTimer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited within the grace time after all.
      }
    }, options.graceMs ?? 5_000);
  };
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
  try {
    const status = await child.status;
    await output;
    const how = status.signal ? `killed by ${status.signal}` : `exit status ${status.code}`;
    if (signal.aborted) log.info("Envoy stopped", { pid: child.pid, outcome: how });
    return how;
  } finally {
    signal.removeEventListener("abort", stop);
    clearTimeout(killTimer);
  }
}
