/**
 * What the expert runtime sees of the native experts kernels (native/experts_q4.c,
 * native/experts_q8.c, native/experts_f32.c): their call signatures, the fp32 kernel's panel
 * layout, and the packed experts put in shared memory so the host's event loop can run decode
 * calls over them too.
 */
import type { ExpertFormat, PackedExpert } from './experts_graph';

/**
 * A native block-quantised SwiGLU (q4: native/experts_q4.c, q8: native/experts_q8.c; both
 * native/experts_blocks.h): every active expert of a layer in one call, rows of x grouped by
 * expert (`counts`), each expert's packed gate_up / down codes and scales (experts_graph.ts
 * `quantizeBlocks`). Returns the threads it used.
 */
export interface BlockKernel {
  /** The kernel as C calls it (native/experts_entry.h), for the doorbell. */
  entry: object;
  swiglu(H: number, I: number, threads: number, x: Float32Array, y: Float32Array, counts: Int32Array,
    guQ: Uint8Array[], guS: Float32Array[], dnQ: Uint8Array[], dnS: Float32Array[]): number;
}

/**
 * The native fp32 SwiGLU (native/experts_f32.c): weights in panels of 16 output rows (`pack`),
 * every active expert of a layer in one call as for {@link BlockKernel}. Returns the threads it used.
 */
export interface F32Kernel {
  entry: object;
  /** W's rows into panels: float32 ones, or bfloat16 ones (a Uint16Array; each weight rounded to nearest). */
  pack(N: number, K: number, w: Float32Array, out: Float32Array | Uint16Array): void;
  /** y (T, N) = x (T, K) · Wᵀ over W's panels (a dense layer, bridge/dense.ts; float32 or bfloat16); T = x.length / K. */
  linear(N: number, K: number, threads: number, x: Float32Array, y: Float32Array, packed: Float32Array | Uint16Array): number;
  swiglu(H: number, I: number, threads: number, x: Float32Array, y: Float32Array, counts: Int32Array, gu: Float32Array[], dn: Float32Array[]): number;
}

/** The native kernels a host loaded, by the format each runs; null where the addon did not build or ONNX Runtime was asked for. */
export interface NativeKernels {
  /** Without it `q4` layers run on ONNX Runtime's MatMulNBits. */
  q4: BlockKernel | null;
  /** Without it `q8` layers run on ONNX Runtime's MatMulNBits. */
  q8: BlockKernel | null;
  /** Without it `fp32` layers run on ONNX Runtime's Gemm. */
  f32: F32Kernel | null;
}

/** The kernel that runs `format` layers among `k`, or null (`int8` has none: ONNX Runtime runs it). */
export function kernelFor(k: Partial<NativeKernels>, format: ExpertFormat): BlockKernel | F32Kernel | null {
  return (format === 'fp32' ? k.f32 : format === 'int8' ? null : k[format]) ?? null;
}

/** Output rows of an {@link F32Kernel} panel (native/experts_f32.c's NR). */
export const PANEL_ROWS = 16;

/** Elements of W (N rows of K) in {@link F32Kernel} panels: ceil(N / 16) panels of K·16. */
export function panelFloats(N: number, K: number): number {
  return Math.ceil(N / PANEL_ROWS) * K * PANEL_ROWS;
}

/** The packed arrays moved into shared memory, so another thread can use them without a copy. */
export function toShared(p: PackedExpert): PackedExpert {
  const share = (b?: Uint8Array): Uint8Array | undefined => {
    if (!b) return b;
    const s = new Uint8Array(new SharedArrayBuffer(b.byteLength));
    s.set(b);
    return s;
  };
  const lin = (l: PackedExpert['gateUp']) => ({ ...l, w: share(l.w) as Uint8Array, scale: share(l.scale) });
  return { gateUp: lin(p.gateUp), down: lin(p.down) };
}

/** An fp32 expert in the native kernel's panels, in shared memory. */
export function panelled(k: F32Kernel, H: number, I: number, w: { gateUp: Float32Array; down: Float32Array }): PackedExpert {
  const lin = (src: Float32Array, N: number, K: number) => {
    const out = new Float32Array(new SharedArrayBuffer(panelFloats(N, K) * 4));
    k.pack(N, K, src, out);
    return { N, K, w: new Uint8Array(out.buffer) };
  };
  return { gateUp: lin(w.gateUp, 2 * I, H), down: lin(w.down, H, I) };
}

/** The per-expert lists a native kernel's swiglu takes after counts, for `experts` of a `format` layer. */
export function kernelLists(format: ExpertFormat, experts: PackedExpert[]): ArrayBufferView[][] {
  const f32 = (b: Uint8Array): Float32Array => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  if (format === 'fp32') return [experts.map((p) => f32(p.gateUp.w)), experts.map((p) => f32(p.down.w))];
  return [experts.map((p) => p.gateUp.w), experts.map((p) => f32(p.gateUp.scale as Uint8Array)),
    experts.map((p) => p.down.w), experts.map((p) => f32(p.down.scale as Uint8Array))];
}
