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

const runtime = new ExpertRuntime({ threads: (workerData as { threads?: number } | null)?.threads ?? 0 });

async function answer(t: ExpertsTask): Promise<ExpertsAnswer> {
  if (t.mode === 'load') return { mode: 'load', info: await runtime.load(t.layer, t.spec, t.first, t.n, t.gateUp, t.down, t.replace) };
  if (t.mode === 'run') {
    const t0 = performance.now();
    const r = await runtime.run(t.layer, t.x, t.T, t.routing);
    return { mode: 'run', y: r.y, counts: r.counts, T: t.T, H: t.x.length / t.T, ms: performance.now() - t0 };
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
      const buffers = a.mode === 'run' ? [a.y.buffer as ArrayBuffer, a.counts.buffer as ArrayBuffer] : [];
      parentPort?.postMessage({ id: m.id, answer: a }, buffers);
    } catch (e) {
      const code = e instanceof VtpuError ? e.code : 'E_INTERNAL';
      parentPort?.postMessage({ id: m.id, error: { code, message: (e as Error).message } });
    }
  });
});
