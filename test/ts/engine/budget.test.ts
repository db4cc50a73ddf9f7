/**
 * The event-loop budget (engine/budget.ts): a client request (Engine.serve) whose scan or
 * walk runs past maxLoopMs stops with E_LIMIT and changes nothing; execute (internal
 * callers) and a budget of 0 are unbounded. The clock is injected: it advances 1 ms at each
 * read, so the outcome is the same on any machine.
 */
import { Engine } from '../../../engine/engine';
import { Kind } from '../../../engine/types';
import { initSyncHash } from '../../../engine/sync/hash';
import { initChecksum } from '../../../engine/phext';
import { code, stringBatch } from './helpers';

beforeAll(() => Promise.all([initSyncHash(), initChecksum()]));

/** A clock that moves 1 ms each time it is read. */
function steppingClock(): () => number {
  let t = 0;
  return () => ++t;
}

/** An engine holding `n` text scrolls 1.1.1/1.1.1/x.y.z spread over distinct leaves. */
function filled(n: number, maxLoopMs: number, maxBatch?: number): Engine {
  const e = new Engine({ maxLoopMs, clock: steppingClock(), maxBatch });
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) rows.push([1, 1, 1, 1, 1, 1, 1 + (i % 97), 1 + Math.floor(i / 97) % 89, 1 + Math.floor(i / 8633)]);
  e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(rows, rows.map((_, i) => `s${i}`), Kind.Text) });
  return e;
}

const N = 60_000;

describe('event-loop budget', () => {
  test('a walk past the budget stops with E_LIMIT naming the flag; the same request unbudgeted answers', () => {
    const e = filled(N, 5);
    const chier = { params: { coord: '1.1.1/1.1.1/1.1.1', level: 0, direction: 'down', depth: 9 } };
    let msg = '';
    try {
      e.serve('CHIER', chier);
    } catch (err) {
      msg = (err as Error).message;
      expect((err as { code: string }).code).toBe('E_LIMIT');
    }
    expect(msg).toMatch(/CHIER: .*event-loop budget of 5 ms \(--max-loop-ms\)/);
    const nodes = (e.execute('CHIER', chier).result as { nodes: unknown[] }).nodes;
    expect(nodes.length).toBeGreaterThan(N); // every leaf plus its ancestors
  });

  test.each([
    ['CRANGE', { pattern: '*.*.*/*.*.*/*.*.[3:5]' }],
    ['PHEXT_EXPORT', {}],
  ])('%s over a big store is stopped, and answers with no budget', (op, params) => {
    expect(code(() => filled(N, 5).serve(op, { params }))).toBe('E_LIMIT');
    expect(filled(N, 0).serve(op, { params }).result).toBeDefined();
  });

  test('a stopped request leaves the engine serving: a write and a small read after it succeed', () => {
    const e = filled(N, 5);
    expect(code(() => e.serve('CRANGE', { params: { pattern: '*.*.*/*.*.*/*.*.[3:5]' } }))).toBe('E_LIMIT');
    const put = stringBatch([[2, 2, 2, 2, 2, 2, 2, 2, 2]], ['after'], Kind.Text);
    expect(e.serve('CPUT', { params: { batch: true }, scrolls: put }).result).toEqual({ written: 1 });
    const got = e.serve('CRANGE', { params: { pattern: '2.2.2/2.2.2/2.2.2' } });
    expect(got.result).toEqual({ n: 1, truncated: false });
  });

  test('a cache build (the sync tree) does not count against the budget', () => {
    const e = filled(N, 5);
    const r = e.serve('CSYNC', { params: { step: 'hash', pattern: '*.*.*/*.*.*/*.*.*', level: 0, nodes: [0] } });
    expect(r.result).toBeDefined();
  });

  test('CHIER refuses more nodes than a batch holds', () => {
    const e = filled(1_000, 0, 1_000);
    expect(code(() => e.serve('CHIER', { params: { coord: '1.1.1/1.1.1/1.1.1', level: 6, direction: 'down', depth: 3 } }))).toBe('E_LIMIT');
  });

  test('PING reports the budget in force', () => {
    const limits = (new Engine({ maxLoopMs: 250 }).execute('PING', { params: {} }).result as { limits: Record<string, number> }).limits;
    expect(limits.max_loop_ms).toBe(250);
  });
});
