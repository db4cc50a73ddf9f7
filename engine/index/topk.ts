/**
 * A bounded max-heap keeping the k smallest entries by (a, b, coordinate): two numeric keys
 * then lexicographic coordinate order, so ties are broken the same way on every path (tree,
 * brute force, delta scan) and results are deterministic. Each slot keeps its own copy of
 * the 9 components, so entries may come from the tree's point array or the store's keys.
 */
import { DIMS } from '../types';

/** The k best (a, b, coord) triples seen so far. */
export class TopK {
  /** Capacity. */
  readonly k: number;
  /** Entries held (≤ k). */
  size = 0;
  /** `a` of the worst kept entry once full, else Infinity: entries with a larger `a` cannot enter. */
  limit = Infinity;
  private readonly a: Float64Array;
  private readonly b: Float64Array;
  private readonly c: Uint32Array;

  /** An empty heap of capacity k (≥ 1). */
  constructor(k: number) {
    this.k = k;
    this.a = new Float64Array(k);
    this.b = new Float64Array(k);
    this.c = new Uint32Array(k * DIMS);
  }

  /** Empties the heap. */
  reset(): void {
    this.size = 0;
    this.limit = Infinity;
  }

  /** True when (a, b, src[off..off+9)) would enter: the heap is not full or it ranks before the worst. */
  beats(a: number, b: number, src: ArrayLike<number>, off: number): boolean {
    if (this.size < this.k) return true;
    return this.cmpExt(a, b, src, off, 0) < 0;
  }

  /** Adds an entry when it beats the worst kept one (which it then evicts). */
  offer(a: number, b: number, src: ArrayLike<number>, off: number): void {
    if (this.size < this.k) {
      const i = this.size++;
      this.set(i, a, b, src, off);
      this.up(i);
    } else {
      if (this.cmpExt(a, b, src, off, 0) >= 0) return;
      this.set(0, a, b, src, off);
      this.down(0);
    }
    if (this.size === this.k) this.limit = this.a[0];
  }

  /**
   * Empties the heap into the outputs, best first, starting at row `row`: coords into
   * `oc` (9 per row), keys into `oa`/`ob`. Returns how many rows were written.
   */
  drain(oc: Uint32Array, oa: Float64Array, ob: Float64Array, row: number): number {
    const n = this.size;
    for (let r = n - 1; r >= 0; r--) {
      oa[row + r] = this.a[0];
      ob[row + r] = this.b[0];
      oc.set(this.c.subarray(0, DIMS), (row + r) * DIMS);
      const last = --this.size;
      if (last > 0) {
        this.move(last, 0);
        this.down(0);
      }
    }
    this.limit = Infinity;
    return n;
  }

  /** (a, b, src) compared with slot j. */
  private cmpExt(a: number, b: number, src: ArrayLike<number>, off: number, j: number): number {
    if (a !== this.a[j]) return a < this.a[j] ? -1 : 1;
    if (b !== this.b[j]) return b < this.b[j] ? -1 : 1;
    const c = this.c;
    const o = j * DIMS;
    for (let d = 0; d < DIMS; d++) {
      const x = src[off + d];
      if (x !== c[o + d]) return x < c[o + d] ? -1 : 1;
    }
    return 0;
  }

  /** Slot i compared with slot j. */
  private cmp(i: number, j: number): number {
    return this.cmpExt(this.a[i], this.b[i], this.c, i * DIMS, j);
  }

  private set(i: number, a: number, b: number, src: ArrayLike<number>, off: number): void {
    this.a[i] = a;
    this.b[i] = b;
    const o = i * DIMS;
    for (let d = 0; d < DIMS; d++) this.c[o + d] = src[off + d];
  }

  private move(from: number, to: number): void {
    this.a[to] = this.a[from];
    this.b[to] = this.b[from];
    this.c.copyWithin(to * DIMS, from * DIMS, from * DIMS + DIMS);
  }

  private swap(i: number, j: number): void {
    const a = this.a, b = this.b, c = this.c;
    let t = a[i]; a[i] = a[j]; a[j] = t;
    t = b[i]; b[i] = b[j]; b[j] = t;
    for (let d = 0, x = i * DIMS, y = j * DIMS; d < DIMS; d++) {
      const u = c[x + d]; c[x + d] = c[y + d]; c[y + d] = u;
    }
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.cmp(i, p) <= 0) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const n = this.size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const m = l + 1 < n && this.cmp(l + 1, l) > 0 ? l + 1 : l;
      if (this.cmp(m, i) <= 0) return;
      this.swap(i, m);
      i = m;
    }
  }
}
