import { availableParallelism } from 'node:os';
import { expertBytes, expertGroupModel, packExpert, quantizeBlocks, quantizeRows } from '../../../engine/kernels/experts_graph';
import { ortThreads } from '../../../engine/kernels/attention_ort';
import { encodeModel, Elem } from '../../../engine/kernels/onnx_proto';
import { autoGroup, expertsTask } from '../../../engine/ops/cexperts';
import { Engine } from '../../../engine/engine';
import { OutTensor, tensorBatch } from '../../../engine/tensors';
import { code, seededFloats as rand } from './helpers';

const E = 6, H = 8, I = 4;

const GU = rand(E * 2 * I * H, 1), DOWN = rand(E * H * I, 2);

describe('expert graphs', () => {
  test('quantizeRows: per-row scales, transposed, error within half a step', () => {
    const w = Float32Array.from([1.5, -2, 0.5, 0, 0, 0]);
    const { q, scale } = quantizeRows(w, 2, 3);
    expect(Array.from(scale)).toEqual([Math.fround(2 / 63), 1]); // 7 bits: see quantizeRows
    expect(Array.from(q)).toEqual([47, 0, -63, 0, 16, 0]); // (K, N) layout
    const big = rand(32 * 16, 5);
    const r = quantizeRows(big, 32, 16);
    for (let n = 0; n < 32; n++) for (let k = 0; k < 16; k++) {
      expect(Math.abs(r.q[k * 32 + n] * r.scale[n] - big[n * 16 + k])).toBeLessThanOrEqual(r.scale[n] / 2 + 1e-7);
    }
  });

  test.each([[8, 32], [4, 32], [4, 128]] as const)('quantizeBlocks: %i-bit blocks of %i along K, zero point 2^(bits-1), padded last block', (bits, bs) => {
    const K = bs + 8, N = 3;
    const w = rand(N * K, 7);
    const { q, scale, blocks } = quantizeBlocks(w, N, K, bits, bs);
    expect(blocks).toBe(2);
    const blob = (bs * bits) / 8;
    expect(q.length).toBe(N * blocks * blob);
    const zp = 1 << (bits - 1);
    for (let n = 0; n < N; n++) for (let k = 0; k < 2 * bs; k++) {
      const b = Math.floor(k / bs), j = k % bs, o = (n * blocks + b) * blob;
      const v = bits === 8 ? q[o + j] : (q[o + (j >> 1)] >> (j & 1 ? 4 : 0)) & 15;
      const s = scale[n * blocks + b];
      if (k < K) expect(Math.abs((v - zp) * s - w[n * K + k])).toBeLessThanOrEqual(s / 2 + 1e-7);
      else expect(v).toBe(zp); // padding dequantises to 0
    }
  });

  test('packExpert quantises on arrival: a q4 / q8 / int8 expert keeps no fp32 weights, fp32 keeps a view', () => {
    const w = { gateUp: GU.subarray(0, 2 * I * H), down: DOWN.subarray(0, H * I) };
    const fp = packExpert('fp32', H, I, w);
    expect(fp.gateUp.w.buffer).toBe(GU.buffer); // no copy
    for (const fmt of ['int8', 'q8', 'q4'] as const) {
      const p = packExpert(fmt, H, I, w);
      for (const l of [p.gateUp, p.down]) {
        expect(l.w.buffer).not.toBe(GU.buffer);
        expect(l.w.buffer).not.toBe(DOWN.buffer);
      }
      const held = [p.gateUp, p.down].reduce((a, l) => a + l.w.byteLength + (l.scale?.byteLength ?? 0), 0);
      expect(held).toBe(expertBytes(fmt, H, I));
    }
  });

  test('the model encoder embeds large initializers intact', () => {
    const data = rand(1000, 3);
    const bytes = new Uint8Array(data.buffer);
    const m = encodeModel('t', [{ op: 'Identity', inputs: ['w'], outputs: ['y'] }], [], [{ name: 'y', elem: Elem.Float, dims: [1000] }], 17, [{ name: 'w', elem: Elem.Float, dims: [1000], data: bytes }]);
    // the raw bytes appear verbatim, once
    const s = Buffer.from(m);
    expect(s.indexOf(Buffer.from(bytes))).toBeGreaterThan(0);
    expect(expertGroupModel('fp32', H, I, [packExpert('fp32', H, I, { gateUp: GU.subarray(0, 2 * I * H), down: DOWN.subarray(0, H * I) })]).length).toBeGreaterThan(3 * H * I * 4);
  });
});

