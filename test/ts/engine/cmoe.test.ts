import { Engine } from '../../../engine/engine';
import { OpOutput } from '../../../engine/types';
import { Tensor, tensorBatch } from '../../../engine/tensors';
import { code } from './helpers';

type Named = Record<string, Tensor>;

/** Runs CMOE with named tensors; returns the result and the reply's tensors by name. */
function cmoe(e: Engine, params: Record<string, unknown>, named: Named) {
  const names = Object.keys(named);
  const out: OpOutput = e.execute('CMOE', { params: { ...params, tensors: names }, scrolls: tensorBatch(names.map((n) => named[n])) });
  const b = out.scrolls!;
  const got: Record<string, { shape: number[]; data: number[] }> = {};
  (out.result.tensors as string[]).forEach((n, i) => {
    const bytes = b.values.slice(b.valueOffsets[i], b.valueOffsets[i + 1]);
    const data = b.dtype[i] === 1 ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer);
    got[n] = { shape: Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1])), data: Array.from(data) };
  });
  return { result: out.result, t: got };
}

const f32 = (shape: number[], data: number[]): Tensor => ({ shape, data: Float32Array.from(data) });
const i32 = (shape: number[], data: number[]): Tensor => ({ shape, data: Int32Array.from(data) });
// 3 tokens over 4 experts
const LOGITS = f32([3, 4], [4, 1, 2, 3, 0, 5, 5, 1, 2, 2, 2, 9]);

