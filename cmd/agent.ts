/**
 * `ironmesh agent`: runs on every VM or bare-metal host, enrols once with a
 * join token, then registers the host's services with the server over mTLS,
 * runs their health checks, heartbeats and renews its certificate until
 * SIGTERM or SIGINT.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { InvalidError } from "../core/errors.ts";
import { runAgent } from "../agent/agent.ts";
import { jsonLogger, type Level, LEVELS } from "../core/log.ts";
import { stderrLine } from "./output.ts";
import { loadAgentConfig, readTokenFile } from "../agent/host.ts";
import { parseLocalXdsAddr } from "../agent/xds_relay.ts";
import { DEFAULT_LOCAL_XDS_ADDR } from "../core/agent_config.ts";
import { DEFAULT_DNS_ADDR } from "../agent/dns_server.ts";
import { DEFAULT_METRICS_ADDR } from "../agent/metrics.ts";
import { ENVOY_COMMAND, findOnPath } from "../agent/envoy.ts";
import { type HostPort, parseHostPort } from "../core/address.ts";
import { isIP } from "node:net";

interface AgentFlags {
  server?: string | undefined;
  joinToken?: string | undefined;
  joinTokenFile?: string | undefined;
  config?: string | undefined;
  dataDir: string;
  keepInstancesOnExit?: boolean | undefined;
  logLevel: Level;
  localXdsAddr: HostPort;
  xdsServer?: string | undefined;
  envoyBinary?: string | undefined;
  dnsAddr: HostPort;
  metricsAddr: HostPort;
}

const KEEP_ENV = "IRONMESH_KEEP_INSTANCES_ON_EXIT";

function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`Invalid URL "${value}": use e.g. https://10.0.0.1:8443`);
  }
  if (url.protocol !== "https:") {
    throw new InvalidArgumentError(
      `Invalid URL "${value}": the scheme must be https, the agent talks to the server only over TLS`,
    );
  }
  return value;
}

function localXdsAddr(value: string): HostPort {
  try {
    return parseLocalXdsAddr(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** `HOST:PORT` to listen on, the host an IP literal or `localhost`; a message fit for the user otherwise. */
export function parseListenAddr(value: string): HostPort {
  const parsed = parseHostPort(value);
  if (typeof parsed === "string") throw new Error(parsed);
  if (parsed.host !== "localhost" && isIP(parsed.host) === 0) {
    throw new Error(`Invalid address "${value}": the host must be an IP address or localhost`);
  }
  return parsed;
}

