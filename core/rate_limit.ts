import type { Clock } from "./clock.ts";

/**
 * A token bucket: `ratePerSecond` sustained with bursts of `burst`. Used so a
 * fleet renewing its certificates together cannot overload the CA; callers
 * that are refused are told when to come back.
 */
export class TokenBucket {
  readonly #clock: Clock;
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  constructor(clock: Clock, ratePerSecond: number, burst: number) {
    this.#clock = clock;
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  /** Takes one token; returns 0 when granted, else the milliseconds until one is available. */
  take(): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.#rate) * 1000);
  }
}
