/**
 * One instance's check over time: raw outcomes pass through the thresholds
 * (`observeCheck`), and the monitor says when the thresholded status changed
 * so the agent can tell the server at once instead of at the next tick.
 */
import type { CheckConfig } from "../core/agent_config.ts";
import { type CheckTrack, observeCheck } from "../core/health.ts";
import type { CheckOutcome } from "./checks.ts";
import type { CheckReport } from "./registration.ts";
import { sleep } from "./wait.ts";

/** Runs a check once; see `CheckRunner.run`. */
export type Probe = (signal: AbortSignal) => Promise<CheckOutcome>;

/** Tracks the thresholded status of one instance's check. */
export class CheckMonitor {
  readonly id: string;
  readonly check: CheckConfig;
  #probe: Probe;
  #track: CheckTrack | undefined;
  #output = "Not run yet";

  constructor(id: string, check: CheckConfig, probe: Probe) {
    this.id = id;
    this.check = check;
    this.#probe = probe;
  }

  /** The status to report; `failing` until the first run, which the agent awaits before registering. */
  get report(): CheckReport {
    return { status: this.#track?.status ?? "failing", output: this.#output };
  }

  /**
   * Runs the check once and folds the outcome in. Returns the previous status
   * when this run changed it (`undefined` for the first run and for no change).
   */
  async probe(signal: AbortSignal): Promise<"passing" | "failing" | undefined> {
    const outcome = await this.#probe(signal);
    if (signal.aborted) return undefined;
    const before = this.#track?.status;
    this.#track = observeCheck(this.#track, outcome.ok, this.check);
    this.#output = outcome.output;
    return before !== undefined && before !== this.#track.status ? before : undefined;
  }

  /**
   * Probes every interval until `signal` aborts, calling `onChange` with the
   * previous status whenever the thresholded status flips. The interval runs
   * from the end of one run to the start of the next, so runs never overlap.
   */
  async loop(
    signal: AbortSignal,
    onChange: (previous: "passing" | "failing") => void,
  ): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.check.intervalMs, signal);
      if (signal.aborted) return;
      const previous = await this.probe(signal);
      if (previous !== undefined) onChange(previous);
    }
  }
}
