/**
 * CATTEND forward on ONNX Runtime (MLAS GEMMs on every core), the fast path. The query
 * rows are packed into blocks (≤ BQ rows, all G query heads of a kv head together); each
 * block carries its own key list (band + globals, gathered by index inside the graph)
 * and an additive 0/-Inf mask bias, so the work is Σ blocks BQ×BK, never Sq×Skv:
 *
 *   q (U,G,NB,BQ,D)·scale @ Gather(k, idx (NB,BK))ᵀ + bias (NB,BQ,BK) → Softmax → @ Gather(v, idx)
 *
 * with U = B·Hkv. One session (symbolic dims) per variant, created once; blocks are run in
 * chunks that bound the score tensor's memory. Needs every query row to see a key (Sq ≤ Skv).
 */
import { AttnSpec, globalFlags, groupSize, isGlobalQuery, keysForGlobalRow, keysForRows, queryPos, visible } from './attention_spec';
import { Elem, encodeModel, NodeSpec } from './onnx_proto';

/** Query rows per block. */
export const ORT_BLOCK_Q = 64;
/** Largest score tensor of one run, in floats (64 MiB; smaller runs stay nearer the caches). */
const MAX_SCORES = 16 << 20;

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

let ortModule: Ort | null | undefined;
const sessions = new Map<string, Promise<Session>>();

/** The onnxruntime-node module, or null when it cannot load (the JS kernels are used then). */
export function ort(): Ort | null {
  if (ortModule === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ortModule = require('onnxruntime-node') as Ort;
    } catch {
      ortModule = null;
    }
  }
  return ortModule;
}

/** True when this spec can run here (ORT loaded, every query row has a visible key). */
export function ortSupports(s: AttnSpec): boolean {
  return ort() !== null && s.Sq <= s.Skv;
}

/** The band-attention graph; `lse` adds a ReduceLogSumExp output. */
export function bandAttentionModel(lse: boolean): Uint8Array {
  const sym = (...d: string[]) => d;
  const nodes: NodeSpec[] = [
    { op: 'Mul', inputs: ['q', 'scale'], outputs: ['qs'] },
    { op: 'Gather', inputs: ['k', 'idx'], outputs: ['kb'], attrs: { axis: 2 } },
    { op: 'Gather', inputs: ['v', 'idx'], outputs: ['vb'], attrs: { axis: 2 } },
    { op: 'Transpose', inputs: ['kb'], outputs: ['kt'], attrs: { perm: [0, 1, 2, 4, 3] } },
    { op: 'MatMul', inputs: ['qs', 'kt'], outputs: ['s'] },
    { op: 'Add', inputs: ['s', 'bias'], outputs: ['sb'] },
    { op: 'Softmax', inputs: ['sb'], outputs: ['p'], attrs: { axis: -1 } },
    { op: 'MatMul', inputs: ['p', 'vb'], outputs: ['o'] },
  ];
  const outputs = [{ name: 'o', elem: Elem.Float, dims: sym('U', 'G', 'NB', 'BQ', 'D') }];
  if (lse) {
    nodes.push({ op: 'ReduceLogSumExp', inputs: ['sb'], outputs: ['lse'], attrs: { axes: [-1], keepdims: 0 } });
    outputs.push({ name: 'lse', elem: Elem.Float, dims: sym('U', 'G', 'NB', 'BQ') });
  }
  return encodeModel('cattend_band', nodes, [
    { name: 'q', elem: Elem.Float, dims: sym('U', 'G', 'NB', 'BQ', 'D') },
    { name: 'k', elem: Elem.Float, dims: sym('U', 'one', 'S', 'D') },
    { name: 'v', elem: Elem.Float, dims: sym('U', 'one', 'S', 'D') },
    { name: 'idx', elem: Elem.Int64, dims: sym('NB', 'BK') },
    { name: 'bias', elem: Elem.Float, dims: sym('NB', 'BQ', 'BK') },
    { name: 'scale', elem: Elem.Float, dims: [1] },
  ], outputs);
}

/** The cached session of a variant. */
function session(lse: boolean): Promise<Session> {
  const key = lse ? 'lse' : 'o';
  let s = sessions.get(key);
  if (!s) {
    const o = ort();
    if (!o) throw new Error('onnxruntime-node is not available');
    s = o.InferenceSession.create(bandAttentionModel(lse), { graphOptimizationLevel: 'all', executionMode: 'sequential' });
    sessions.set(key, s);
  }
  return s;
}

/** A set of query rows (indices into Sq) that share one key list. */
interface Block {
  rows: Int32Array;
  keys: Int32Array;
}

/** Band blocks of ≤ BQ consecutive non-global rows, then the global query rows in blocks of their own. */
function blocks(s: AttnSpec): Block[] {
  const isG = globalFlags(s);
  const out: Block[] = [];
  const globalRows: number[] = [];
  for (let i0 = 0; i0 < s.Sq; i0 += ORT_BLOCK_Q) {
    const rows: number[] = [];
    for (let i = i0; i < Math.min(s.Sq, i0 + ORT_BLOCK_Q); i++) (isGlobalQuery(s, isG, queryPos(s, i)) ? globalRows : rows).push(i);
    if (rows.length) out.push({ rows: Int32Array.from(rows), keys: keysForRows(s, queryPos(s, rows[0]), queryPos(s, rows[rows.length - 1])) });
  }
  for (let t = 0; t < globalRows.length; t += ORT_BLOCK_Q) {
    const rows = Int32Array.from(globalRows.slice(t, t + ORT_BLOCK_Q));
    out.push({ rows, keys: keysForGlobalRow(s, queryPos(s, rows[rows.length - 1])) });
  }
  return out;
}

