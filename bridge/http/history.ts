/**
 * The last minute of metrics snapshots, as the JSON text the dashboard already gets every
 * 100 ms: a page that opens is sent the whole ring at once, so its charts start full.
 */

/** Snapshots kept: one minute at the sampler's 10 Hz (the dashboard's chart width). */
export const HISTORY = 600;

/** A ring of serialised snapshots. */
export class MetricsHistory {
  private readonly ring: string[] = [];

  constructor(private readonly limit = HISTORY) {}

  /** Adds one snapshot's JSON text, dropping the oldest past the limit. */
  push(json: string): void {
    this.ring.push(json);
    if (this.ring.length > this.limit) this.ring.shift();
  }

  /** Snapshots held. */
  get size(): number {
    return this.ring.length;
  }

  /** `{"history":[snapshot, ...]}`, oldest first: the first message a dashboard receives. */
  message(): string {
    return `{"history":[${this.ring.join(',')}]}`;
  }
}
