/**
 * Structured logs: one JSON object per line, so journald, Loki or `jq` read
 * them without a parser for our prose. Where lines go is injected, which
 * keeps this module free of I/O. Never put a secret or a private key in a
 * field: callers log token ids and node names, not token secrets.
 */
import { type Clock, systemClock } from "./clock.ts";

/** Log levels, least to most severe. */
export const LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@link LEVELS}. */
export type Level = typeof LEVELS[number];

/** Structured fields of a log line. */
export type Fields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

/** How lines look: JSON objects for machines, or `ts LEVEL msg key=value` for people. */
export type LogFormat = "json" | "text";

/** Options of {@link jsonLogger}. */
export interface JsonLoggerOptions {
  /** Lines below this level are dropped. Default: `info`. */
  level?: Level;
  /** Source of the `ts` field. Default: the system clock. */
  clock?: Clock;
  /** Line format. Default: `json`. */
  format?: LogFormat;
}

function plain(value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}

/**
 * A logger that hands `write` one line per entry: `{"ts","level","msg",...fields}`.
 * The three fixed keys come first and a field cannot overwrite them.
 */
export function jsonLogger(write: (line: string) => void, options: JsonLoggerOptions = {}): Logger {
  const min = LEVELS.indexOf(options.level ?? "info");
  const clock = options.clock ?? systemClock;
  const emit = (level: Level) => (msg: string, fields: Fields = {}) => {
    if (LEVELS.indexOf(level) < min) return;
    const line: Fields = { ts: new Date(clock.now()).toISOString(), level, msg };
    for (const [key, value] of Object.entries(fields)) {
      if (!(key in line) && value !== undefined) line[key] = plain(value);
    }
    write(options.format === "text" ? textLine(line) : JSON.stringify(line));
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

function textLine({ ts, level, msg, ...fields }: Fields): string {
  const rest = Object.entries(fields).map(([k, v]) => {
    const text = typeof v === "string" ? v : JSON.stringify(v);
    return `${k}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
  });
  return [ts, String(level).toUpperCase().padEnd(5), msg, ...rest].join(" ");
}

/** A logger that drops everything; for tests. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
