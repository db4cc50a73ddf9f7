/**
 * Thread of the expert runtime: holds the layers' ONNX Runtime sessions (whose node
 * binding runs synchronously, so never on the sidecar's event loop) and answers the
 * host's tasks in order. Messages: {id, task} in, {id, answer} or {id, error: {code,
 * message}} out; result buffers are transferred.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ExpertRuntime, type Q4Kernel } from '../engine/kernels/experts_runtime';
import { VtpuError } from '../engine/errors';
import { runReplyBytes, type ExpertsAnswer, type ExpertsTask } from '../engine/ops/cexperts';
import { spanBytes, spanFloats } from './shm/span';
import { trimHeap } from './heap';
import { loadAddon } from './native';

const data = (workerData ?? {}) as { threads?: number; q4Kernel?: 'native' | 'onnxruntime' };
const runtime = new ExpertRuntime({
  threads: data.threads ?? 0,
  reclaim: trimHeap,
  q4: data.q4Kernel === 'onnxruntime' ? null : loadAddon<Q4Kernel>('vtpu_experts_q4'),
});

async function answer(t: ExpertsTask): Promise<ExpertsAnswer> {
  if (t.mode === 'load') return { mode: 'load', info: await runtime.load(t.layer, t.spec, t.first, t.n, t.gateUp, t.down, t.replace) };
  if (t.mode === 'run') {
    const t0 = performance.now();
    const x = t.x instanceof Float32Array ? t.x : spanFloats(t.x);
    const H = x.length / t.T;
    // With a reply block: y then counts go straight into it (nothing is posted back).
    const block = t.out && spanBytes(t.out);
    const r = await runtime.run(t.layer, x, t.T, t.routing, block ? new Float32Array(block.buffer, block.byteOffset, t.T * H) : undefined);
    const E = r.counts.length;
    if (block) {
      if (block.length !== runReplyBytes(t.T, H, E).total) throw new VtpuError('E_INTERNAL', `CEXPERTS: reply block of ${block.length} bytes for ${E} experts`);
      new Int32Array(block.buffer, block.byteOffset + runReplyBytes(t.T, H, E).countsAt, E).set(r.counts);
    }
    return { mode: 'run', y: block ? null : r.y, counts: block ? null : r.counts, T: t.T, H, E, ms: performance.now() - t0 };
  }
  if (t.mode === 'info') return { mode: 'info', layers: t.layer === undefined ? runtime.info() : [runtime.info(t.layer)].filter((x) => x !== null) };
  return { mode: 'drop', dropped: runtime.drop(t.layer) };
}

// One task at a time: loads and runs of a layer must not interleave.
let chain: Promise<void> = Promise.resolve();
parentPort?.on('message', (m: { id: number; task: ExpertsTask }) => {
  chain = chain.then(async () => {
    try {
      const a = await answer(m.task);
      const buffers = a.mode === 'run' && a.y && a.counts ? [a.y.buffer as ArrayBuffer, a.counts.buffer as ArrayBuffer] : [];
      parentPort?.postMessage({ id: m.id, answer: a }, buffers);
    } catch (e) {
      const code = e instanceof VtpuError ? e.code : 'E_INTERNAL';
      parentPort?.postMessage({ id: m.id, error: { code, message: (e as Error).message } });
    }
  });
});
