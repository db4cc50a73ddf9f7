/**
 * Thread of the expert runtime: holds the layers' ONNX Runtime sessions (whose node
 * binding runs synchronously, so never on the sidecar's event loop) and answers the
 * host's tasks in order. Messages: {id, task} in, {id, answer} or {id, error: {code,
 * message}} out; result buffers are transferred.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ExpertRuntime } from '../engine/kernels/experts_runtime';
import { VtpuError } from '../engine/errors';
import type { ExpertsAnswer, ExpertsTask } from '../engine/ops/cexperts';
import { nativeKernels, runAnswer, type ExpertKernel } from './experts_run';
import { spanBytes, spanFloats } from './shm/span';
import { trimHeap } from './heap';

const data = (workerData ?? {}) as { threads?: number; kernel?: ExpertKernel };
const runtime = new ExpertRuntime({
  threads: data.threads ?? 0,
  reclaim: trimHeap,
  ...nativeKernels(data.kernel),
});

async function answer(t: ExpertsTask): Promise<ExpertsAnswer> {
  if (t.mode === 'load') {
    const info = await runtime.load(t.layer, t.spec, t.first, t.n, t.gateUp, t.down, t.replace);
    // A complete native layer goes to the host too (shared memory, no copy): it runs decode calls inline.
    return { mode: 'load', info, shared: runtime.shared(t.layer) ?? undefined };
  }
  if (t.mode === 'run') {
    const x = t.x instanceof Float32Array ? t.x : spanFloats(t.x);
    return runAnswer(runtime, t.layer, t.T, t.routing, x, t.out ? spanBytes(t.out) : null);
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
