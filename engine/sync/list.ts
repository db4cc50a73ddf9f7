/**
 * The `list` step's wire rows: every entry and tombstone under some nodes of the tree, as
 * {@link LIST_WORDS} uint32 words each: 9 coordinate components, 2 digest lanes (0 for a
 * tombstone), the write time's low 32 bits, and its high bits with {@link TOMB} set for a
 * tombstone (times are milliseconds < 2^52).
 */
import { DIMS } from '../types';
import { parsePattern } from '../pattern';
import type { SyncClock } from './clock';
import { coordKey, keyCoords } from './clock';
import { DEPTH, checkNodes, leafOf, nodeRows, type SyncTree } from './tree';

/** Words per listed row. */
export const LIST_WORDS = DIMS + 4;
/** Flag in the last word of a tombstone row. */
export const TOMB = 0x80000000;

/** One listed row, decoded. */
export interface Listed {
  digest: Uint32Array;
  time: number;
  tomb: boolean;
}

function put(out: Uint32Array, o: number, coords: ArrayLike<number>, ci: number, d0: number, d1: number, t: number, tomb: boolean): void {
  for (let d = 0; d < DIMS; d++) out[o + d] = coords[ci * DIMS + d];
  out[o + DIMS] = d0;
  out[o + DIMS + 1] = d1;
  out[o + DIMS + 2] = t >>> 0;
  out[o + DIMS + 3] = (Math.floor(t / 0x100000000) | (tomb ? TOMB : 0)) >>> 0;
}

/** Entries and tombstones under `nodes` at `level` (checked: E_PARAM / E_LIMIT). */
export function listRows(tree: SyncTree, clock: SyncClock, level: number, nodes: readonly number[]): Uint32Array {
  checkNodes(level, nodes, DEPTH);
  const wanted = new Set(nodes);
  const shift = 4 * (DEPTH - level);
  // Entries changed since the build (cache.ts) replace the built rows of their coordinate.
  const changed = [...tree.overlay.values()].filter((e) => e.digest && wanted.has(leafOf(e.coords, 0) >>> shift));
  let n = changed.length;
  for (const k of nodes) {
    const [a, b] = nodeRows(tree, level, k);
    n += b - a;
  }
  const tombs = clock.tombstones(parsePattern(tree.pattern), level, wanted, DEPTH);
  const out = new Uint32Array((n + tombs.length) * LIST_WORDS);
  let o = 0;
  for (const k of nodes) {
    const [a, b] = nodeRows(tree, level, k);
    for (let j = a; j < b; j++) {
      const key = coordKey(tree.coords, j);
      if (tree.overlay.has(key)) continue;
      put(out, o, tree.coords, j, tree.digests[2 * j], tree.digests[2 * j + 1], clock.timeOf(key), false);
      o += LIST_WORDS;
    }
  }
  for (const e of changed) {
    const d = e.digest as Uint32Array;
    put(out, o, e.coords, 0, d[0], d[1], clock.timeOf(coordKey(e.coords, 0)), false);
    o += LIST_WORDS;
  }
  for (const [key, t] of tombs) {
    put(out, o, keyCoords(key), 0, 0, 0, t, true);
    o += LIST_WORDS;
  }
  return out.subarray(0, o);
}

/** Decodes list rows into coordinate key → row. */
export function parseRows(words: Uint32Array[]): Map<string, Listed> {
  const m = new Map<string, Listed>();
  for (const w of words) {
    for (let o = 0; o + LIST_WORDS <= w.length; o += LIST_WORDS) {
      const hi = w[o + DIMS + 3];
      m.set(coordKey(w.subarray(o, o + DIMS), 0), {
        digest: w.subarray(o + DIMS, o + DIMS + 2),
        time: (hi & ~TOMB) * 0x100000000 + w[o + DIMS + 2],
        tomb: (hi & TOMB) !== 0,
      });
    }
  }
  return m;
}
