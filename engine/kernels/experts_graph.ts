/**
 * ONNX graphs for a group of SwiGLU experts (Qwen3-MoE's `down(silu(gate(x)) * up(x))`),
 * weights baked in as initializers so ONNX Runtime prepacks them once. One graph serves a
 * contiguous range of experts: the rows of x arrive grouped by expert with their counts,
 *
 *   x (N, H), split (n) → Split → per expert j: FFN_j(x_j) → Concat → y (N, H)
 *
 * (an expert with 0 rows costs a few empty kernels). Weight layout is transformers 5.x's
 * fused one: gate_up (2I, H) = [gate; up], down (H, I).
 *
 * Formats: `fp32` (Gemm, transB); `int8`: per-output-channel symmetric int8 weights with
 * activations quantised per call (ORT's DynamicQuantizeMatMul, uint8 asymmetric per
 * tensor) — 4× less weight memory and traffic; `q8` / `q4`: block-wise (32 along the input
 * dim) symmetric 8- / 4-bit weights on ORT's MatMulNBits: finer scales, so more accurate than
 * `int8` (`q8`), or 8× less weight memory (`q4`). `q8` computes at accuracy level 4
 * (activations quantised to int8 per block of each row): ORT has no fast float path for 8-bit
 * weights. `q4` computes at level 1 (float activations): more accurate, and level 4's
 * prepacked copy (weights, scales again, block sums) holds about 1.4× the 4-bit bytes, which
 * decides how many layers of a big model fit; the price is speed (level 4's int8 kernels ran
 * this format's experts faster in the Qwen3 benchmark, see README).
 */
import { Elem, encodeModel, InitSpec, NodeSpec } from './onnx_proto';

/** Weight formats an expert group can be built in. */
export const EXPERT_FORMATS = ['fp32', 'int8', 'q8', 'q4'] as const;
/** Weights per quantisation block of the MatMulNBits formats. */
export const NBITS_BLOCK = 32;
export type ExpertFormat = (typeof EXPERT_FORMATS)[number];

/** One expert's fp32 weights, row-major: gateUp (2I·H), down (H·I). */
export interface ExpertWeights {
  gateUp: Float32Array;
  down: Float32Array;
}

/** Bytes of a typed array, without a copy. */
function bytesOf(a: Float32Array | Int8Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Symmetric per-row int8 quantisation of w (N rows of K), transposed for a (K, N) MatMul
 * operand: q[k·N + n] = round(w[n·K + k] / scale[n]), scale[n] = max_k |w[n, k]| / 127
 * (1 for an all-zero row).
 */
export function quantizeRows(w: Float32Array, N: number, K: number): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(N * K);
  const scale = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(w[o + k]));
    const s = m > 0 ? m / 127 : 1;
    scale[n] = s;
    const inv = 1 / Math.fround(s);
    for (let k = 0; k < K; k++) q[k * N + n] = Math.max(-127, Math.min(127, Math.round(w[o + k] * inv)));
  }
  return { q, scale };
}

/**
 * MatMulNBits weights of w (N rows of K): per row, blocks of NBITS_BLOCK along K (the last
 * one zero-padded), scale = max |w| / (2^(bits-1) - 1), stored q = round(w / scale) + 2^(bits-1)
 * (ORT's default zero point), two 4-bit values a byte low nibble first.
 */
export function quantizeBlocks(w: Float32Array, N: number, K: number, bits: 4 | 8): { q: Uint8Array; scale: Float32Array; blocks: number } {
  const bs = NBITS_BLOCK;
  const blocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const q = new Uint8Array(N * blocks * blob);
  const scale = new Float32Array(N * blocks);
  const zp = 1 << (bits - 1), lo = 1 - zp, hi = zp - 1;
  // One code per weight: round(clamp(v / scale)) + zp, rounding half up as Math.round does, but as
  // a truncation of a positive number (several times faster in V8, and this runs over every weight).
  const code = (v: number, inv: number): number => {
    const x = v * inv;
    return ((x < lo ? lo : x > hi ? hi : x) + zp + 0.5) | 0;
  };
  for (let n = 0; n < N; n++) for (let b = 0; b < blocks; b++) {
    const at = n * K + b * bs, len = Math.min(bs, K - b * bs);
    let m = 0;
    for (let j = 0; j < len; j++) {
      const a = Math.abs(w[at + j]);
      if (a > m) m = a;
    }
    const s = m > 0 ? m / hi : 1;
    scale[n * blocks + b] = s;
    const inv = 1 / Math.fround(s);
    const o = (n * blocks + b) * blob;
    if (bits === 8) {
      for (let j = 0; j < bs; j++) q[o + j] = j < len ? code(w[at + j], inv) : zp;
    } else {
      for (let j = 0; j < bs; j += 2) {
        const a = j < len ? code(w[at + j], inv) : zp, c = j + 1 < len ? code(w[at + j + 1], inv) : zp;
        q[o + (j >> 1)] = a | (c << 4); // two 4-bit values a byte, low nibble first
      }
    }
  }
  return { q, scale, blocks };
}

/** A linear map's weights W (N, K) in a format, ready to bake into a graph (no fp32 copy kept but fp32's own). */
export interface PackedLinear {
  N: number;
  K: number;
  /** fp32: W's bytes; int8: int8 Wᵀ (K, N); q8/q4: MatMulNBits blocks (N, blocks, bytes per block). */
  w: Uint8Array;
  /** Per-row (int8) or per-block (q8/q4) float32 scales; absent for fp32. */
  scale?: Uint8Array;
  blocks?: number;
}

