/**
 * CATTEND forward on ONNX Runtime (MLAS GEMMs on every core), the fast path. The query
 * rows are packed into blocks (≤ BQ rows, all G query heads of a kv head together); each
 * block carries its own key list (band + globals, gathered by index inside the graph)
 * and an additive 0/-Inf mask bias, so the work is Σ blocks BQ×BK, never Sq×Skv:
 *
 *   scale · q (U,G,NB,BQ,D) @ Gather(k, idx (NB,BK))ᵀ + bias (NB,BQ,BK) → Softmax → @ Gather(v, idx)
 *
 * with U = B·Hkv. One session (symbolic dims) per variant, created once; runs take a few
 * whole units (q sliced in place) or, when Sq is not a multiple of BQ or one unit is too
 * big, chunks of blocks (q rows packed), so the score tensor's memory stays bounded.
 * Needs every query row to see a key (Sq ≤ Skv).
 */
import { availableParallelism } from 'node:os';
import { AttnSpec, globalFlags, groupSize, isGlobalQuery, keysForGlobalRow, keysForRows, queryPos, visible } from './attention_spec';
import { Elem, encodeModel, NodeSpec } from './onnx_proto';

/** Query rows per block. */
export const ORT_BLOCK_Q = 64;
/**
 * Run sizing: the largest score tensor of one run, in floats (32 MiB: small runs keep the
 * gathered keys and scores cache-resident between nodes; tests lower it to reach the chunked paths).
 */
export const ortLimits = { maxScores: 8 << 20 };

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

/**
 * Intra-op threads for an ONNX Runtime session: `n` when given (> 0), else one per core the
 * process may use. Never ORT's own default: it counts physical cores, and on a VM whose
 * vCPUs look like hyper-threads of one core it picks a single thread (seen: 2 vCPUs → 1).
 */
export function ortThreads(n?: number | null): number {
  return n !== undefined && n !== null && n > 0 ? n : availableParallelism();
}

/** True when the band graph can take this spec: every query row has a visible key. */
export function ortShapeOk(s: AttnSpec): boolean {
  return s.Sq <= s.Skv;
}

/** True when this spec can run here (ORT loads, {@link ortShapeOk}). */
export function ortSupports(s: AttnSpec): boolean {
  return ort() !== null && ortShapeOk(s);
}

/**
 * The band-attention graph for one score scale; `lse` adds a ReduceLogSumExp output.
 * ONNX Runtime's FusedMatMul takes kᵀ and the scale inside the GEMM (no extra passes).
 */
export function bandAttentionModel(lse: boolean, scale: number): Uint8Array {
  const sym = (...d: string[]) => d;
  const nodes: NodeSpec[] = [
    { op: 'Gather', inputs: ['k', 'idx'], outputs: ['kb'], attrs: { axis: 2 } },
    { op: 'Gather', inputs: ['v', 'idx'], outputs: ['vb'], attrs: { axis: 2 } },
    { op: 'FusedMatMul', domain: 'com.microsoft', inputs: ['q', 'kb'], outputs: ['s'], attrs: { transB: 1, alpha: { f: scale } } },
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
  ], outputs);
}

/** Sessions kept (one per lse flag and scale; the oldest goes first). */
const MAX_SESSIONS = 8;

/** The cached session of a variant. */
function session(lse: boolean, scale: number): Promise<Session> {
  const key = `${lse}:${scale}`;
  let s = sessions.get(key);
  if (!s) {
    const o = ort();
    if (!o) throw new Error('onnxruntime-node is not available');
    s = o.InferenceSession.create(bandAttentionModel(lse, scale), { graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: ortThreads() });
    sessions.set(key, s);
    if (sessions.size > MAX_SESSIONS) {
      const [oldest, old] = sessions.entries().next().value as [string, Promise<Session>];
      sessions.delete(oldest);
      old.then((x) => x.release(), () => undefined);
    }
  }
  return s;
}

