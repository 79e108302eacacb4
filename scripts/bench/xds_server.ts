/**
 * The real Ironmesh server for the xDS benchmark: like `server_process.ts`,
 * but with the loopback plaintext xDS listener, the push debounce settings,
 * and fixed ports on request, so a restart comes back where the proxies
 * were connected (`--http-addr 127.0.0.1:PORT` instead of `:0`).
 */
import { launchServer } from "./server_process.ts";

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

/** Starts `cmd/main.ts server` on loopback and waits until `server.json` is written. */
export async function startXdsServer(options: XdsServerOptions): Promise<XdsServer> {
  const port = (name: "http" | "https" | "grpc" | "xds") =>
    `127.0.0.1:${options.ports?.[name] ?? 0}`;
  const server = await launchServer({
    dataDir: options.dataDir,
    ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
    ...(options.startTimeoutMs ? { startTimeoutMs: options.startTimeoutMs } : {}),
    args: [
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
    ],
  });
  const { xdsPlaintext } = server.info;
  if (!xdsPlaintext) {
    await server.stop();
    throw new Error("server.json has no xdsPlaintext address: --xds-plaintext-addr was ignored");
  }
  return {
    ...server.info,
    xdsPlaintext,
    adminToken: server.adminToken,
    stop: server.stop,
    exited: server.exited,
    stderrTail: server.stderrTail,
  };
}

/** The port of `host:port`. */
export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}
