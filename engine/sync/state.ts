/**
 * Per-engine sync state: ownership rules and write clocks, hooked into the store's write
 * guard on first use (so a sidecar that never syncs pays nothing per write). Client writes
 * are checked against ownership (a cluster shard's ranges, then agents' patterns), then clocked; sync's own applies bypass both and set the
 * times they carry.
 */
import type { EngineContext } from '../instruction';
import { Owners } from './owners';
import { SyncClock, coordKey } from './clock';
import { forgetTree, trackWrites } from './cache';
import type { RouteTable } from '../routes';

/** Written keys tracked between syncs before the cached tree is dropped instead. */
const MAX_DIRTY = 1 << 18;

/** Ownership, clocks and the bypass switch of one engine. */
export class SyncState {
  readonly owners = new Owners();
  readonly clock = new SyncClock();
  private bypassing = 0;

  /**
   * `dirty`: where written coordinate keys go, for incremental trees (cache.ts); `overflow`
   * drops the cached tree when more were written than a patch would take.
   */
  constructor(private readonly dirty: Set<string>, private readonly overflow: () => void,
    private readonly routes?: RouteTable) {}

  /** The store write guard. */
  readonly guard = (coords: ArrayLike<number>, first: number, count: number, del: boolean): void => {
    if (this.bypassing > 0) {
      for (let i = first; i < first + count; i++) this.dirty.add(coordKey(coords, i));
    } else {
      // Check every row before recording any: a refused write leaves no clock behind.
      this.routes?.checkOwned(coords, first, count); // a cluster shard's ranges (engine/shard.ts)
      this.owners.check(coords, first, count);
      this.clock.record(coords, first, count, del, this.dirty);
    }
    // A sidecar that writes much and syncs rarely must not grow the set without bound.
    if (this.dirty.size > MAX_DIRTY) this.overflow();
  };

  /** Runs `fn` (a sync apply) with the guard off. */
  bypass<T>(fn: () => T): T {
    this.bypassing++;
    try {
      return fn();
    } finally {
      this.bypassing--;
    }
  }
}

const byEngine = new WeakMap<EngineContext, SyncState>();

/** The engine's sync state, created and hooked into its store on first use. */
export function syncState(engine: EngineContext): SyncState {
  let s = byEngine.get(engine);
  if (!s) {
    s = new SyncState(trackWrites(engine), () => forgetTree(engine), engine.routes);
    byEngine.set(engine, s);
    engine.store.writeGuard = s.guard;
  }
  return s;
}
