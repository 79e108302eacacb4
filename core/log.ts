/** Log levels, least to most severe. */
export const LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@link LEVELS}. */
export type Level = typeof LEVELS[number];

/** Structured fields of a log line. Never put a secret or a private key in one. */
export type Fields = Record<string, unknown>;

/** A structured logger; where lines go is the caller's choice. */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

/** Options of {@link jsonLogger}. */
export interface JsonLoggerOptions {
  /** Lines below this level are dropped. Default: `info`. */
  level?: Level;
  /** Source of timestamps. Default: `Date.now`. */
  now?: () => number;
}

/** A logger that writes one JSON object per line: `{"ts","level","msg",...fields}`. */
export function jsonLogger(write: (line: string) => void, options: JsonLoggerOptions = {}): Logger {
  const min = LEVELS.indexOf(options.level ?? "info");
  const now = options.now ?? Date.now;
  const emit = (level: Level) => (msg: string, fields: Fields = {}) => {
    if (LEVELS.indexOf(level) < min) return;
    write(JSON.stringify({ ts: new Date(now()).toISOString(), level, msg, ...fields }));
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A logger that drops everything; for tests. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
