/**
 * ONNX graphs for a group of SwiGLU experts (Qwen3-MoE's `down(silu(gate(x)) * up(x))`),
 * weights baked in as initializers so ONNX Runtime prepacks them once. One graph serves a
 * contiguous range of experts: the rows of x arrive grouped by expert with their counts,
 *
 *   x (N, H), split (n) → Split → per expert j: h_j = gate_up_j(x_j) → Concat → h (N, 2I)
 *     → m = silu(gate) · up, once for all rows → Split → per expert j: down_j(m_j) → Concat → y (N, H)
 *
 * An expert with no rows still costs its two empty MatMul kernels; the activation runs once
 * for all rows, not per expert, because a decode step routes a token to 8 of 128 experts and
 * 4 empty kernels each for the other 120 cost a good part of the call (a 30B-A3B layer's
 * 8-row call, five paired runs: 2.1–2.7 ms with the activation per expert, 1.5–2.3 ms once). Weight layout is
 * transformers 5.x's fused one: gate_up (2I, H) = [gate; up], down (H, I).
 *
 * Formats: `fp32` (Gemm, transB); `int8`: per-output-channel symmetric 7-bit weights in int8 with
 * activations quantised per call (ORT's DynamicQuantizeMatMul, uint8 asymmetric per
 * tensor) — 4× less weight memory and traffic; `q8` / `q4`: block-wise symmetric 8- / 4-bit
 * weights on ORT's MatMulNBits (see {@link NBITS}): finer scales, so more accurate than
 * `int8` (`q8`), or 7–8× less weight memory (`q4`). Both compute at accuracy level 4
 * (activations quantised to int8 per block of each row): for 4-bit weights ORT's int8 kernels
 * ran a decode-sized call 1.3× (an AVX-512 VM) to 2–3× (an AVX2 one) faster than its float
 * path (level 1), and for 8-bit ones its float path has no fast kernel at all. `q4` uses blocks of 128: at level 4 that was faster than blocks of 32
 * and its prepacked copy (weights, scales again, block sums) smaller, which decides how many
 * layers of a big model fit (measurements in README's full-size section). The sidecar runs
 * `q4` and `q8` layers on its own kernels over these same packed blocks (native/experts_q4.c,
 * native/experts_q8.c, with the same level-4 arithmetic), and `fp32` ones on its own float kernel
 * (native/experts_f32.c, the weights in its panels); a q4, q8 or fp32 graph is built only where
 * that addon is missing, or when the host is asked for ONNX Runtime to compare the two
 * (ExpertHost's `kernel`).
 */
import { Elem, encodeModel, InitSpec, NodeSpec } from './onnx_proto';

/** Weight formats an expert group can be built in. */
export const EXPERT_FORMATS = ['fp32', 'int8', 'q8', 'q4'] as const;
export type ExpertFormat = (typeof EXPERT_FORMATS)[number];
/** The MatMulNBits formats: bits a weight, weights per quantisation block (along the input), ORT accuracy level. */
export const NBITS = { q8: { bits: 8, block: 32, level: 4 }, q4: { bits: 4, block: 128, level: 4 } } as const;
type NBitsFormat = keyof typeof NBITS;

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
 * Largest int8 weight code: 7 bits, not 8. On x86 without VNNI, ORT's u8s8 kernels add pairs
 * of uint8 × int8 products in int16 (VPMADDUBSW), exact only while 2 · 255 · |q| ≤ 32767;
 * full-range codes saturated there and silently corrupted the output (an AVX2-only VM).
 */
export const INT8_MAX = 63;

/**
 * Symmetric per-row quantisation of w (N rows of K) to int8 codes in ±INT8_MAX, transposed
 * for a (K, N) MatMul operand: q[k·N + n] = round(w[n·K + k] / scale[n]), scale[n] =
 * max_k |w[n, k]| / INT8_MAX (1 for an all-zero row).
 */
export function quantizeRows(w: Float32Array, N: number, K: number): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(N * K);
  const scale = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(w[o + k]));
    const s = m > 0 ? m / INT8_MAX : 1;
    scale[n] = s;
    const inv = 1 / Math.fround(s);
    for (let k = 0; k < K; k++) q[k * N + n] = Math.max(-INT8_MAX, Math.min(INT8_MAX, Math.round(w[o + k] * inv)));
  }
  return { q, scale };
}

