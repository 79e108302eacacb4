/**
 * `ironmesh server`: its flags (names from `SERVER_FLAGS`, defaults from the
 * configuration schema, both in `core/server_config.ts`), the effective
 * configuration, and the process around `startServer()` (`server_start.ts`):
 * the ready banner and a clean stop on SIGTERM or SIGINT.
 */
import { Command, Option } from "commander";
import { parse as parseYaml, stringify } from "yaml";
import { formatHostPort } from "../core/address.ts";
import { InvalidError } from "../core/errors.ts";
import { jsonLogger } from "../core/log.ts";
import {
  describeServerConfig,
  SERVER_FLAGS,
  type ServerConfig,
  serverConfigSchema,
} from "../core/server_config.ts";
import { parseConfigText, parseWith } from "../core/validate.ts";
import { VERSION } from "../core/version.ts";
import { resolveLogFormat, stderrLine } from "./output.ts";
import { startServer } from "./server_start.ts";

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
        const where = key in overrides || !flags.config
          ? SERVER_FLAGS[key] ?? p.pointer
          : `${flags.config}: ${p.pointer}`;
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

/**
 * The help of every server setting, with the placeholder of its value. The
 * flag's name comes from `SERVER_FLAGS`, its variable from the flag, and the
 * default the help shows from the schema itself; `unset` says what happens
 * when a setting without a default is not given.
 */
const SERVER_HELP: Record<keyof ServerConfig, { value?: string; help: string; unset?: string }> = {
  dataDir: { value: "<dir>", help: "data directory" },
  httpAddr: {
    value: "<host:port>",
    help: "plain-HTTP REST API address, loopback only unless allowed; port 0 picks a free port",
  },
  httpsAddr: {
    value: "<host:port>",
    help: "TLS address for agents (mTLS) and remote automation; port 0 picks a free port",
  },
  grpcAddr: {
    value: "<host:port>",
    help: "gRPC address for xDS (mTLS, client certificates required); port 0 picks a free port",
  },
  allowRemotePlaintext: {
    help: "allow --http-addr on a non-loopback address (tokens then cross the network in clear)",
  },
  tlsSan: {
    value: "<names>",
    help: "extra DNS names and IPs for the server certificate, comma-separated",
  },
  advertise: {
    value: "<urls>",
    help: "URLs agents enrol with, written into join tokens, comma-separated",
    unset: "the TLS address",
  },
  trustDomain: { value: "<name>", help: "SPIFFE trust domain" },
  leafTtl: { value: "<duration>", help: "lifetime of workload certificates" },
  maxLeafTtl: { value: "<duration>", help: "upper bound of --leaf-ttl" },
  renewRate: {
    value: "<per-second>",
    help: "certificate renewals granted per second, in bursts of twice that",
  },
  caCert: {
    value: "<file>",
    help:
      "your signing CA certificate (PEM) instead of a generated CA; with --ca-key and --ca-chain",
  },
  caKey: { value: "<file>", help: "private key (PEM) of --ca-cert" },
  caChain: { value: "<file>", help: "chain from --ca-cert up to and including your root (PEM)" },
  caKeyPassphraseFile: {
    value: "<file>",
    help: "passphrase that encrypts CA keys at rest (or set IRONMESH_CA_KEY_PASSPHRASE)",
  },
  store: {
    value: "<url>",
    help: "storage URL, sqlite:PATH or postgres://USER@HOST:PORT/DB",
    unset: "sqlite:DATA_DIR/ironmesh.db",
  },
  reapAfter: { value: "<duration>", help: "remove nodes silent this long" },
  xdsPlaintextAddr: {
    value: "<host:port>",
    help: "plaintext xDS listener for local tools and tests, loopback only",
    unset: "none",
  },
  pushDebounce: {
    value: "<duration>",
    help: "push after the registry has been quiet this long",
  },
  pushMaxDelay: { value: "<duration>", help: "but never later than this after the first change" },
  headerTimeout: {
    value: "<duration>",
    help: "time a new connection has to send a request's headers or the HTTP/2 preface",
  },
  idleTimeout: {
    value: "<duration>",
    help: "time a connection may sit idle between requests (gRPC: with no call open)",
  },
  maxConnections: { value: "<count>", help: "connections each port (HTTP and gRPC) holds at once" },
  logLevel: { value: "<level>", help: "debug, info, warn or error" },
  logFormat: {
    value: "<format>",
    help: "json, text, or auto: text on a terminal, JSON otherwise",
  },
};