/** A set of query rows (indices into Sq) that share one key list. */
interface Block {
  rows: Int32Array;
  keys: Int32Array;
}

/**
 * Band blocks: BQ consecutive rows each (global query rows included: their band result is
 * overwritten later; they always see themselves, so no row is empty); then the global
 * query rows in blocks of their own, each seeing every key up to its last row.
 */
function blocks(s: AttnSpec): { band: Block[]; global: Block[] } {
  const isG = globalFlags(s);
  const band: Block[] = [];
  const global: Block[] = [];
  const globalRows: number[] = [];
  for (let i0 = 0; i0 < s.Sq; i0 += ORT_BLOCK_Q) {
    const i1 = Math.min(s.Sq, i0 + ORT_BLOCK_Q);
    const rows = new Int32Array(i1 - i0);
    for (let i = i0; i < i1; i++) {
      rows[i - i0] = i;
      if (isGlobalQuery(s, isG, queryPos(s, i))) globalRows.push(i);
    }
    band.push({ rows, keys: keysForRows(s, queryPos(s, i0), queryPos(s, i1 - 1)) });
  }
  for (let t = 0; t < globalRows.length; t += ORT_BLOCK_Q) {
    const rows = Int32Array.from(globalRows.slice(t, t + ORT_BLOCK_Q));
    global.push({ rows, keys: keysForGlobalRow(s, queryPos(s, rows[rows.length - 1])) });
  }
  return { band, global };
}

