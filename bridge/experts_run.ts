/**
 * What the expert thread and the host's inline path (bridge/experts.ts) share: the native
 * kernels they load, and a CEXPERTS run as an answer (they differ only in where x and the reply block
 * come from).
 */
import { VtpuError } from '../engine/errors';
import type { ExpertRuntime, RoutingInput } from '../engine/kernels/experts_runtime';
import { runReplyBytes, type ExpertsAnswer } from '../engine/ops/cexperts';
import type { BlockKernel, F32Kernel, NativeKernels } from '../engine/kernels/experts_native';
import { loadAddon } from './native';

/** What runs the formats that have a native kernel (q4, q8, fp32): those kernels, or ONNX Runtime for comparison. */
export type ExpertKernel = 'native' | 'onnxruntime';

/** The native kernels unless ONNX Runtime was asked for (each null too when its addon did not build). */
export function nativeKernels(choice: ExpertKernel = 'native'): NativeKernels {
  if (choice === 'onnxruntime') return { q4: null, q8: null, f32: null };
  return { q4: loadAddon<BlockKernel>('vtpu_experts_q4'), q8: loadAddon<BlockKernel>('vtpu_experts_q8'), f32: loadAddon<F32Kernel>('vtpu_experts_f32') };
}

/**
 * Runs `layer` on x (T rows). With a reply `block`, y then counts go straight into it (the
 * raw layout) and the answer carries neither; without one they come back as arrays.
 */
export async function runAnswer(runtime: ExpertRuntime, layer: number, T: number, routing: RoutingInput, x: Float32Array, block: Uint8Array | null): Promise<ExpertsAnswer> {
  const t0 = performance.now();
  const H = x.length / T;
  const r = await runtime.run(layer, x, T, routing, block ? new Float32Array(block.buffer, block.byteOffset, T * H) : undefined);
  const E = r.counts.length;
  if (block) {
    const { total, countsAt } = runReplyBytes(T, H, E);
    if (block.length !== total) throw new VtpuError('E_INTERNAL', `CEXPERTS: reply block of ${block.length} bytes for ${E} experts`);
    new Int32Array(block.buffer, block.byteOffset + countsAt, E).set(r.counts);
  }
  return { mode: 'run', y: block ? null : r.y, counts: block ? null : r.counts, T, H, E, ms: performance.now() - t0 };
}
