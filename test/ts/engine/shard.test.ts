/** A sidecar as a cluster shard (engine/shard.ts): versioned table, E_SHARD, E_STALE, prune. */
import { Engine } from '../../../engine/engine';
import { Kind } from '../../../engine/types';
import { checkRouteVersion } from '../../../engine/shard';
import { code, coordsOf, stringBatch } from './helpers';

const table = [
  { start: '0.0.0/0.0.0/0.0.0', end: '10.0.0/0.0.0/0.0.0', shard: 0, address: null },
  { start: '10.0.0/0.0.0/0.0.0', end: null, shard: 1, address: null },
];
const mine = [1, 1, 1, 1, 1, 1, 1, 1, 1];
const theirs = [12, 1, 1, 1, 1, 1, 1, 1, 1];

function shard0(version = 3): Engine {
  const e = new Engine();
  e.execute('CROUTE', { params: { table, version, shard: 0 } });
  return e;
}

describe('cluster shard', () => {
  test('the table read back carries version and shard', () => {
    const e = new Engine();
    expect(e.execute('CROUTE', { params: {} }).result).toMatchObject({ version: 0, shard: null });
    const r = shard0(3).execute('CROUTE', { params: {} }).result;
    expect(r).toMatchObject({ version: 3, shard: 0 });
    expect((r.table as unknown[]).length).toBe(2);
  });

  test('writes outside the owned ranges are E_SHARD, all or nothing', () => {
    const e = shard0();
    e.store.putBatch(stringBatch([mine], ['ok'], Kind.Text));
    expect(code(() => e.store.putBatch(stringBatch([mine.map((x) => x + 1), theirs], ['a', 'b'], Kind.Text)))).toBe('E_SHARD');
    expect(e.store.size).toBe(1);
    expect(code(() => e.execute('CDEL', { params: { coord: '12.1.1/1.1.1/1.1.1' } }))).toBe('E_SHARD');
    expect(code(() => e.execute('CPUT', { params: { coord: '10.0.0/0.0.0/0.0.0', kind: 'text' }, raw: new Uint8Array(1) }))).toBe('E_SHARD');
    // A plain engine (no shard) writes anywhere.
    const plain = new Engine();
    plain.execute('CROUTE', { params: { table } });
    plain.store.putBatch(stringBatch([theirs], ['x'], Kind.Text));
    expect(plain.store.size).toBe(1);
  });

  test('request versions: equal passes, other is E_STALE, CROUTE and PING never checked', () => {
    const e = shard0(3);
    expect(() => checkRouteVersion(e.routes, 'CGET', { rv: 3 })).not.toThrow();
    expect(() => checkRouteVersion(e.routes, 'CGET', {})).not.toThrow();
    expect(code(() => checkRouteVersion(e.routes, 'CGET', { rv: 2 }))).toBe('E_STALE');
    expect(code(() => checkRouteVersion(e.routes, 'CPUT', { rv: 4 }))).toBe('E_STALE');
    expect(code(() => checkRouteVersion(e.routes, 'CPUT', { rv: 'x' }))).toBe('E_PARAM');
    expect(() => checkRouteVersion(e.routes, 'CROUTE', { rv: 1 })).not.toThrow();
    expect(() => checkRouteVersion(e.routes, 'PING', { rv: 1 })).not.toThrow();
    expect(() => checkRouteVersion(new Engine().routes, 'CGET', { rv: 9 })).not.toThrow(); // not a shard
  });

  test('tables only move forward; bad version or shard is E_PARAM and changes nothing', () => {
    const e = shard0(3);
    expect(code(() => e.execute('CROUTE', { params: { table, version: 2 } }))).toBe('E_STALE');
    expect(code(() => e.execute('CROUTE', { params: { table, version: -1 } }))).toBe('E_PARAM');
    expect(code(() => e.execute('CROUTE', { params: { table, version: 4, shard: 'a' } }))).toBe('E_PARAM');
    expect(e.execute('CROUTE', { params: {} }).result).toMatchObject({ version: 3, shard: 0 });
  });

  test('a moved range: sync applies pass, prune deletes what others own', () => {
    const e = shard0(3);
    e.store.putBatch(stringBatch([mine], ['keep'], Kind.Text));
    // Copied in by sync before this shard owns it: past the check.
    const moved = stringBatch([theirs], ['copied'], Kind.Text);
    e.execute('CSYNC', { params: { step: 'apply', batch: true, times: [1] }, scrolls: moved });
    expect(e.store.size).toBe(2);
    const r = e.execute('CROUTE', { params: { prune: true } }).result;
    expect(r.pruned).toBe(1);
    expect(e.store.size).toBe(1);
    expect(e.execute('CGET', { params: { batch: true }, coords: coordsOf([mine]) }).result).toMatchObject({ found: 1 });
    expect(code(() => new Engine().execute('CROUTE', { params: { prune: true } }))).toBe('E_PARAM');
  });
});