/** Runs of consecutive blocks (all units) whose padded score tensor stays under ortLimits.maxScores. */
function runs(s: AttnSpec, bl: Block[]): Block[][] {
  const perRow = s.B * s.Hq;
  const out: Block[][] = [];
  let cur: Block[] = [];
  let bk = 0;
  for (const b of bl) {
    const nbk = Math.max(bk, b.keys.length);
    if (cur.length && (perRow * (cur.length + 1) * ORT_BLOCK_Q * nbk > ortLimits.maxScores || nbk > 2 * Math.max(bk, 1))) {
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

/** The last few band index/bias pairs by mask shape: every layer of a model asks for the same one. */
const bandCache = new Map<string, { idx: BigInt64Array; bias: Float32Array }>();

/** {@link indexAndBias} of all band blocks, cached by everything it depends on. */
function bandIndexAndBias(s: AttnSpec, isG: Uint8Array, band: Block[], bk: number): { idx: BigInt64Array; bias: Float32Array } {
  const key = JSON.stringify([s.Sq, s.Skv, s.window, s.causal, s.globals]);
  let r = bandCache.get(key);
  if (!r) {
    r = indexAndBias(s, isG, band, bk);
    bandCache.set(key, r);
    if (bandCache.size > 4) bandCache.delete(bandCache.keys().next().value as string);
  }
  return r;
}

/**
 * The forward pass on ONNX Runtime: o (like q) and, when asked, lse (B, Hq, Sq), written
 * into `dest` when given (e.g. views of the reply frame) or into new arrays.
 */
export async function attendForwardOrt(s: AttnSpec, q: Float32Array, k: Float32Array, v: Float32Array, wantLse: boolean,
  dest?: { o: Float32Array; lse: Float32Array | null }): Promise<{ o: Float32Array; lse: Float32Array | null }> {
  const o = ort();
  if (!o || !ortSupports(s)) throw new Error('attendForwardOrt: unsupported here');
  const sess = await session(wantLse, s.scale);
  const G = groupSize(s);
  const U = s.B * s.Hkv;
  const isG = globalFlags(s);
  let out: Float32Array = new Float32Array(0);
  let lse: Float32Array | null = null;
  /** One session run; `into` (optional) receives o and lse in place (ORT writes them there, no copy). */
  const run = async (qs: Float32Array, u: number, nu: number, bl: Block[], bk: number, ib: { idx: BigInt64Array; bias: Float32Array }, into?: { o: Float32Array; lse: Float32Array | null }) => {
    const kv = (x: Float32Array) => new o.Tensor('float32', x.subarray(u * s.Skv * s.D, (u + nu) * s.Skv * s.D), [nu, 1, s.Skv, s.D]);
    const feeds = {
      q: new o.Tensor('float32', qs, [nu, G, bl.length, ORT_BLOCK_Q, s.D]), k: kv(k), v: kv(v),
      idx: new o.Tensor('int64', ib.idx, [bl.length, bk]), bias: new o.Tensor('float32', ib.bias, [bl.length, ORT_BLOCK_Q, bk]),
    };
    if (into) {
      const fetches: Record<string, import('onnxruntime-node').Tensor> = { o: new o.Tensor('float32', into.o, [nu, G, bl.length, ORT_BLOCK_Q, s.D]) };
      if (into.lse) fetches.lse = new o.Tensor('float32', into.lse, [nu, G, bl.length, ORT_BLOCK_Q]);
      await sess.run(feeds, fetches);
      return into;
    }
    const res = await sess.run(feeds);
    return { o: res.o.data as Float32Array, lse: wantLse ? (res.lse.data as Float32Array) : null };
  };
  const { band, global } = blocks(s);
  const bandKeys = band.reduce((m, b) => Math.max(m, b.keys.length), 0);
  const unitsPerRun = Math.floor(ortLimits.maxScores / (G * band.length * ORT_BLOCK_Q * bandKeys));
  if (s.Sq % ORT_BLOCK_Q === 0 && unitsPerRun >= 1) {
    // Whole units per run: q is already (U, G, NB, BQ, D), so a run takes a slice of it
    // and writes its o straight into a slice of the output — no packing, no copies.
    // Runs of equal size: one shape, so ORT's arena reuses its buffers from run to run.
    const ib = bandIndexAndBias(s, isG, band, bandKeys);
    const per = Math.ceil(U / Math.ceil(U / unitsPerRun));
    allocate();
    for (let u = 0; u < U; u += per) {
      const nu = Math.min(per, U - u);
      const rows = (x: number) => x * G * s.Sq;
      const l = lse as Float32Array | null; // set by allocate()
      await run(q.subarray(rows(u) * s.D, rows(u + nu) * s.D), u, nu, band, bandKeys, ib,
        { o: out.subarray(rows(u) * s.D, rows(u + nu) * s.D), lse: l && l.subarray(rows(u), rows(u + nu)) });
    }
  } else {
    allocate();
    for (const bl of runs(s, band)) await runPacked(bl);
  }
  for (const bl of runs(s, global)) await runPacked(bl);
  return { o: out, lse };

  function allocate(): void {
    const nLse = s.B * s.Hq * s.Sq;
    if (dest && dest.o.length !== q.length) throw new Error(`attendForwardOrt: dest.o has ${dest.o.length} elements, q has ${q.length}`);
    if (dest && wantLse && dest.lse?.length !== nLse) throw new Error(`attendForwardOrt: dest.lse must have ${nLse} elements`);
    out = dest ? dest.o : new Float32Array(q.length);
    lse = wantLse ? (dest?.lse ?? new Float32Array(nLse)) : null;
  }

  /** Blocks of every unit, q rows copied into (U, G, nb, BQ, D) and results copied back. */
  async function runPacked(bl: Block[]): Promise<void> {
    const bk = bl.reduce((m, b) => Math.max(m, b.keys.length), 0);
    const qp = new Float32Array(U * G * bl.length * ORT_BLOCK_Q * s.D);
    pack(s, bl, q, qp, s.D, false);
    const r = await run(qp, 0, U, bl, bk, indexAndBias(s, isG, bl, bk));
    pack(s, bl, out, r.o, s.D, true);
    if (lse && r.lse) pack(s, bl, lse, r.lse, 1, true);
  }
}