describe('CMOE op', () => {
  test('route returns the selection, plan, shards and aux statistics', () => {
    const e = new Engine();
    const { result, t } = cmoe(e, { top_k: 2 }, { logits: LOGITS });
    expect(result).toMatchObject({ mode: 'route', tokens: 3, experts: 4, top_k: 2, capacity: null, n_kept: 6, dropped: 0 });
    expect(t.expert_ids).toEqual({ shape: [3, 2], data: [0, 3, 1, 2, 3, 0] });
    expect(t.order.data).toEqual([0, 5, 2, 3, 1, 4]);
    expect(t.counts.data).toEqual([2, 1, 1, 2]);
    expect(t.offsets.data).toEqual([0, 2, 3, 4, 6]);
    expect(t.kept).toEqual({ shape: [3, 2], data: [1, 1, 1, 1, 1, 1] });
    expect(t.expert_shard.data).toEqual([0, 0, 0, 0]);
    expect(t.shard_counts.data).toEqual([6]);
    const aux = result.aux as Record<string, number | number[]>;
    expect(aux.tokens_per_expert).toEqual([2 / 3, 1 / 3, 1 / 3, 2 / 3]);
    expect((aux.router_prob_per_expert as number[]).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(typeof aux.aux_loss).toBe('number');
    expect(typeof result.elapsed_ms).toBe('number');
  });

  test('capacity, renormalize and an explicit expert placement', () => {
    const e = new Engine();
    const { result, t } = cmoe(e, { top_k: 2, capacity_factor: 0.5, renormalize: true, expert_shards: [0, 0, 1, 1] }, { logits: LOGITS });
    expect(result.capacity).toBe(1); // ceil(0.5·3·2/4)
    expect(t.kept.data).toEqual([1, 1, 1, 1, 0, 0]);
    expect(t.order.data).toEqual([0, 2, 3, 1]);
    expect(t.shard_counts.data).toEqual([2, 2]);
    expect(t.weights.data[0] + t.weights.data[1]).toBeCloseTo(1, 6);
  });

  test('expert_base asks the CROUTE table who owns each expert', () => {
    const e = new Engine();
    e.execute('CROUTE', { params: { table: [
      { start: '0.0.0/0.0.0/0.0.0', end: '1.1.1/1.1.1/1.1.3', shard: 4 },
      { start: '1.1.1/1.1.1/1.1.3', end: null, shard: 2 },
    ] } });
    const { t } = cmoe(e, { top_k: 1, expert_base: '1.1.1/1.1.1/1.1.1' }, { logits: LOGITS });
    expect(t.expert_shard.data).toEqual([4, 4, 2, 2]);
    expect(t.shard_counts.data).toEqual([0, 0, 1, 0, 2]);
  });

  test('combine and combine_backward take the plan back', () => {
    const e = new Engine();
    const r = cmoe(e, { top_k: 2 }, { logits: LOGITS }).t;
    const H = 2;
    const out = f32([6, H], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const plan = { order: i32([6], r.order.data), weights: f32([3, 2], r.weights.data) };
    const y = cmoe(e, { mode: 'combine' }, { expert_out: out, ...plan }).t.y;
    expect(y.shape).toEqual([3, H]);
    // token 0: slot 0 is order row 0, slot 1 (a=1) is order row 4
    const w = r.weights.data;
    expect(y.data[0]).toBeCloseTo(w[0] * 1 + w[1] * 9, 5);
    const dy = f32([3, H], [1, 0, 0, 1, 1, 1]);
    const g = cmoe(e, { mode: 'combine_backward' }, { expert_out: out, ...plan, dy }).t;
    expect(g.d_expert_out.shape).toEqual([6, H]);
    expect(g.d_weights.shape).toEqual([3, 2]);
    expect(g.d_weights.data[0]).toBeCloseTo(1, 6); // <row 0, dy[0]> = 1·1 + 2·0
  });

  test('bad input is a typed error and the engine keeps working', () => {
    const e = new Engine();
    expect(code(() => cmoe(e, { top_k: 1 }, { logits: f32([4], [1, 2, 3, 4]) }))).toBe('E_SHAPE');
    expect(code(() => cmoe(e, { top_k: 1 }, { logits: f32([0, 4], []) }))).toBe('E_SHAPE');
    expect(code(() => cmoe(e, {}, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 0 }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 5 }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1 }, { logits: i32([3, 4], new Array(12).fill(0)) }))).toBe('E_DTYPE');
    expect(code(() => cmoe(e, { top_k: 1 }, { logits: f32([1, 2], [0, NaN]) }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, capacity_factor: 0 }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, capacity_factor: -1 }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, capacity_factor: '2' }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, renormalize: 1 }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, expert_shards: [0, 1] }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, expert_shards: [0, 1, 2, -1] }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, expert_shards: [0, 0, 0, 0], expert_base: '1.1.1/1.1.1/1.1.1' }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { top_k: 1, expert_base: '1.1.1/1.1.1/1.1.4294967294' }, { logits: LOGITS }))).toBe('E_COORD');
    expect(code(() => cmoe(e, { top_k: 1, mode: 'scatter' }, { logits: LOGITS }))).toBe('E_PARAM');
    expect(code(() => e.execute('CMOE', { params: { top_k: 1 } }))).toBe('E_PARAM'); // no logits
    const plan = { order: i32([2], [0, 1]), weights: f32([1, 2], [0.5, 0.5]) };
    expect(code(() => cmoe(e, { mode: 'combine' }, { expert_out: f32([3, 1], [1, 2, 3]), ...plan }))).toBe('E_SHAPE');
    expect(code(() => cmoe(e, { mode: 'combine' }, { expert_out: f32([2], [1, 2]), ...plan }))).toBe('E_SHAPE');
    expect(code(() => cmoe(e, { mode: 'combine' }, { expert_out: f32([2, 1], [1, 2]), order: i32([2], [0, 2]), weights: plan.weights }))).toBe('E_PARAM');
    expect(code(() => cmoe(e, { mode: 'combine_backward' }, { expert_out: f32([2, 1], [1, 2]), ...plan, dy: f32([2, 1], [1, 1]) }))).toBe('E_SHAPE');
    expect(code(() => cmoe(e, { mode: 'combine_backward' }, { expert_out: f32([2, 1], [1, 2]), ...plan }))).toBe('E_PARAM');
    expect(cmoe(e, { top_k: 1 }, { logits: LOGITS }).t.expert_ids.data).toEqual([0, 1, 3]);
  });
});
