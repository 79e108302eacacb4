import { MeshError } from "../core/errors.ts";
import type { LogFormat } from "../core/log.ts";

/**
 * Prints an error the way every verb does: the message on stderr, no stack
 * for errors the user can fix; returns the exit code (1 for user errors,
 * 2 for bugs) so scripts can tell them apart.
 */
export function reportError(error: unknown): number {
  if (error instanceof MeshError) {
    console.error(`Error: ${error.message}`);
    return 1;
  }
  console.error("Unexpected error:", error);
  return 2;
}

const encoder = new TextEncoder();

/**
 * Writes one log line to stderr, whole: a pipe may take fewer bytes than
 * offered, and a half line would break every reader of the JSON stream.
 */
export function stderrLine(line: string): void {
  const bytes = encoder.encode(line + "\n");
  for (let written = 0; written < bytes.length;) {
    written += Deno.stderr.writeSync(bytes.subarray(written));
  }
}

/** `auto` means text for a person at a terminal, JSON lines for journald and log shippers. */
export function resolveLogFormat(format: LogFormat | "auto"): LogFormat {
  if (format !== "auto") return format;
  return Deno.stderr.isTerminal() ? "text" : "json";
}
