/** A growable Int32 list: avoids boxed arrays on hot paths (range index, graph traversal). */
export class IntList {
  a: Int32Array;
  n = 0;
  /** An empty list with room for `cap` values. */
  constructor(cap = 64) {
    this.a = new Int32Array(Math.max(16, cap));
  }
  /** Appends x (doubling the buffer when full). */
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
  /** The values so far (a view, valid until the next push). */
  view(): Int32Array {
    return this.a.subarray(0, this.n);
  }
}
