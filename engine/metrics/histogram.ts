/**
 * Latency histograms with fixed log-scale buckets: four per octave from 1 µs to about two
 * minutes. Recording is one log2 and one array increment, so it can sit on the hot path;
 * percentiles are read from bucket counts (accurate to a quarter octave, ~19%).
 */

/** Buckets per doubling of latency. */
export const PER_OCTAVE = 4;
/** Octaves covered above 1 µs (2^27 µs ≈ 134 s; slower samples land in the last bucket). */
export const OCTAVES = 27;
/** Number of buckets. */
export const BUCKETS = PER_OCTAVE * OCTAVES;

/** Upper edge of bucket `i` in microseconds. */
export function bucketUpperUs(i: number): number {
  return 2 ** ((i + 1) / PER_OCTAVE);
}

/** Bucket of a latency given in milliseconds. */
export function bucketOf(ms: number): number {
  const us = ms * 1000;
  if (!(us >= 1)) return 0; // also catches NaN and negative clock steps
  const i = Math.floor(Math.log2(us) * PER_OCTAVE);
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** Counts per bucket plus the sum, in milliseconds, of every sample. */
export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumMs = 0;

  /** Adds one sample. */
  record(ms: number): void {
    this.counts[bucketOf(ms)]++;
    this.count++;
    this.sumMs += ms;
  }

  /** Copy of the counts (for windowed percentiles). */
  snapshot(): Float64Array {
    return this.counts.slice();
  }
}

/**
 * The `q` quantile (0..1) in milliseconds of bucket counts `counts` (e.g. the difference of
 * two snapshots), or null when they hold no sample. Interpolates geometrically inside the
 * bucket that holds the rank.
 */
export function quantileMs(counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c <= 0) continue;
    if (seen + c >= rank) {
      const lo = i === 0 ? 0.5 : 2 ** (i / PER_OCTAVE);
      const hi = bucketUpperUs(i);
      const f = Math.min(1, Math.max(0, (rank - seen) / c));
      return (lo * (hi / lo) ** f) / 1000;
    }
    seen += c;
  }
  return bucketUpperUs(counts.length - 1) / 1000;
}
