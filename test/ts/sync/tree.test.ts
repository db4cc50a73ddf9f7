/** The range-hash tree: order independence, one change = one differing path, listing. */
import { Engine } from '../../../engine/engine';
import { Kind } from '../../../engine/types';
import { initSyncHash } from '../../../engine/sync/hash';
import { DEPTH, FANOUT, childSummaries, sameSummary, leafOf } from '../../../engine/sync/tree';
import { treeFor } from '../../../engine/sync/cache';
import { listRows, parseRows } from '../../../engine/sync/list';
import { syncState } from '../../../engine/sync/state';
import { SyncClock } from '../../../engine/sync/clock';
import { code, coordsOf, stringBatch } from '../engine/helpers';

const ALL = '*.*.*/*.*.*/*.*.*';
const rowsOf = (n: number) => Array.from({ length: n }, (_, i) => [1, 2, 3, 4, 5, 6, 1 + (i >> 8), 1, 1 + (i & 255)]);

function engineWith(rows: number[][], vals: string[]): Engine {
  const e = new Engine();
  e.store.putBatch(stringBatch(rows, vals, Kind.Text));
  return e;
}

beforeAll(() => initSyncHash());

describe('sync tree', () => {
  const rows = rowsOf(3000);
  const vals = rows.map((_, i) => `value ${i}`);

  test('same scrolls in any insertion order give the same summaries at every level', () => {
    const a = engineWith(rows, vals);
    const order = rows.map((_, i) => i).reverse();
    const b = engineWith(order.map((i) => rows[i]), order.map((i) => vals[i]));
    const ta = treeFor(a, ALL);
    const tb = treeFor(b, ALL);
    // Buffer.equals: jest's deep equality over 12 MB of leaves takes minutes.
    for (let l = 0; l <= DEPTH; l++) expect(Buffer.from(ta.levels[l].buffer).equals(Buffer.from(tb.levels[l].buffer))).toBe(true);
    expect(ta.levels[0][0]).toBe(3000);
  });

  test('one changed value differs along exactly one root-to-leaf path', () => {
    const a = engineWith(rows, vals);
    const b = engineWith(rows, vals);
    syncState(b); // clocks on: the change below gets a write time
    b.store.putBatch(stringBatch([rows[1234]], ['changed'], Kind.Text));
    const ta = treeFor(a, ALL);
    const tb = treeFor(b, ALL);
    const leaf = leafOf(coordsOf([rows[1234]]), 0);
    for (let l = 0; l <= DEPTH; l++) {
      const size = FANOUT ** l;
      const differing: number[] = [];
      for (let k = 0; k < size; k++) if (!sameSummary(ta.levels[l], k, tb.levels[l], k)) differing.push(k);
      expect(differing).toEqual([leaf >>> (4 * (DEPTH - l))]);
    }
    // Listing the differing leaf shows the changed coordinate with different digests.
    const la = parseRows([listRows(ta, syncState(a).clock, DEPTH, [leaf])]);
    const lb = parseRows([listRows(tb, syncState(b).clock, DEPTH, [leaf])]);
    const key = rows[1234].join('.');
    expect(la.get(key)!.digest).not.toEqual(lb.get(key)!.digest);
    expect(lb.get(key)!.time).toBeGreaterThan(0); // b's write was clocked (sync state was on)
  });

  test('a pattern restricts the tree; the cache follows writes', () => {
    const a = engineWith(rows, vals);
    expect(treeFor(a, '1.2.3/4.5.6/1.1.*').n).toBe(256);
    a.store.putBatch(stringBatch([[1, 2, 3, 4, 5, 6, 1, 1, 999]], ['x'], Kind.Text));
    expect(treeFor(a, '1.2.3/4.5.6/1.1.*').n).toBe(257);
  });

  test('child summaries are the next level; bad node lists are typed errors', () => {
    const t = treeFor(engineWith(rows, vals), ALL);
    expect(Array.from(childSummaries(t, 0, [0]))).toEqual(Array.from(t.levels[1]));
    expect(code(() => childSummaries(t, DEPTH, [0]))).toBe('E_PARAM');
    expect(code(() => childSummaries(t, 1, [16]))).toBe('E_PARAM');
    expect(code(() => childSummaries(t, 1, [-1]))).toBe('E_PARAM');
    expect(code(() => listRows(t, new SyncClock(), 0, [0.5]))).toBe('E_PARAM');
  });

  test('with sync state on, a few writes patch the cached tree to what a full build gives', () => {
    const a = engineWith(rows, vals);
    syncState(a);
    const before = treeFor(a, ALL);
    a.store.putBatch(stringBatch([rows[3], [7, 7, 7, 7, 7, 7, 7, 7, 7]], ['changed', 'new'], Kind.Text));
    a.store.delete(coordsOf([rows[9]]), 0);
    a.store.delete(coordsOf([[9, 9, 9, 9, 9, 9, 9, 9, 9]]), 0); // absent: no change
    const patched = treeFor(a, ALL);
    expect(patched).toBe(before); // the same object, patched in place
    const fresh = engineWith(rows, vals);
    fresh.store.putBatch(stringBatch([rows[3], [7, 7, 7, 7, 7, 7, 7, 7, 7]], ['changed', 'new'], Kind.Text));
    fresh.store.delete(coordsOf([rows[9]]), 0);
    const full = treeFor(fresh, ALL);
    expect(patched.n).toBe(3000);
    for (let l = 0; l <= DEPTH; l++) expect(Buffer.from(patched.levels[l].buffer).equals(Buffer.from(full.levels[l].buffer))).toBe(true);
    // Listings agree too: the changed and new entries come from the overlay, the deleted one is gone.
    for (const r of [rows[3], [7, 7, 7, 7, 7, 7, 7, 7, 7], rows[9]]) {
      const leaf = leafOf(coordsOf([r]), 0);
      const mine = parseRows([listRows(patched, new SyncClock(), DEPTH, [leaf])]);
      const theirs = parseRows([listRows(full, new SyncClock(), DEPTH, [leaf])]);
      expect([...mine.entries()].sort().map(([k, v]) => [k, Array.from(v.digest)]))
        .toEqual([...theirs.entries()].sort().map(([k, v]) => [k, Array.from(v.digest)]));
    }
  });

  test('deletes leave tombstones in the listing', () => {
    const a = engineWith(rows, vals);
    syncState(a);
    a.store.delete(coordsOf([rows[7]]), 0);
    const leaf = leafOf(coordsOf([rows[7]]), 0);
    const listed = parseRows([listRows(treeFor(a, ALL), syncState(a).clock, DEPTH, [leaf])]).get(rows[7].join('.'));
    expect(listed?.tomb).toBe(true);
    expect(listed!.time).toBeGreaterThan(0);
  });
});
