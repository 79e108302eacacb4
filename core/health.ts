import type { CheckStatus, Health, NodeStatus } from "./model.ts";

/**
 * The health model, in three pure steps:
 * 1. on the agent, raw check outcomes pass through thresholds ({@link observeCheck});
 * 2. on the server, a node's liveness follows its heartbeats ({@link nodeLiveness});
 * 3. an instance's health combines its check, its node and any drain ({@link instanceHealth}).
 */

/** How a node's heartbeat age classifies it. `reap` means: remove it and its instances. */
export type Liveness = NodeStatus | "reap";

/** Options of {@link nodeLiveness}. */
export interface LivenessTimes {
  /** No heartbeat for longer than this turns the node `stale`. */
  ttlMs: number;
  /** No heartbeat for longer than this removes the node. */
  reapAfterMs: number;
}

/** Classifies a node by the age of its last heartbeat. */
export function nodeLiveness(
  lastHeartbeatMs: number,
  nowMs: number,
  times: LivenessTimes,
): Liveness {
  const age = nowMs - lastHeartbeatMs;
  if (age > times.reapAfterMs) return "reap";
  if (age > times.ttlMs) return "stale";
  return "alive";
}

/** What an instance's health depends on. */
export interface HealthInputs {
  check: CheckStatus;
  instanceDraining: boolean;
  nodeDraining: boolean;
  nodeStatus: NodeStatus;
}

/**
 * An instance's health. Drain wins over everything, so an operator's drain is
 * never undone by a recovering check; a stale node makes all its instances
 * unhealthy, whatever their last check said, because that result is no longer news.
 */
export function instanceHealth(inputs: HealthInputs): Health {
  if (inputs.instanceDraining || inputs.nodeDraining) return "draining";
  if (inputs.nodeStatus === "stale") return "unhealthy";
  return inputs.check === "failing" ? "unhealthy" : "healthy";
}

/** Consecutive outcomes needed to change a check's status (Envoy and Kubernetes have the same pair). */
export interface CheckThresholds {
  /** Consecutive successes that turn a failing check passing. */
  healthyThreshold: number;
  /** Consecutive failures that turn a passing check failing. */
  unhealthyThreshold: number;
}

/** A check's status plus the run of equal outcomes that may change it. */
export interface CheckTrack {
  status: "passing" | "failing";
  /** Length of the current run of outcomes that disagree with `status`. */
  streak: number;
}

/**
 * Folds one check outcome into a track. The first outcome sets the status
 * directly: an agent reports real results at registration instead of
 * guessing, and a freshly started app is not held back by thresholds.
 */
export function observeCheck(
  track: CheckTrack | undefined,
  ok: boolean,
  thresholds: CheckThresholds,
): CheckTrack {
  const outcome = ok ? "passing" : "failing";
  if (!track) return { status: outcome, streak: 0 };
  if (outcome === track.status) return { status: track.status, streak: 0 };
  const streak = track.streak + 1;
  const needed = ok ? thresholds.healthyThreshold : thresholds.unhealthyThreshold;
  return streak >= needed ? { status: outcome, streak: 0 } : { status: track.status, streak };
}
