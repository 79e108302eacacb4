/**
 * The agent's local file and host I/O: reading its configuration and join
 * token file, learning the host's name and addresses, and writing
 * `agent.json` in its data directory for scripts and tests that need to find
 * it. The identity files live in `identity.ts`.
 */
import { type AgentConfig, parseAgentConfig } from "../core/agent_config.ts";
import { InvalidError } from "../core/errors.ts";
import type { HostInfo } from "./registration.ts";

/** Reads and validates the agent configuration file; without a file, every default applies. */
export async function loadAgentConfig(file: string | undefined): Promise<AgentConfig> {
  if (file === undefined) return parseAgentConfig("", "(defaults)");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Cannot read agent configuration "${file}": ${why}`);
  }
  return parseAgentConfig(text, file);
}

/**
 * Reads a join token from a file, without the surrounding whitespace an
 * editor leaves. A missing file is no token: once enrolled, the agent needs
 * none, and operators are told they may delete the one-time token.
 */
export async function readTokenFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    const why = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Cannot read join token file "${file}": ${why}`);
  }
  const token = text.trim();
  if (token === "") throw new InvalidError(`Join token file "${file}" is empty`);
  return token;
}

/** The host's name and interface addresses; without permission to list interfaces, none. */
export function readHostInfo(): HostInfo {
  let interfaces: HostInfo["interfaces"] = [];
  try {
    interfaces = Deno.networkInterfaces();
  } catch {
    // Without --allow-sys=networkInterfaces the node falls back to 127.0.0.1,
    // which still works on one host; node.address fixes it for the others.
  }
  return { hostname: Deno.hostname(), interfaces };
}

/** Creates the data directory, readable only by the agent's user. */
export async function ensureDataDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Cannot create data directory "${dir}": ${why}`);
  }
}

/** What `DATA_DIR/agent.json` holds. */
export interface AgentState {
  node: string;
  server: string;
  pid: number;
  /** The certificate in use; rewritten on every renewal. */
  certificate: {
    /** End of validity, ISO 8601. */
    notAfter: string;
    /** The SPIFFE ID. */
    identity: string;
    /** Serial number, hex. */
    serial: string;
  };
}

/** Writes `agent.json` atomically, so a reader never sees half a file. */
export async function writeAgentState(dir: string, state: AgentState): Promise<void> {
  await writePrivateFile(`${dir}/agent.json`, JSON.stringify(state, null, 2) + "\n");
}

/**
 * Writes `text` to `path` with mode 0600, atomically (through a temporary
 * file renamed over it: a reader never sees half a file), creating its
 * directory with mode 0700 if needed.
 */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir !== "") await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, text, { mode: 0o600 });
  // The mode of `writeTextFile` applies only to a file it creates.
  await Deno.chmod(temp, 0o600);
  await Deno.rename(temp, path);
}