/** The order `--help` lists the settings in. */
const HELP_ORDER: readonly (keyof ServerConfig)[] = [
  "dataDir",
  "httpAddr",
  "httpsAddr",
  "grpcAddr",
  "allowRemotePlaintext",
  "tlsSan",
  "advertise",
  "trustDomain",
  "leafTtl",
  "maxLeafTtl",
  "renewRate",
  "caCert",
  "caKey",
  "caChain",
  "caKeyPassphraseFile",
  "store",
  "reapAfter",
  "xdsPlaintextAddr",
  "pushDebounce",
  "pushMaxDelay",
  "headerTimeout",
  "idleTimeout",
  "maxConnections",
  "logLevel",
  "logFormat",
];

/** `IRONMESH_HTTP_ADDR` for `--http-addr`. */
function variableOf(flag: string): string {
  return "IRONMESH_" + flag.slice(2).toUpperCase().replaceAll("-", "_");
}

/** Every server option of commander: flag, variable, help with the schema's default. */
function serverOptions(): Option[] {
  const defaults = describeServerConfig(serverConfigSchema.parse({}));
  const config = new Option("--config <file>", "YAML file with any of the settings below")
    .env("IRONMESH_CONFIG");
  return [
    config,
    ...HELP_ORDER.map((key) => {
      const { value, help, unset } = SERVER_HELP[key];
      const flag = SERVER_FLAGS[key];
      const fallback = defaults[key];
      const shown = unset ??
        (fallback === undefined || fallback === false ||
            (Array.isArray(fallback) && fallback.length === 0)
          ? undefined
          : String(fallback));
      const text = shown === undefined ? help : `${help} (default: ${shown})`;
      return new Option(value ? `${flag} ${value}` : flag, text).env(variableOf(flag));
    }),
  ];
}

/** `ironmesh server`. */
export function serverCommand(): Command {
  const command = new Command("server")
    .description("Run the Ironmesh control plane (registry, REST API, CA, gRPC)");
  for (const option of serverOptions()) command.addOption(option);
  return command
    .addOption(new Option("--print-config", "print the effective configuration as YAML and exit"))
    .action(async (flags: ServerFlags, command: Command) => {
      // Commander turns a boolean flag on for any value of its variable, "false" included.
      if (command.getOptionValueSource("allowRemotePlaintext") === "env") {
        flags.allowRemotePlaintext = Deno.env.get("IRONMESH_ALLOW_REMOTE_PLAINTEXT") ?? "false";
      }
      const config = await resolveServerConfig(flags);
      if (flags.printConfig) {
        console.log(stringify(describeServerConfig(config)).trimEnd());
        return;
      }
      const log = jsonLogger(stderrLine, {
        level: config.logLevel,
        format: resolveLogFormat(config.logFormat),
      });
      const server = await startServer(config, log);
      // Listen for signals before announcing readiness: a supervisor (or a test) that stops the
      // server right after "ready" must get a clean shutdown, not the default kill.
      const signalled = waitForSignal();
      log.info("Ironmesh server started", {
        version: VERSION,
        http: formatHostPort(server.http),
        https: formatHostPort(server.https),
        grpc: formatHostPort(server.grpc),
        dataDir: config.dataDir,
      });
      console.log(`Ironmesh ${VERSION} server ready`);
      console.log(`  REST API:    http://${formatHostPort(server.http)}`);
      console.log(`  TLS (mTLS):  https://${formatHostPort(server.https)}`);
      console.log(`  gRPC (xDS):  ${formatHostPort(server.grpc)}`);
      if (server.xdsPlaintext) {
        console.log(
          `  xDS (plain): ${formatHostPort(server.xdsPlaintext)} (loopback, tools and tests)`,
        );
      }
      console.log(`  Admin token: ${server.adminTokenFile}`);
      await signalled;
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