/** One expert packed in its layer's format: what a layer holds between arrival and its group's build. */
export interface PackedExpert {
  gateUp: PackedLinear;
  down: PackedLinear;
}

/** W (N rows of K) in a format: quantised now for int8 / q8 / q4, a view of W for fp32. */
function packLinear(fmt: ExpertFormat, w: Float32Array, N: number, K: number): PackedLinear {
  if (fmt === 'fp32') return { N, K, w: bytesOf(w) };
  if (fmt === 'q8' || fmt === 'q4') {
    const { q, scale, blocks } = quantizeBlocks(w, N, K, fmt === 'q8' ? 8 : 4);
    return { N, K, w: q, scale: bytesOf(scale), blocks };
  }
  const { q, scale } = quantizeRows(w, N, K);
  return { N, K, w: bytesOf(q), scale: bytesOf(scale) };
}

/** An expert's SwiGLU weights in a format (see {@link packLinear}). */
export function packExpert(fmt: ExpertFormat, H: number, I: number, w: ExpertWeights): PackedExpert {
  return { gateUp: packLinear(fmt, w.gateUp, 2 * I, H), down: packLinear(fmt, w.down, H, I) };
}

/** Nodes and initializers of a linear map y = x·Wᵀ for packed W (N, K). */
function linear(fmt: ExpertFormat, x: string, y: string, p: PackedLinear, name: string): { nodes: NodeSpec[]; inits: InitSpec[] } {
  const { N, K } = p;
  if (fmt === 'fp32') {
    return {
      nodes: [{ op: 'Gemm', inputs: [x, name], outputs: [y], attrs: { transB: 1 } }],
      inits: [{ name, elem: Elem.Float, dims: [N, K], data: p.w }],
    };
  }
  const scales = { name: `${name}_s`, elem: Elem.Float, dims: [fmt === 'int8' ? N : N * (p.blocks as number)], data: p.scale as Uint8Array };
  if (fmt === 'q8' || fmt === 'q4') {
    const bits = fmt === 'q8' ? 8 : 4;
    return {
      nodes: [{ op: 'MatMulNBits', domain: 'com.microsoft', inputs: [x, `${name}_q`, `${name}_s`], outputs: [y], attrs: { K, N, bits, block_size: NBITS_BLOCK, accuracy_level: bits === 8 ? 4 : 1 } }],
      inits: [{ name: `${name}_q`, elem: Elem.Uint8, dims: [N, p.blocks as number, (NBITS_BLOCK * bits) / 8], data: p.w }, scales],
    };
  }
  return {
    nodes: [{ op: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: [x, `${name}_q`, `${name}_s`], outputs: [y] }],
    inits: [{ name: `${name}_q`, elem: Elem.Int8, dims: [K, N], data: p.w }, scales],
  };
}

/**
 * The model of one expert group (experts in `ws` order, H hidden, I intermediate, each
 * packed in `fmt` by {@link packExpert}). Inputs `x` (N, H) float grouped by expert and
 * `split` (n) int64 rows per expert; output `y`.
 */
export function expertGroupModel(fmt: ExpertFormat, H: number, I: number, ws: PackedExpert[]): Uint8Array {
  const n = ws.length;
  const nodes: NodeSpec[] = [];
  const inits: InitSpec[] = [{ name: 'half', elem: Elem.Int64, dims: [2], data: bytesOf(BigInt64Array.of(BigInt(I), BigInt(I))) }];
  const xs = n === 1 ? ['x'] : ws.map((_, j) => `x${j}`);
  if (n > 1) nodes.push({ op: 'Split', inputs: ['x', 'split'], outputs: xs, attrs: { axis: 0 } });
  const ys: string[] = [];
  ws.forEach((w, j) => {
    const up = linear(fmt, xs[j], `h${j}`, w.gateUp, `gu${j}`);
    const down = linear(fmt, `m${j}`, `y${j}`, w.down, `d${j}`);
    nodes.push(
      ...up.nodes,
      { op: 'Split', inputs: [`h${j}`, 'half'], outputs: [`g${j}`, `u${j}`], attrs: { axis: 1 } },
      { op: 'Sigmoid', inputs: [`g${j}`], outputs: [`s${j}`] },
      { op: 'Mul', inputs: [`g${j}`, `s${j}`], outputs: [`a${j}`] },
      { op: 'Mul', inputs: [`a${j}`, `u${j}`], outputs: [`m${j}`] },
      ...down.nodes,
    );
    inits.push(...up.inits, ...down.inits);
    ys.push(`y${j}`);
  });
  nodes.push(n > 1 ? { op: 'Concat', inputs: ys, outputs: ['y'], attrs: { axis: 0 } } : { op: 'Identity', inputs: ys, outputs: ['y'] });
  const inputs = [{ name: 'x', elem: Elem.Float, dims: ['N', H] }, { name: 'split', elem: Elem.Int64, dims: [n] }];
  return encodeModel(`experts_${fmt}`, nodes, inputs, [{ name: 'y', elem: Elem.Float, dims: ['N', H] }], 17, inits);
}

/** Bytes one expert's weights take in a format (initializers only). */
export function expertBytes(fmt: ExpertFormat, H: number, I: number): number {
  if (fmt === 'fp32') return 3 * H * I * 4;
  if (fmt === 'int8') return 3 * H * I + (2 * I + H) * 4; // int8 weights, a scale per output row of gate_up (2I) and down (H)
  const blocks = 2 * I * Math.ceil(H / NBITS_BLOCK) + H * Math.ceil(I / NBITS_BLOCK);
  return blocks * ((NBITS_BLOCK * (fmt === 'q8' ? 8 : 4)) / 8 + 4);
}
