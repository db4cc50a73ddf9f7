/**
 * Hash of one 9-word coordinate, shared by the writer (Store) and readers (StoreReader in
 * worker threads) so both probe the same slots. Murmur3-style mixing with Math.imul.
 */

// A module-level binding: a global property lookup per call costs ~40x under jest's sandbox.
const imul = Math.imul;

/** 32-bit hash of coords[base .. base+9). */
export function hashKey(c: ArrayLike<number>, base: number): number {
  let h = 0x9747b28c;
  for (let d = 0; d < 9; d++) {
    let k = imul(c[base + d], 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
