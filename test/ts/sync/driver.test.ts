/** The sync driver between two in-process engines: descent, both directions, merge rules. */
import { Engine } from '../../../engine/engine';
import { Kind, type OpBody } from '../../../engine/types';
import { initSyncHash } from '../../../engine/sync/hash';
import { syncState } from '../../../engine/sync/state';
import { sameSummary } from '../../../engine/sync/tree';
import { treeFor } from '../../../engine/sync/cache';
import { encodeBody } from '../../../bridge/frames';
import { pickWinner, syncWith, type GateRun } from '../../../bridge/sync/driver';
import type { Peer } from '../../../bridge/sync/peer';
import { code, coordsOf, dec, stringBatch } from '../engine/helpers';

/** Sets both engines' write clocks so that every write on `later` is an hour after any on `earlier`. */
function laterOn(later: Engine, earlier: Engine): void {
  const base = Date.now() + 1_000_000;
  syncState(earlier).clock.now = () => base;
  syncState(later).clock.now = () => base + 3_600_000;
}

const ALL = '*.*.*/*.*.*/*.*.*';
const gate: GateRun = async (_w, fn) => fn();
const rowsOf = (n: number) => Array.from({ length: n }, (_, i) => [2, 1, 1, 1, 1, 1, 1 + (i >> 8), 1, 1 + (i & 255)]);

/** A Peer stand-in that serves `engine` in process, through the same body encoding. */
function fakePeer(engine: Engine): Peer {
  const p = {
    rounds: 0, sent: 0, received: 0, hashBytes: 0, dataBytes: 0, address: 'inproc://fake',
    async call(op: string, params: Record<string, unknown>, body?: OpBody) {
      p.rounds++;
      const out = engine.execute(op, { params: JSON.parse(JSON.stringify(params)), ...body });
      const b = encodeBody(out);
      return { result: out.result, body: b && Buffer.from(b) };
    },
    close() {},
  };
  return p as unknown as Peer;
}

function pair(n: number): [Engine, Engine, number[][]] {
  const rows = rowsOf(n);
  const vals = rows.map((_, i) => `v${i}`);
  const a = new Engine();
  const b = new Engine();
  for (const e of [a, b]) {
    syncState(e); // clocks on before the changes
    e.store.putBatch(stringBatch(rows, vals, Kind.Text));
  }
  return [a, b, rows];
}

const text = (e: Engine, c: number[]) => {
  const s = e.store.get(coordsOf([c]), 0);
  return s && dec.decode(s.bytes);
};

beforeAll(() => initSyncHash());

