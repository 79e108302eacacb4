/**
 * Timing of the agent's requests, as pure functions of a random source so the
 * spread can be tested. Jitter keeps a fleet of agents that restarted together
 * from heartbeating in lockstep; full-jitter backoff spreads their retries
 * when the server comes back.
 */

/** Returns `ms` moved by up to `fraction` of itself either way, e.g. 5s ±10%. */
export function jitter(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 + fraction * (2 * random() - 1)));
}

/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Ceiling of the first retry, in milliseconds. Default: 200. */
  baseMs?: number;
  /** Largest ceiling, in milliseconds. Default: 30 000. */
  capMs?: number;
}

/**
 * Delay before retry number `attempt` (0 for the first retry): uniform between
 * 0 and `min(cap, base * 2^attempt)` ("full jitter"), which spreads a herd of
 * retrying clients best for the least total wait.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 200;
  const cap = options.capMs ?? 30_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

/**
 * The backoff cap for a node heartbeating every `intervalMs`: 30 s, but never
 * more than one interval. The server marks a node stale after three missed
 * intervals, so retrying at least once per interval lets a node be heard
 * within an interval of the server coming back, before it turns stale; and
 * since the cap is the normal heartbeat period, an outage never makes agents
 * call more often than twice their usual rate on average.
 */
export function retryCapMs(intervalMs: number): number {
  return Math.min(30_000, Math.max(intervalMs, 200));
}
