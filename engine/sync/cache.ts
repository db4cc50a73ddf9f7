/**
 * One cached sync tree per engine, kept up to date incrementally. Once sync state is on
 * (engine/sync/state.ts) the store's write guard records every written coordinate; the next
 * {@link treeFor} re-digests only those and patches the summaries along their paths (the
 * summaries are invertible: count ±1, xor, sum ∓), instead of rehashing the whole range.
 * Many changes (over an eighth of the range), another pattern, or writes made before tracking
 * started mean a full build.
 */
import type { EngineContext } from '../instruction';
import { DIMS } from '../types';
import { formatPattern, matchesPattern, parsePattern, type Pattern } from '../pattern';
import { compareCoords } from '../coords';
import { entryDigests } from './hash';
import { DEPTH, buildTree, leafOf, type SyncTree } from './tree';
import { unbudgeted } from '../budget';
import { keyCoords } from './clock';

const cache = new WeakMap<EngineContext, { version: number; tree: SyncTree; tracked: boolean }>();
const dirtyByEngine = new WeakMap<EngineContext, Set<string>>();

/** The set of written coordinate keys the write guard fills for `engine` (created on first call). */
export function trackWrites(engine: EngineContext): Set<string> {
  let s = dirtyByEngine.get(engine);
  if (!s) dirtyByEngine.set(engine, (s = new Set()));
  return s;
}

/** Drops `engine`'s cached tree (too many writes to track): the next {@link treeFor} builds afresh. */
export function forgetTree(engine: EngineContext): void {
  cache.delete(engine);
  dirtyByEngine.get(engine)?.clear();
}

/**
 * The tree of `engine`'s entries matching `patternText`, current with the store: cached,
 * patched after a few writes, rebuilt after many.
 */
export function treeFor(engine: EngineContext, patternText: string): SyncTree {
  const p = parsePattern(patternText);
  const canonical = formatPattern(p);
  const version = engine.store.version;
  const dirty = dirtyByEngine.get(engine);
  const hit = cache.get(engine);
  if (hit && hit.tree.pattern === canonical) {
    if (hit.version === version) return hit.tree;
    // Overlay and new writes together bounded: listing scans the overlay, so it must stay small.
    if (hit.tracked && dirty && hit.tree.overlay.size + dirty.size <= Math.max(1024, hit.tree.n / 8)) {
      patch(engine, hit.tree, p, dirty);
      dirty.clear();
      hit.version = version;
      return hit.tree;
    }
  }
  const tree = unbudgeted(() => {
    const { batch } = engine.store.range(p, Math.max(1, engine.store.size), true);
    return buildTree(canonical, batch.coords as Uint32Array, entryDigests(batch));
  });
  dirty?.clear();
  cache.set(engine, { version, tree, tracked: dirty !== undefined });
  return tree;
}

/** The digest an entry of `tree` has now (overlay first), or null when it is not there. */
function currentDigest(tree: SyncTree, key: string, c: Uint32Array): Uint32Array | null {
  const o = tree.overlay.get(key);
  if (o) return o.digest;
  const leaf = leafOf(c, 0);
  for (let j = tree.leafStart[leaf]; j < tree.leafStart[leaf + 1]; j++) {
    if (compareCoords(tree.coords, j, c, 0) === 0) return tree.digests.subarray(2 * j, 2 * j + 2);
  }
  return null;
}

/** Adds (`sign` 1) or removes (-1) a digest along the path of `leaf`. */
function account(tree: SyncTree, leaf: number, d: Uint32Array, sign: 1 | -1): void {
  for (let l = DEPTH; l >= 0; l--) {
    const k = 3 * (leaf >>> (4 * (DEPTH - l)));
    const s = tree.levels[l];
    s[k] += sign;
    s[k + 1] ^= d[0];
    s[k + 2] = (s[k + 2] + sign * d[1]) >>> 0;
  }
  tree.n += sign;
}

function patch(engine: EngineContext, tree: SyncTree, p: Pattern, dirty: Set<string>): void {
  const keys = [...dirty].filter((k) => matchesPattern(p, keyCoords(k), 0));
  if (keys.length === 0) return;
  const coords = new Uint32Array(keys.length * DIMS);
  keys.forEach((k, i) => coords.set(keyCoords(k), i * DIMS));
  const { batch } = engine.store.getBatch(coords);
  const digests = entryDigests({ ...batch, coords });
  keys.forEach((key, i) => {
    const c = coords.subarray(i * DIMS, (i + 1) * DIMS);
    const leaf = leafOf(c, 0);
    const before = currentDigest(tree, key, c);
    const now = batch.kind[i] === 0 ? null : digests.slice(2 * i, 2 * i + 2);
    if (before) account(tree, leaf, before, -1);
    if (now) account(tree, leaf, now, 1);
    tree.overlay.set(key, { coords: c.slice(), digest: now });
  });
}
