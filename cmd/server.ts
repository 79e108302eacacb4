import { Command, Option } from "commander";
import { parse as parseYaml, stringify } from "yaml";
import { TokenService } from "../auth/tokens.ts";
import { createApp } from "../api/app.ts";
import { Metrics } from "../api/metrics.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../core/address.ts";
import { systemClock } from "../core/clock.ts";
import { InvalidError, UnavailableError } from "../core/errors.ts";
import { jsonLogger, type Logger } from "../core/log.ts";
import {
  describeServerConfig,
  SERVER_FLAGS,
  type ServerConfig,
  serverConfigSchema,
} from "../core/server_config.ts";
import { parseConfigText, parseWith } from "../core/validate.ts";
import { VERSION } from "../core/version.ts";
import { Registry } from "../registry/registry.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import type { Store } from "../store/store.ts";
import { startGrpcServer } from "../xds/grpc_server.ts";
import { stderrLine } from "./output.ts";

/** A server started by {@link startServer}. */
export interface RunningServer {
  http: HostPort;
  grpc: HostPort;
  adminTokenFile: string;
  /** Graceful stop: refuse new work, finish in-flight requests, flush, close the store. */
  stop(): Promise<void>;
}

const ADMIN_TOKEN_META = "admin_token_id";

/** Starts every part of the server on `config` and returns once all ports are bound. */
export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const store = openStore(config);
  // What has started so far, stopped in reverse if a later step fails.
  const started: (() => Promise<void>)[] = [() => store.close()];
  const unwind = async () => {
    for (const stop of started.reverse()) await stop().catch(() => {});
  };
  try {
    const clock = systemClock;
    const tokens = new TokenService(store, clock);
    const adminTokenFile = `${config.dataDir}/admin.token`;
    await ensureAdminToken(store, tokens, adminTokenFile, log);
    const registry = new Registry(store, { clock, log, reapAfterMs: config.reapAfter });
    await registry.start();
    started.push(() => registry.stop());
    let stopping = false;
    const metrics = new Metrics({
      objects: () => store.counts(),
      revision: () => registry.feed.revision,
      watchers: () => registry.feed.watchers,
      liveNodes: () => registry.liveNodes,
    });
    const app = createApp({ registry, tokens, store, metrics, log, stopping: () => stopping });
    const http = listenHttp(parseHostPort(config.httpAddr) as HostPort, app.fetch);
    started.push(() => http.server.shutdown());
    const grpc = await startGrpcServer(parseHostPort(config.grpcAddr) as HostPort, () => !stopping)
      .catch((error) => {
        throw new UnavailableError(
          `Cannot listen on --grpc-addr ${config.grpcAddr}: ${error.message}`,
        );
      });
    started.push(() => grpc.stop());
    const info = {
      http: formatHostPort(http.address),
      grpc: formatHostPort(grpc.address),
      pid: Deno.pid,
      version: VERSION,
    };
    await Deno.writeTextFile(`${config.dataDir}/server.json`, JSON.stringify(info, null, 2) + "\n");
    return {
      http: http.address,
      grpc: grpc.address,
      adminTokenFile,
      async stop() {
        stopping = true;
        // Wake blocking queries and event streams first, or shutdown would wait for them.
        registry.feed.close();
        await http.server.shutdown();
        await grpc.stop();
        await registry.stop();
        await store.close();
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}

function listenHttp(
  addr: HostPort,
  handler: Deno.ServeHandler,
): { server: Deno.HttpServer<Deno.NetAddr>; address: HostPort } {
  try {
    const server = Deno.serve(
      { hostname: addr.host, port: addr.port, onListen: () => {} },
      handler,
    );
    return { server, address: { host: addr.host, port: server.addr.port } };
  } catch (error) {
    throw new UnavailableError(
      `Cannot listen on --http-addr ${formatHostPort(addr)}: ${(error as Error).message}`,
    );
  }
}

function openStore(config: ServerConfig): Store {
  const url = config.store ?? `sqlite:${config.dataDir}/ironmesh.db`;
  if (url.startsWith("sqlite:")) {
    return openSqliteStore(url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, ""));
  }
  if (/^postgres(ql)?:/.test(url)) {
    throw new InvalidError(
      `Store "${
        url.split("@").pop()
      }" is not supported yet: PostgreSQL support is planned; use sqlite:PATH`,
    );
  }
  throw new InvalidError(`Invalid --store "${url}": expected sqlite:PATH`);
}

/**
 * Makes sure an admin token exists and is in `file` (mode 0600). A later
 * start reuses it; if the file was deleted, a new token replaces the old one,
 * which is revoked, since nobody can read its secret any more.
 */
async function ensureAdminToken(store: Store, tokens: TokenService, file: string, log: Logger) {
  const existingId = await store.getMeta(ADMIN_TOKEN_META);
  const onDisk = await Deno.readTextFile(file).then((t) => t.trim(), () => null);
  if (existingId && onDisk?.startsWith(`imt.${existingId}.`)) return;
  if (existingId) {
    await tokens.revoke(existingId).catch(() => {});
    log.warn("Admin token file missing or changed: issued a new admin token", { file });
  }
  const created = await tokens.create({
    kind: "api",
    role: "admin",
    description: "bootstrap admin token",
  });
  const tmp = `${file}.tmp`;
  await Deno.writeTextFile(tmp, created.token + "\n", { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, file);
  await store.setMeta(ADMIN_TOKEN_META, created.id);
}

/** Options as commander hands them over: only what a flag or variable set. */
type ServerFlags = Partial<Record<keyof ServerConfig, string>> & {
  config?: string;
  printConfig?: boolean;
};

/**
 * Resolves the effective configuration: flags and variables over the file
 * over defaults. A bad flag value is reported under the flag's name.
 */
export async function resolveServerConfig(flags: ServerFlags): Promise<ServerConfig> {
  let fromFile: Record<string, unknown> = {};
  if (flags.config) {
    const text = await Deno.readTextFile(flags.config).catch((error) => {
      throw new InvalidError(`Cannot read configuration file "${flags.config}": ${error.message}`);
    });
    parseConfigText(text, flags.config, serverConfigSchema);
    fromFile = parseYaml(text) ?? {};
  }
  const overrides = Object.fromEntries(
    Object.keys(SERVER_FLAGS).flatMap((key) => {
      const value = flags[key as keyof ServerConfig];
      return value === undefined ? [] : [[key, value]];
    }),
  );
  try {
    return parseWith(serverConfigSchema, { ...fromFile, ...overrides }, "server configuration");
  } catch (error) {
    if (error instanceof InvalidError) {
      const lines = error.problems.map((p) => {
        const key = p.pointer.slice(1) as keyof ServerConfig;
        const where = key in overrides ? SERVER_FLAGS[key] : `${flags.config}: ${p.pointer}`;
        return `${where}: ${p.message}`;
      });
      throw new InvalidError(
        `Invalid server configuration:\n  ${lines.join("\n  ")}`,
        error.problems,
      );
    }
    throw error;
  }
}

/** `ironmesh server`. */
export function serverCommand(): Command {
  const opt = (flags: string, env: string, description: string) =>
    new Option(flags, description).env(env);
  return new Command("server")
    .description("Run the Ironmesh control plane (registry, REST API, gRPC)")
    .addOption(
      opt("--config <file>", "IRONMESH_CONFIG", "YAML file with any of the settings below"),
    )
    .addOption(
      opt("--data-dir <dir>", "IRONMESH_DATA_DIR", "data directory (default: ./ironmesh-data)"),
    )
    .addOption(
      opt(
        "--http-addr <host:port>",
        "IRONMESH_HTTP_ADDR",
        "REST API address; port 0 picks a free port (default: 127.0.0.1:15080)",
      ),
    )
    .addOption(
      opt(
        "--grpc-addr <host:port>",
        "IRONMESH_GRPC_ADDR",
        "gRPC address; port 0 picks a free port (default: 127.0.0.1:15012)",
      ),
    )
    .addOption(
      opt(
        "--trust-domain <name>",
        "IRONMESH_TRUST_DOMAIN",
        "SPIFFE trust domain (default: ironmesh.local)",
      ),
    )
    .addOption(
      opt(
        "--store <url>",
        "IRONMESH_STORE",
        "storage URL, sqlite:PATH (default: sqlite:DATA_DIR/ironmesh.db)",
      ),
    )
    .addOption(
      opt(
        "--reap-after <duration>",
        "IRONMESH_REAP_AFTER",
        "remove nodes silent this long (default: 72h)",
      ),
    )
    .addOption(
      opt(
        "--log-level <level>",
        "IRONMESH_LOG_LEVEL",
        "debug, info, warn or error (default: info)",
      ),
    )
    .addOption(new Option("--print-config", "print the effective configuration as YAML and exit"))
    .action(async (flags: ServerFlags) => {
      const config = await resolveServerConfig(flags);
      if (flags.printConfig) {
        console.log(stringify(describeServerConfig(config)).trimEnd());
        return;
      }
      const log = jsonLogger(stderrLine, { level: config.logLevel });
      const server = await startServer(config, log);
      log.info("Ironmesh server started", {
        version: VERSION,
        http: formatHostPort(server.http),
        grpc: formatHostPort(server.grpc),
        dataDir: config.dataDir,
      });
      console.log(`Ironmesh ${VERSION} server ready`);
      console.log(`  REST API:    http://${formatHostPort(server.http)}`);
      console.log(`  gRPC:        ${formatHostPort(server.grpc)}`);
      console.log(`  Admin token: ${server.adminTokenFile}`);
      await waitForSignal();
      log.info("Shutting down");
      await server.stop();
      log.info("Stopped cleanly");
    });
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
    const handler = () => {
      for (const s of signals) Deno.removeSignalListener(s, handler);
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, handler);
  });
}