describe('syncWith', () => {
  test('changes on both sides meet; only differing ranges are compared; a second sync is a no-op', async () => {
    const [a, b, rows] = pair(5000);
    for (let i = 0; i < 10; i++) a.store.putBatch(stringBatch([rows[i * 97]], [`a${i}`], Kind.Text));
    for (let i = 0; i < 10; i++) b.store.putBatch(stringBatch([rows[i * 89 + 3]], [`b${i}`], Kind.Text));
    b.store.putBatch(stringBatch([[2, 9, 9, 9, 9, 9, 9, 9, 9]], ['new on b'], Kind.Text));
    a.store.delete(coordsOf([rows[4999]]), 0);
    const st = await syncWith(a, gate, fakePeer(b), ALL, 3);
    expect(st.converged).toBe(true);
    expect(st.scrolls_sent).toBe(10);
    expect(st.scrolls_received).toBe(11);
    expect(st.deleted_remote).toBe(1);
    // 22 differing leaves: far fewer ranges compared than the 16^5 leaves
    expect(st.ranges_compared).toBeLessThan(22 * 16 * 5 + 16);
    expect(sameSummary(treeFor(a, ALL).levels[0], 0, treeFor(b, ALL).levels[0], 0)).toBe(true);
    expect(text(b, rows[0])).toBe('a0');
    expect(text(a, rows[3])).toBe('b0');
    expect(text(a, [2, 9, 9, 9, 9, 9, 9, 9, 9])).toBe('new on b');
    expect(text(b, rows[4999])).toBeUndefined();
    const again = await syncWith(a, gate, fakePeer(b), ALL, 3);
    expect(again).toMatchObject({ converged: true, passes: 0, scrolls_sent: 0, scrolls_received: 0 });
  });

  test('the later write wins a scroll changed on both sides', async () => {
    const [a, b, rows] = pair(300);
    laterOn(b, a);
    a.store.putBatch(stringBatch([rows[5]], ['older'], Kind.Text));
    b.store.putBatch(stringBatch([rows[5]], ['newer'], Kind.Text));
    await syncWith(a, gate, fakePeer(b), ALL, 3);
    expect(text(a, rows[5])).toBe('newer');
    expect(text(b, rows[5])).toBe('newer');
  });

  test("the owner's value wins, even when older; foreign writes are E_OWNER", async () => {
    const [a, b, rows] = pair(300);
    const sa = syncState(a);
    sa.owners.agent = 'alice';
    sa.owners.add('alice', '2.*.*/*.*.*/*.*.*');
    syncState(b).owners.agent = 'bob';
    laterOn(b, a);
    a.store.putBatch(stringBatch([rows[5]], ['alice wrote'], Kind.Text));
    b.store.putBatch(stringBatch([rows[5]], ['bob wrote later'], Kind.Text)); // bob does not know yet
    await syncWith(a, gate, fakePeer(b), ALL, 3);
    expect(text(b, rows[5])).toBe('alice wrote');
    // bob learned alice's claim at hello: his writes there are refused now
    expect(code(() => b.store.putBatch(stringBatch([rows[6]], ['no'], Kind.Text)))).toBe('E_OWNER');
    expect(code(() => b.store.delete(coordsOf([rows[6]]), 0))).toBe('E_OWNER');
    expect(text(b, rows[6])).toBe('v6');
  });

  test('pickWinner: owner, then time, then presence, then digest', () => {
    const d = (x: number) => Uint32Array.of(x, 0);
    const e = (t: number, x = 1, tomb = false) => ({ digest: d(x), time: t, tomb });
    expect(pickWinner('b', 'a', 'b', e(9), e(1))).toBe('remote');
    expect(pickWinner('a', 'a', 'b', undefined, e(9))).toBe('local');
    expect(pickWinner(undefined, 'a', 'b', e(2), e(1))).toBe('local');
    expect(pickWinner(undefined, null, null, e(1, 1, true), e(2))).toBe('remote');
    expect(pickWinner(undefined, null, null, e(3, 0, true), e(2))).toBe('local');
    expect(pickWinner(undefined, null, null, e(0), undefined)).toBe('local');
    expect(pickWinner(undefined, null, null, e(0, 1), e(0, 2))).toBe('remote');
  });

  test('CSYNC steps reject bad params with typed errors', () => {
    const a = new Engine();
    expect(code(() => a.execute('CSYNC', { params: { step: 'nope' } }))).toBe('E_PARAM');
    expect(code(() => a.execute('CSYNC', { params: { step: 'hash', pattern: ALL, level: 9, nodes: [0] } }))).toBe('E_PARAM');
    expect(code(() => a.execute('CSYNC', { params: { step: 'hello', pattern: 'x' } }))).toBe('E_PATTERN');
    expect(code(() => a.execute('CSYNC', { params: { step: 'hello', pattern: ALL, owns: [{ agent: '', pattern: ALL }] } }))).toBe('E_PARAM');
    expect(code(() => a.execute('CSYNC', { params: { step: 'delete', batch: true, times: [1, 2] }, coords: coordsOf([[1, 1, 1, 1, 1, 1, 1, 1, 1]]) }))).toBe('E_PARAM');
    expect(code(() => a.execute('CSYNC', { params: { step: 'run', peer: 'ipc://x', pattern: ALL } }))).toBe('E_PARAM');
  });
});