function listenAddr(value: string): HostPort {
  try {
    return parseListenAddr(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function xdsServerAddr(value: string): string {
  if (!/^(?:\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(value)) {
    throw new InvalidArgumentError(
      `Invalid address "${value}": expected HOST:PORT or [IPV6]:PORT, e.g. 10.0.0.1:15012`,
    );
  }
  return value;
}

/**
 * The join token: `--join-token` or the contents of `--join-token-file`.
 * When both are set, one on the command line beats one from the
 * environment, so a one-off override works under a unit file that sets the
 * other; two from the same place are an error.
 */
async function resolveJoinToken(flags: AgentFlags, command: Command): Promise<string | undefined> {
  const direct = flags.joinToken === "" ? undefined : flags.joinToken;
  const file = flags.joinTokenFile === "" ? undefined : flags.joinTokenFile;
  if (direct !== undefined && file !== undefined) {
    const directSource = command.getOptionValueSource("joinToken");
    const fileSource = command.getOptionValueSource("joinTokenFile");
    if (directSource === fileSource) {
      throw new InvalidError(
        `Options "--join-token" and "--join-token-file" cannot be used together`,
      );
    }
    return fileSource === "cli" ? await readTokenFile(file) : direct;
  }
  return file === undefined ? direct : await readTokenFile(file);
}

/**
 * Commander treats any value of a boolean flag's variable as "on", so
 * `IRONMESH_KEEP_INSTANCES_ON_EXIT=false` would keep instances; read the value
 * strictly instead.
 */
function keepFromEnv(): boolean {
  const value = (Deno.env.get(KEEP_ENV) ?? "").trim().toLowerCase();
  if (["", "0", "false", "no", "off"].includes(value)) return false;
  if (["1", "true", "yes", "on"].includes(value)) return true;
  throw new InvalidError(`Invalid ${KEEP_ENV} "${value}": use true or false`);
}

/** Builds the `agent` verb. */
export function agentCommand(): Command {
  return new Command("agent")
    .description(
      "Enrol this host, register its services with the server, run their checks and heartbeat",
    )
    .addOption(
      new Option(
        "--server <url>",
        "Base URL of the server's REST API, e.g. https://10.0.0.1:8443 (default: the one saved at enrolment; when enrolling, the join token's addresses)",
      ).env("IRONMESH_SERVER").argParser(serverUrl),
    )
    .addOption(
      new Option(
        "--join-token <token>",
        "One-time join token from 'ironmesh token create --kind join'; needed only until the host has enrolled (visible in the process list; prefer --join-token-file)",
      ).env("IRONMESH_JOIN_TOKEN"),
    )
    .addOption(
      new Option("--join-token-file <file>", "File holding the join token")
        .env("IRONMESH_JOIN_TOKEN_FILE"),
    )
    .addOption(
      new Option("--config <file>", "Agent configuration, YAML or JSON (default: no services)")
        .env("IRONMESH_CONFIG"),
    )
    .addOption(
      new Option(
        "--data-dir <dir>",
        "Directory for agent.json and the identity (key, certificate; created with mode 0700)",
      )
        .env("IRONMESH_DATA_DIR").default("./ironmesh-agent-data"),
    )
    .addOption(
      new Option(
        "--keep-instances-on-exit",
        "On SIGTERM/SIGINT, leave the node registered instead of deleting it (env value true or false)",
      ).env(KEEP_ENV),
    )
    .addOption(
      new Option(
        "--local-xds-addr <host:port>",
        "Loopback address of the local plaintext xDS endpoint for proxyless gRPC apps and Envoy; port 0 picks a free port; non-loopback addresses are refused",
      ).env("IRONMESH_LOCAL_XDS_ADDR").default(
        parseLocalXdsAddr(DEFAULT_LOCAL_XDS_ADDR),
        DEFAULT_LOCAL_XDS_ADDR,
      ).argParser(localXdsAddr),
    )
    .addOption(
      new Option(
        "--xds-server <host:port>",
        "The server's gRPC (xDS) address the local endpoint relays to over mTLS (default: the host of --server, or of the server saved at enrolment, with port 15012)",
      ).env("IRONMESH_XDS_SERVER").argParser(xdsServerAddr),
    )
    .addOption(
      new Option(
        "--envoy-binary <path>",
        "Start and supervise this Envoy with DATA_DIR/envoy/bootstrap.json (restarted with backoff; stopped on SIGTERM); default: envoy on PATH, if any",
      ).env("IRONMESH_ENVOY_BINARY"),
    )
    .addOption(
      new Option(
        "--dns-addr <host:port>",
        "Address of the agent's DNS server, UDP and TCP (<service>.<namespace>.svc.ironmesh); port 0 picks a free port",
      ).env("IRONMESH_DNS_ADDR").default(parseListenAddr(DEFAULT_DNS_ADDR), DEFAULT_DNS_ADDR)
        .argParser(listenAddr),
    )
    .addOption(
      new Option(
        "--metrics-addr <host:port>",
        "Address of the agent's Prometheus metrics endpoint (GET /metrics); port 0 picks a free port",
      ).env("IRONMESH_METRICS_ADDR").default(
        parseListenAddr(DEFAULT_METRICS_ADDR),
        DEFAULT_METRICS_ADDR,
      ).argParser(listenAddr),
    )
    .addOption(
      new Option("--log-level <level>", "Log level").env("IRONMESH_LOG_LEVEL").choices(LEVELS)
        .default("info"),
    )
    .addHelpText(
      "after",
      `
On first start the agent enrols: it generates its private key on the host,
checks that the server presents the root CA pinned by the join token, and
trades the token and a certificate request for a short-lived certificate.
Afterwards every call to the server uses mTLS with that certificate, which the
agent renews between 50% and 80% of its lifetime; a restart resumes with it
and needs no token. Files in DATA_DIR/identity/: key.pem (0600), cert.pem,
bundle.pem, identity.json. An expired certificate cannot renew itself: start
the agent again with a new --join-token.

The configuration file lists the node (name, address, labels), the heartbeat
interval and the services with their health checks (http, tcp, grpc or exec);
unknown fields are refused.

Local xDS endpoint: proxyless gRPC apps (grpc-js-xds and others that can only
reach xDS in plaintext) and the host's Envoy use --local-xds-addr (default
127.0.0.1:15010, loopback only; state of the world and delta). The agent
serves each stream from the server's gRPC port (--xds-server), over mTLS with
its own certificate, so the server sees this node's identity. It caches what
the server sent (DATA_DIR/xds/cache.json, mode 0600): while the server is
unreachable, clients keep their streams and new ones are answered from the
cache; the agent retries the server every second at most and clients get the
current configuration once it is back.
The agent writes DATA_DIR/envoy/bootstrap.json for Envoy: ADS through the
local endpoint, node id and cluster = the node name, locality from the
region and zone labels, admin on 127.0.0.1:15000. It runs --envoy-binary, or
envoy from PATH; when the node declares sidecar ports (inboundPort,
upstreams) and no Envoy runs, it says so at start and in the node's
conditions (ironmesh get nodes).

DNS (--dns-addr, default 127.0.0.1:8600): <service>.<namespace>.svc.<domain>
gives the healthy instances (A, AAAA, SRV), <subset>.<service>.<namespace>.svc
a DestinationPolicy subset, <service>.svc the node's own namespace; other
names are REFUSED, or forwarded to /etc/resolv.conf's resolvers with
dns.forward in the configuration file. Answers come from the agent's own
watch of the registry and go on while the server is down.

Once the local endpoints listen (and after each renewal) the agent writes
DATA_DIR/agent.json ({"node", "server", "pid", "certificate": {"notAfter",
"identity", "serial"}, "xds", "dns", "metrics"}, the last three the
addresses bound). Logs are JSON lines on stderr.`,
    )
    .showHelpAfterError("(run ironmesh agent --help for usage)")
    .exitOverride()
    .action(async (flags: AgentFlags, command: Command) => {
      const config = await loadAgentConfig(flags.config);
      // Precedence: flag, then IRONMESH_* variable, then the configuration file, then the default.
      const given = (key: keyof AgentFlags) => {
        const source = command.getOptionValueSource(key);
        return source === "cli" || source === "env";
      };
      const fromFile = <T>(key: keyof AgentFlags, value: T | undefined, fallback: T): T =>
        given(key) || value === undefined ? fallback : value;
      const keep = command.getOptionValueSource("keepInstancesOnExit") === "env"
        ? keepFromEnv()
        : given("keepInstancesOnExit")
        ? flags.keepInstancesOnExit === true
        : config.keepInstancesOnExit ?? false;
      // An address from the file, checked as its flag would be.
      const addrFromFile = (
        key: "localXdsAddr" | "dnsAddr" | "metricsAddr",
        parse: (text: string) => HostPort,
      ): HostPort => {
        const text = config[key];
        if (given(key) || text === undefined) return flags[key];
        try {
          return parse(text);
        } catch (error) {
          throw new InvalidError(`Invalid ${flags.config}: /${key}: ${(error as Error).message}`);
        }
      };
      const settings: AgentFlags = {
        ...flags,
        server: fromFile("server", config.server, flags.server),
        joinTokenFile: fromFile("joinTokenFile", config.joinTokenFile, flags.joinTokenFile),
        dataDir: fromFile("dataDir", config.dataDir, flags.dataDir),
        logLevel: fromFile("logLevel", config.logLevel, flags.logLevel),
        xdsServer: fromFile("xdsServer", config.xdsServer, flags.xdsServer),
        envoyBinary: fromFile("envoyBinary", config.envoyBinary, flags.envoyBinary),
        localXdsAddr: addrFromFile("localXdsAddr", parseLocalXdsAddr),
        dnsAddr: addrFromFile("dnsAddr", parseListenAddr),
        metricsAddr: addrFromFile("metricsAddr", parseListenAddr),
      };
      const logger = jsonLogger(stderrLine, { level: settings.logLevel });
      let envoyBinary = settings.envoyBinary === "" ? undefined : settings.envoyBinary;
      if (envoyBinary === undefined) {
        envoyBinary = await findOnPath(ENVOY_COMMAND, Deno.env.get("PATH") ?? "");
        if (envoyBinary !== undefined) logger.info("Envoy found on PATH", { binary: envoyBinary });
      }
      const joinToken = await resolveJoinToken(settings, command);
      const controller = new AbortController();
      const stop = () => controller.abort();
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const name of signals) Deno.addSignalListener(name, stop);
      try {
        await runAgent({
          server: settings.server,
          joinToken,
          config,
          dataDir: settings.dataDir,
          keepInstancesOnExit: keep,
          localXds: { listen: settings.localXdsAddr, upstream: settings.xdsServer },
          envoyBinary,
          dns: { listen: settings.dnsAddr, ...config.dns },
          metricsAddr: settings.metricsAddr,
          logger,
        }, controller.signal);
      } finally {
        for (const name of signals) Deno.removeSignalListener(name, stop);
      }
    });
}
