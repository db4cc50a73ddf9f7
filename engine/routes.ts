/**
 * Range-ownership table for CROUTE: sorted, non-overlapping ranges [start, end) that cover
 * the whole coordinate space, each owned by a shard (and optionally reachable at an address).
 * The table has a version; a sidecar told which shard it is (`self`) refuses writes outside
 * its ranges (E_SHARD) and requests made with another table version (E_STALE), see
 * engine/shard.ts.
 */
import { DIMS } from './types';
import { VtpuError } from './errors';
import { coordFromParam, compareCoords, formatCoord } from './coords';

/** One row of the table as on the wire; `end` null means the end of the space. */
export interface RouteEntry {
  start: string;
  end: string | null;
  shard: number;
  address: string | null;
}

/** The ownership table; lookups binary-search the range starts. */
export class RouteTable {
  private starts = new Uint32Array(DIMS);
  private shards = new Uint32Array(1);
  private addresses: Array<string | null> = [null];
  /** The table's version: 0 until a table is installed with one. */
  version = 0;
  /** The shard this sidecar is, once a cluster told it; then writes are checked. */
  self: number | undefined = undefined;

  /** Number of ranges. */
  get length(): number {
    return this.shards.length;
  }

  /** The table in wire form. */
  toJSON(): RouteEntry[] {
    const out: RouteEntry[] = [];
    for (let r = 0; r < this.length; r++) {
      out.push({
        start: formatCoord(this.starts, r),
        end: r + 1 < this.length ? formatCoord(this.starts, r + 1) : null,
        shard: this.shards[r],
        address: this.addresses[r],
      });
    }
    return out;
  }

  /**
   * Replaces the table after validating it whole (E_PARAM / E_COORD): a non-empty list,
   * the first start at 0.0.0/0.0.0/0.0.0, each end equal to the next start, the last end null,
   * start < end, shard an integer 0..2^32-1, address a string or null.
   */
  replace(table: unknown): void {
    if (!Array.isArray(table) || table.length === 0) throw new VtpuError('E_PARAM', 'table must be a non-empty list of ranges');
    const m = table.length;
    const starts = new Uint32Array(m * DIMS);
    const ends = new Uint32Array(m * DIMS);
    const shards = new Uint32Array(m);
    const addresses: Array<string | null> = [];
    for (let r = 0; r < m; r++) {
      const e = table[r] as Record<string, unknown>;
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new VtpuError('E_PARAM', `table[${r}] must be an object`);
      starts.set(coordFromParam(e.start, `table[${r}].start`), r * DIMS);
      const last = r === m - 1;
      if (last !== (e.end === null || e.end === undefined)) {
        throw new VtpuError('E_PARAM', last ? `table[${r}].end must be null (the last range runs to the end)` : `table[${r}].end is missing`);
      }
      if (!last) ends.set(coordFromParam(e.end, `table[${r}].end`), r * DIMS);
      if (!Number.isInteger(e.shard) || (e.shard as number) < 0 || (e.shard as number) > 0xffffffff) {
        throw new VtpuError('E_PARAM', `table[${r}].shard must be an integer 0..2^32-1, got ${JSON.stringify(e.shard)}`);
      }
      shards[r] = e.shard as number;
      if (e.address !== undefined && e.address !== null && typeof e.address !== 'string') {
        throw new VtpuError('E_PARAM', `table[${r}].address must be a string or null`);
      }
      addresses.push((e.address as string | undefined) ?? null);
    }
    this.check(starts, ends, m);
    this.starts = starts;
    this.shards = shards;
    this.addresses = addresses;
  }

  private check(starts: Uint32Array, ends: Uint32Array, m: number): void {
    for (let d = 0; d < DIMS; d++) {
      if (starts[d] !== 0) throw new VtpuError('E_PARAM', `table[0].start must be 0.0.0/0.0.0/0.0.0, got ${formatCoord(starts, 0)}`);
    }
    for (let r = 0; r + 1 < m; r++) {
      if (compareCoords(starts, r, ends, r) >= 0) {
        throw new VtpuError('E_PARAM', `table[${r}] is empty or reversed: ${formatCoord(starts, r)} .. ${formatCoord(ends, r)}`);
      }
      if (compareCoords(ends, r, starts, r + 1) !== 0) {
        throw new VtpuError('E_PARAM', `table[${r}].end ${formatCoord(ends, r)} must equal table[${r + 1}].start ${formatCoord(starts, r + 1)} (no gaps or overlaps)`);
      }
    }
  }

  /** Range index owning row `i` of a flat coordinate array. */
  private find(c: ArrayLike<number>, i: number): number {
    let lo = 0;
    let hi = this.length;
    // Last range whose start ≤ coord; range 0 starts at the origin so one always exists.
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (compareCoords(this.starts, mid, c, i) <= 0) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** Owner of one coordinate. */
  route(c: ArrayLike<number>, i = 0): { shard: number; address: string | null } {
    const r = this.find(c, i);
    return { shard: this.shards[r], address: this.addresses[r] };
  }

  /** The shard owning row `i` of a flat coordinate column. */
  shardOf(c: ArrayLike<number>, i: number): number {
    return this.shards[this.find(c, i)];
  }

  /**
   * E_SHARD when another shard owns any of rows first .. first+count (no check before this
   * sidecar is told its shard): the store's write guard calls it (engine/sync/state.ts).
   */
  checkOwned(coords: ArrayLike<number>, first: number, count: number): void {
    const self = this.self;
    if (self === undefined) return;
    for (let i = first; i < first + count; i++) {
      const owner = this.shardOf(coords, i);
      if (owner !== self) {
        throw new VtpuError('E_SHARD', `${formatCoord(coords, i)} is owned by shard ${owner}, not by this shard ${self} (route table version ${this.version})`);
      }
    }
  }

  /** Owning shard per row of a flat coordinate column. */
  routeBatch(coords: Uint32Array): Uint32Array {
    const n = coords.length / DIMS;
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.shards[this.find(coords, i)];
    return out;
  }
}