/**
 * MatMulNBits weights of w (N rows of K): per row, blocks of `bs` along K (the last one
 * zero-padded), scale = max |w| / (2^(bits-1) - 1), stored q = round(w / scale) + 2^(bits-1)
 * (ORT's default zero point), two 4-bit values a byte low nibble first.
 */
export function quantizeBlocks(w: Float32Array, N: number, K: number, bits: 4 | 8, bs: number): { q: Uint8Array; scale: Float32Array; blocks: number } {
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
  /** fp32: W's bytes (on the native kernel: its panels, experts_runtime.ts `panelled`); int8: int8 Wᵀ (K, N); q8/q4: MatMulNBits blocks (N, blocks, bytes per block). */
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
    const { q, scale, blocks } = quantizeBlocks(w, N, K, NBITS[fmt].bits, NBITS[fmt].block);
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
    const { bits, block, level } = NBITS[fmt];
    return {
      nodes: [{ op: 'MatMulNBits', domain: 'com.microsoft', inputs: [x, `${name}_q`, `${name}_s`], outputs: [y], attrs: { K, N, bits, block_size: block, accuracy_level: level } }],
      inits: [{ name: `${name}_q`, elem: Elem.Uint8, dims: [N, p.blocks as number, (block * bits) / 8], data: p.w }, scales],
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
  const nodes: NodeSpec[] = [];
  const inits: InitSpec[] = [{ name: 'half', elem: Elem.Int64, dims: [2], data: bytesOf(BigInt64Array.of(BigInt(I), BigInt(I))) }];
  const many = ws.length > 1;
  const byExpert = (all: string, parts: string[]): NodeSpec =>
    many ? { op: 'Split', inputs: [all, 'split'], outputs: parts, attrs: { axis: 0 } } : { op: 'Identity', inputs: [all], outputs: parts };
  const together = (parts: string[], all: string): NodeSpec =>
    many ? { op: 'Concat', inputs: parts, outputs: [all], attrs: { axis: 0 } } : { op: 'Identity', inputs: parts, outputs: [all] };
  const each = (prefix: string) => ws.map((_, j) => `${prefix}${j}`);
  const [xs, hs, ms, ys] = [each('x'), each('h'), each('m'), each('y')];
  const linears = (ins: string[], outs: string[], which: 'gateUp' | 'down', name: string) => ws.forEach((w, j) => {
    const l = linear(fmt, ins[j], outs[j], w[which], `${name}${j}`);
    nodes.push(...l.nodes);
    inits.push(...l.inits);
  });
  nodes.push(byExpert('x', xs));
  linears(xs, hs, 'gateUp', 'gu');
  nodes.push(
    together(hs, 'h'),
    { op: 'Split', inputs: ['h', 'half'], outputs: ['g', 'u'], attrs: { axis: 1 } },
    { op: 'Sigmoid', inputs: ['g'], outputs: ['s'] },
    { op: 'Mul', inputs: ['g', 's'], outputs: ['a'] },
    { op: 'Mul', inputs: ['a', 'u'], outputs: ['m'] },
    byExpert('m', ms),
  );
  linears(ms, ys, 'down', 'd');
  nodes.push(together(ys, 'y'));
  const inputs = [{ name: 'x', elem: Elem.Float, dims: ['N', H] }, { name: 'split', elem: Elem.Int64, dims: [ws.length] }];
  return encodeModel(`experts_${fmt}`, nodes, inputs, [{ name: 'y', elem: Elem.Float, dims: ['N', H] }], 17, inits);
}

/** Bytes one expert's weights take in a format (initializers only). */
export function expertBytes(fmt: ExpertFormat, H: number, I: number): number {
  if (fmt === 'fp32') return 3 * H * I * 4;
  if (fmt === 'int8') return 3 * H * I + (2 * I + H) * 4; // int8 weights, a scale per output row of gate_up (2I) and down (H)
  const { bits, block } = NBITS[fmt as NBitsFormat];
  const blocks = 2 * I * Math.ceil(H / block) + H * Math.ceil(I / block);
  return blocks * ((block * bits) / 8 + 4);
}