describe('ONNX Runtime threads', () => {
  // ORT's own default counts physical cores (1 on a 2-vCPU VM here): sessions always get a count.
  test('a given count is kept; 0 or none means one per core the process may use', () => {
    expect(ortThreads(3)).toBe(3);
    expect(ortThreads(0)).toBe(availableParallelism());
    expect(ortThreads()).toBe(availableParallelism());
    expect(ortThreads(null)).toBe(availableParallelism());
  });
});

describe('CEXPERTS requests', () => {
  const input = (params: Record<string, unknown>, named: Record<string, OutTensor>) => {
    const names = Object.keys(named);
    return { params: { ...params, tensors: names }, scrolls: tensorBatch(names.map((n) => named[n])) };
  };

  test('validated into tasks', () => {
    const t = expertsTask(input({ mode: 'load', layer: 2, experts: E, hidden: H, intermediate: I }, { gate_up: { shape: [E, 2 * I, H], data: GU }, down: { shape: [E, H, I], data: DOWN } }));
    expect(t).toMatchObject({ mode: 'load', layer: 2, first: 0, n: E, replace: false, spec: { group: E, format: 'fp32' } });
    const r = expertsTask(input({ mode: 'run', layer: 2, top_k: 2 }, { x: { shape: [3, H], data: rand(3 * H, 1) }, logits: { shape: [3, E], data: rand(3 * E, 2) } }));
    expect(r).toMatchObject({ mode: 'run', T: 3, routing: { topK: 2, renormalize: false } });
    expect(code(() => expertsTask({ params: { mode: 'nope' } }))).toBe('E_PARAM');
    expect(code(() => expertsTask({ params: { mode: 'run' } }))).toBe('E_PARAM');
    expect(code(() => expertsTask(input({ mode: 'run', layer: 0 }, { x: { shape: [3, H], data: rand(3 * H, 1) }, logits: { shape: [3, E], data: rand(3 * E, 2) } })))).toBe('E_PARAM'); // no top_k
    expect(code(() => expertsTask(input({ mode: 'load', layer: 0, experts: E, hidden: H, intermediate: I }, { gate_up: { shape: [E, 2 * I, H], data: GU }, down: { shape: [E, I, H], data: DOWN } })))).toBe('E_SHAPE');
    expect(code(() => expertsTask(input({ mode: 'run', layer: 0 }, { x: { shape: [3, H], data: rand(3 * H, 1) }, expert_ids: { shape: [3, 2], data: new Int32Array(6) }, weights: { shape: [3, 1], data: new Float32Array(3) } })))).toBe('E_SHAPE');
  });

  test('default groups: one session per layer unless its weights pass 1 GiB', () => {
    expect(autoGroup(8, 64, 32, 'fp32')).toBe(8);
    expect(autoGroup(128, 2048, 768, 'int8')).toBe(128); // Qwen3-30B-A3B layer: ~0.6 GB int8
    expect(autoGroup(128, 2048, 768, 'fp32')).toBe(43); // ~2.4 GB fp32: three sessions
    expect(autoGroup(3, 1 << 16, 1 << 14, 'fp32')).toBe(1);
  });

  test('an engine without the expert host answers E_INTERNAL', () => {
    expect(code(() => new Engine().execute('CEXPERTS', { params: { mode: 'info' } }))).toBe('E_INTERNAL');
  });
});
