/**
 * Write clocks for sync's last-writer-wins: the time of the last write or delete of every
 * coordinate written since sync was switched on (first CSYNC step, or --agent/--owns/--sync-peer
 * at start). Deletes leave a tombstone time, so they propagate. Times are milliseconds, made
 * monotone per sidecar and pushed past any time received from a peer (a hybrid logical clock),
 * so a write after a sync is always later than what that sync brought in. Writes made before
 * the clock started have time 0 (older than any clocked write).
 */
import { DIMS } from '../types';
import { matchesPattern, type Pattern } from '../pattern';
import { leafOf } from './tree';

/** Key of row `i` of a flat coordinate column. */
export function coordKey(coords: ArrayLike<number>, i: number): string {
  const b = i * DIMS;
  let s = String(coords[b]);
  for (let d = 1; d < DIMS; d++) s += '.' + coords[b + d];
  return s;
}

/** The coordinates of a {@link coordKey}. */
export function keyCoords(key: string): Uint32Array {
  return Uint32Array.from(key.split('.'), Number);
}

/** Per-coordinate write times of one engine. */
export class SyncClock {
  /** Wall-clock milliseconds (tests set their own to order writes exactly). */
  now: () => number = () => Date.now();
  private last = 0;
  private readonly times = new Map<string, number>();
  private readonly tombs = new Set<string>();

  /** A new time, later than every time seen so far. */
  tick(): number {
    this.last = Math.max(this.now(), this.last + 1);
    return this.last;
  }

  /** Records a local write (or delete, `del`) of rows first .. first+count at one new time; keys also go to `written`. */
  record(coords: ArrayLike<number>, first: number, count: number, del: boolean, written: Set<string>): void {
    const t = this.tick();
    for (let i = first; i < first + count; i++) {
      const key = coordKey(coords, i);
      this.set(key, t, del);
      written.add(key);
    }
  }

  /** Sets a coordinate's time as received from a peer (its original write time). */
  set(key: string, t: number, del: boolean): void {
    if (t > this.last) this.last = t;
    this.times.set(key, t);
    if (del) this.tombs.add(key);
    else this.tombs.delete(key);
  }

  /** Time of the last write or delete of `key` (0 when never clocked). */
  timeOf(key: string): number {
    return this.times.get(key) ?? 0;
  }

  /**
   * Tombstones matching `p` whose leaf's ancestor at `level` is in `nodes`: [key, time] pairs.
   * A scan of the tombstones, which only deletes since the clock started create.
   */
  tombstones(p: Pattern, level: number, nodes: ReadonlySet<number>, depth: number): [string, number][] {
    const out: [string, number][] = [];
    for (const key of this.tombs) {
      const c = keyCoords(key);
      if (!matchesPattern(p, c, 0)) continue;
      if (nodes.has(leafOf(c, 0) >>> (4 * (depth - level)))) out.push([key, this.times.get(key) ?? 0]);
    }
    return out;
  }
}
