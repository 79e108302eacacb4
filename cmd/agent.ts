/**
 * `ironmesh agent`: runs on every VM or bare-metal host, registers the host's
 * services with the server, runs their health checks and heartbeats until
 * SIGTERM or SIGINT.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { InvalidError } from "../core/errors.ts";
import { runAgent } from "../agent/agent.ts";
import { jsonLogger, type Level, LEVELS } from "../core/log.ts";
import { stderrLine } from "./output.ts";
import { loadAgentConfig, readTokenFile } from "../agent/host.ts";

interface AgentFlags {
  server: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  dataDir: string;
  keepInstancesOnExit?: boolean;
  logLevel: Level;
}

const KEEP_ENV = "IRONMESH_KEEP_INSTANCES_ON_EXIT";

function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`Invalid URL "${value}": use e.g. http://10.0.0.1:8080`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`Invalid URL "${value}": the scheme must be http or https`);
  }
  return value;
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
    .description("Register this host's services with the server, run their checks and heartbeat")
    .addOption(
      new Option("--server <url>", "Base URL of the server's REST API, e.g. http://10.0.0.1:8080")
        .env("IRONMESH_SERVER").argParser(serverUrl).makeOptionMandatory(),
    )
    .addOption(
      new Option(
        "--token <token>",
        "Agent-role API token (visible to other users in the process list; prefer --token-file)",
      ).env("IRONMESH_TOKEN").conflicts("tokenFile"),
    )
    .addOption(
      new Option("--token-file <file>", "File holding the agent-role API token")
        .env("IRONMESH_TOKEN_FILE"),
    )
    .addOption(
      new Option("--config <file>", "Agent configuration, YAML or JSON (default: no services)")
        .env("IRONMESH_CONFIG"),
    )
    .addOption(
      new Option("--data-dir <dir>", "Directory for agent.json (created with mode 0700)")
        .env("IRONMESH_DATA_DIR").default("./ironmesh-agent-data"),
    )
    .addOption(
      new Option(
        "--keep-instances-on-exit",
        "On SIGTERM/SIGINT, leave the node registered instead of deleting it (env value true or false)",
      ).env(KEEP_ENV),
    )
    .addOption(
      new Option("--log-level <level>", "Log level").env("IRONMESH_LOG_LEVEL").choices(LEVELS)
        .default("info"),
    )
    .addHelpText(
      "after",
      `
The configuration file lists the node (name, address, labels), the heartbeat
interval and the services with their health checks (http, tcp, grpc or exec);
unknown fields are refused. After the first successful registration the agent
writes DATA_DIR/agent.json ({"node", "server", "pid"}). Logs are JSON lines on
stderr.`,
    )
    .showHelpAfterError("(run ironmesh agent --help for usage)")
    .exitOverride()
    .action(async (flags: AgentFlags, command: Command) => {
      const keep = command.getOptionValueSource("keepInstancesOnExit") === "env"
        ? keepFromEnv()
        : flags.keepInstancesOnExit === true;
      const config = await loadAgentConfig(flags.config);
      const token = flags.tokenFile !== undefined
        ? await readTokenFile(flags.tokenFile)
        : flags.token;
      const controller = new AbortController();
      const stop = () => controller.abort();
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const name of signals) Deno.addSignalListener(name, stop);
      try {
        await runAgent({
          server: flags.server,
          token,
          config,
          dataDir: flags.dataDir,
          keepInstancesOnExit: keep,
          logger: jsonLogger(stderrLine, { level: flags.logLevel }),
        }, controller.signal);
      } finally {
        for (const name of signals) Deno.removeSignalListener(name, stop);
      }
    });
}
