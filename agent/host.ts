/**
 * The agent's local file and host I/O: reading its configuration, learning
 * the host's name and addresses, and writing `agent.json` in its data
 * directory for scripts and tests that need to find it.
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

/** Reads an API token from a file, without the surrounding whitespace an editor leaves. */
export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Cannot read token file "${file}": ${why}`);
  }
  const token = text.trim();
  if (token === "") throw new InvalidError(`Token file "${file}" is empty`);
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
}

/** Writes `agent.json` atomically, so a reader never sees half a file. */
export async function writeAgentState(dir: string, state: AgentState): Promise<void> {
  const path = `${dir}/agent.json`;
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  await Deno.rename(temp, path);
}
