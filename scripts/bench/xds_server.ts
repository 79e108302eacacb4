/**
 * The real Ironmesh server for the xDS benchmark: like `server_process.ts`,
 * but with the loopback plaintext xDS listener, the push debounce settings,
 * and fixed ports on request, so a restart comes back where the proxies
 * were connected (`--http-addr 127.0.0.1:PORT` instead of `:0`).
 */
import { fileURLToPath } from "node:url";

/** Options of {@link startXdsServer}. */
export interface XdsServerOptions {
  /** `--data-dir`; reused across a restart. */
  dataDir: string;
  /** Ports to bind; `0` (the default) picks free ones. A restart passes the first run's ports. */
  ports?: Partial<Record<"http" | "https" | "grpc" | "xds", number>>;
  /** `--push-debounce`, e.g. `10ms`. */
  pushDebounce: string;
  /** `--push-max-delay`, e.g. `100ms`. */
  pushMaxDelay: string;
  /** When set, the server runs with `--cpu-prof` and writes its profile here on exit. */
  cpuProfDir?: string;
  /** How long to wait for `server.json`. Default: 60 s (the first run may download packages). */
  startTimeoutMs?: number;
}

/** What `server.json` says, plus the admin token. */
export interface XdsServerInfo {
  /** `host:port` of each listener. */
  http: string;
  https: string;
  grpc: string;
  xdsPlaintext: string;
  pid: number;
  adminToken: string;
}

/** A started server. */
export interface XdsServer extends XdsServerInfo {
  /** Sends SIGTERM and waits for the exit; returns the exit code. */
  stop(): Promise<number>;
  /** Resolves with the exit code when the process ends (for any reason). */
  exited: Promise<number>;
  /** The last lines the server wrote to stderr (its log at `warn` level). */
  stderrTail(): string;
}

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Starts `cmd/main.ts server` on loopback and waits until `server.json` is written. */
export async function startXdsServer(options: XdsServerOptions): Promise<XdsServer> {
  const { dataDir } = options;
  const port = (name: "http" | "https" | "grpc" | "xds") =>
    `127.0.0.1:${options.ports?.[name] ?? 0}`;
  const profile = options.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  // A stale server.json from the previous run would be read as this one's.
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
      "--http-addr",
      port("http"),
      "--https-addr",
      port("https"),
      "--grpc-addr",
      port("grpc"),
      "--xds-plaintext-addr",
      port("xds"),
      "--push-debounce",
      options.pushDebounce,
      "--push-max-delay",
      options.pushMaxDelay,
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
  let info: Omit<XdsServerInfo, "adminToken"> | null = null;
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
    if (!info) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!info.xdsPlaintext) {
    child.kill("SIGKILL");
    throw new Error("server.json has no xdsPlaintext address: --xds-plaintext-addr was ignored");
  }
  const adminToken = (await Deno.readTextFile(`${dataDir}/admin.token`)).trim();
  return {
    ...info,
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

/** The port of `host:port`. */
export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}
