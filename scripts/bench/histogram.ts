/**
 * A latency histogram with log-spaced buckets: every value is kept within
 * 1% of its true size, the memory is fixed (about 2,000 counters for 1 µs
 * to 1,000 s) and histograms from several load processes merge by adding
 * counters, so percentiles are computed over all requests, not averaged.
 */

/** Relative width of one bucket: values are reported within this fraction. */
const PRECISION = 0.01;
const LOG_BASE = Math.log1p(PRECISION);
/** Smallest distinguished value, in milliseconds (1 µs); anything below lands in bucket 0. */
const MIN_MS = 0.001;
/** Largest distinguished value, in milliseconds; anything above lands in the last bucket. */
const MAX_MS = 1_000_000;
const BUCKETS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LOG_BASE) + 1;

/** The plain-data form of a {@link Histogram}, for sending between processes as JSON. */
export interface HistogramData {
  /** `[bucket, count]` pairs of the non-empty buckets. */
  buckets: [number, number][];
  count: number;
  maxMs: number;
}

/** Counts of latencies in milliseconds. */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #maxMs = 0;

  /** Number of recorded values. */
  get count(): number {
    return this.#count;
  }

  /** The largest recorded value, exactly. */
  get maxMs(): number {
    return this.#maxMs;
  }

  /** Records one value in milliseconds. */
  record(ms: number): void {
    this.#counts[bucketOf(ms)]! += 1;
    this.#count += 1;
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  /**
   * The value at quantile `q` (0–1): the upper edge of the bucket holding
   * it, so a reported p99 is never lower than the true one by more than 1%.
   * Returns 0 for an empty histogram.
   */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      // The last bucket also holds everything above MAX_MS: only the maximum bounds it.
      if (seen >= rank) {
        return i === BUCKETS - 1 ? this.#maxMs : Math.min(upperEdge(i), this.#maxMs);
      }
    }
    return this.#maxMs;
  }

  /** Adds the counts of `other` (a histogram or its data) to this one. */
  merge(other: Histogram | HistogramData): void {
    const data = other instanceof Histogram ? other.toJSON() : other;
    for (const [bucket, n] of data.buckets) this.#counts[bucket]! += n;
    this.#count += data.count;
    if (data.maxMs > this.#maxMs) this.#maxMs = data.maxMs;
  }

  /** The histogram as plain data; see {@link Histogram.fromJSON}. */
  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    this.#counts.forEach((n, i) => {
      if (n > 0) buckets.push([i, n]);
    });
    return { buckets, count: this.#count, maxMs: this.#maxMs };
  }

  /** Rebuilds a histogram from {@link Histogram.toJSON} output. */
  static fromJSON(data: HistogramData): Histogram {
    const histogram = new Histogram();
    histogram.merge(data);
    return histogram;
  }
}

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_BASE));
}

function upperEdge(bucket: number): number {
  return MIN_MS * Math.exp(bucket * LOG_BASE);
}