/** Runs of consecutive blocks whose padded score tensor stays under MAX_SCORES. */
function runs(s: AttnSpec, bl: Block[]): Block[][] {
  const perRow = s.B * s.Hq;
  const out: Block[][] = [];
  let cur: Block[] = [];
  let bk = 0;
  for (const b of bl) {
    const nbk = Math.max(bk, b.keys.length);
    if (cur.length && (perRow * (cur.length + 1) * ORT_BLOCK_Q * nbk > MAX_SCORES || nbk > 2 * Math.max(bk, 1))) {
      out.push(cur);
      cur = [];
    }
    cur.push(b);
    bk = cur.reduce((m, x) => Math.max(m, x.keys.length), 0);
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Copies rows of q into (U,G,NB,BQ,D) order for one run (or out of it, for o/lse with `back`). */
function pack(s: AttnSpec, run: Block[], full: Float32Array, packed: Float32Array, width: number, back: boolean): void {
  const G = groupSize(s);
  const U = s.B * s.Hkv;
  const nb = run.length;
  for (let u = 0; u < U; u++) for (let g = 0; g < G; g++) {
    const head = u * G + g; // = b·Hq + h, since Hq = Hkv·G
    for (let bi = 0; bi < nb; bi++) {
      const rows = run[bi].rows;
      const base = (((u * G + g) * nb + bi) * ORT_BLOCK_Q) * width;
      const contiguous = rows[rows.length - 1] - rows[0] === rows.length - 1;
      if (contiguous) {
        const src = (head * s.Sq + rows[0]) * width;
        if (back) full.set(packed.subarray(base, base + rows.length * width), src);
        else packed.set(full.subarray(src, src + rows.length * width), base);
        continue;
      }
      for (let t = 0; t < rows.length; t++) {
        const src = (head * s.Sq + rows[t]) * width;
        if (back) full.set(packed.subarray(base + t * width, base + (t + 1) * width), src);
        else packed.set(full.subarray(src, src + width), base + t * width);
      }
    }
  }
}

/** Index (NB,BK) and bias (NB,BQ,BK) of one run: pad keys and invisible pairs -Inf, pad rows 0. */
function indexAndBias(s: AttnSpec, isG: Uint8Array, run: Block[], bk: number): { idx: BigInt64Array; bias: Float32Array } {
  const idx = new BigInt64Array(run.length * bk);
  const bias = new Float32Array(run.length * ORT_BLOCK_Q * bk);
  run.forEach((b, bi) => {
    for (let c = 0; c < b.keys.length; c++) idx[bi * bk + c] = BigInt(b.keys[c]);
    for (let t = 0; t < b.rows.length; t++) {
      const p = queryPos(s, b.rows[t]);
      const o = (bi * ORT_BLOCK_Q + t) * bk;
      for (let c = 0; c < bk; c++) bias[o + c] = c < b.keys.length && visible(s, isG, p, b.keys[c]) ? 0 : -Infinity;
    }
  });
  return { idx, bias };
}

/** The forward pass on ONNX Runtime: o (like q) and, when asked, lse (B, Hq, Sq). */
export async function attendForwardOrt(s: AttnSpec, q: Float32Array, k: Float32Array, v: Float32Array, wantLse: boolean): Promise<{ o: Float32Array; lse: Float32Array | null }> {
  const o = ort();
  if (!o || !ortSupports(s)) throw new Error('attendForwardOrt: unsupported here');
  const sess = await session(wantLse);
  const G = groupSize(s);
  const U = s.B * s.Hkv;
  const isG = globalFlags(s);
  const out = new Float32Array(q.length);
  const lse = wantLse ? new Float32Array(s.B * s.Hq * s.Sq) : null;
  const kT = new o.Tensor('float32', k, [U, 1, s.Skv, s.D]);
  const vT = new o.Tensor('float32', v, [U, 1, s.Skv, s.D]);
  const scale = new o.Tensor('float32', Float32Array.of(s.scale), [1]);
  for (const run of runs(s, blocks(s))) {
    const nb = run.length;
    const bk = run.reduce((m, b) => Math.max(m, b.keys.length), 0);
    const qp = new Float32Array(U * G * nb * ORT_BLOCK_Q * s.D);
    pack(s, run, q, qp, s.D, false);
    const { idx, bias } = indexAndBias(s, isG, run, bk);
    const res = await sess.run({
      q: new o.Tensor('float32', qp, [U, G, nb, ORT_BLOCK_Q, s.D]), k: kT, v: vT, scale,
      idx: new o.Tensor('int64', idx, [nb, bk]), bias: new o.Tensor('float32', bias, [nb, ORT_BLOCK_Q, bk]),
    });
    pack(s, run, out, res.o.data as Float32Array, s.D, true);
    if (lse) pack(s, run, lse, res.lse.data as Float32Array, 1, true);
  }
  return { o: out, lse };
}
