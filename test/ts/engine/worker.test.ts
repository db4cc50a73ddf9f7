import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';
import { Worker } from 'worker_threads';
import { Store } from '../../../engine/store/store';
import { Kind, ScrollBatch } from '../../../engine/types';
import type { LookupResult } from '../../../engine/store/reader';

const ENGINE = path.join(__dirname, '../../../engine');

/** Transpiles the reader and what it imports to plain JS a worker thread can require. */
function compileReader(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vtpu-reader-'));
  for (const rel of ['types.ts', 'store/reader.ts', 'store/hash.ts', 'budget.ts', 'errors.ts']) {
    const src = fs.readFileSync(path.join(ENGINE, rel), 'utf8');
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel.replace(/\.ts$/, '.js')), js);
  }
  return path.join(dir, 'store/reader.js');
}

function tensorBatch(n: number): ScrollBatch {
  const coords = new Uint32Array(n * 9);
  const shapeOffsets = new Int32Array(n + 1);
  const valueOffsets = new Int32Array(n + 1);
  const shapes: number[] = [];
  for (let i = 0; i < n; i++) {
    coords.set([2, i % 5, 0, 0, 0, 0, 0, i >>> 8, i & 255], i * 9);
    const rows = 1 + (i % 3);
    shapes.push(rows, 2);
    shapeOffsets[i + 1] = shapes.length;
    valueOffsets[i + 1] = valueOffsets[i] + rows * 2 * 4;
  }
  const values = new Uint8Array(valueOffsets[n]);
  for (let i = 0; i < values.length; i++) values[i] = (i * 31) & 255;
  return {
    n, coords, kind: new Uint8Array(n).fill(Kind.Tensor), dtype: new Uint8Array(n).fill(1),
    shapeOffsets, shapeValues: Uint32Array.from(shapes), valueOffsets, values,
  };
}

test('a worker thread reading a posted view gets the same getBatch result', async () => {
  const store = new Store();
  store.putBatch(tensorBatch(3000));
  const q = new Uint32Array(4000 * 9);
  for (let i = 0; i < 4000; i++) q.set([2, (i * 7) % 5, 0, 0, 0, 0, 0, (i * 7) >>> 8, (i * 7) & 255], i * 9);
  const local = store.getBatch(q);
  expect(local.found).toBeGreaterThan(100);
  expect(local.found).toBeLessThan(4000);

  const reader = compileReader();
  const code = `
    const { parentPort, workerData } = require('worker_threads');
    const { getBatchFromView } = require(${JSON.stringify(reader)});
    parentPort.on('message', (m) => parentPort.postMessage(getBatchFromView(m.view, m.coords)));`;
  const worker = new Worker(code, { eval: true });
  try {
    const view = store.view();
    expect(view.heap.buffer).toBeInstanceOf(SharedArrayBuffer);
    const remote = await new Promise<LookupResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.postMessage({ view, coords: q });
    });
    expect(remote.found).toBe(local.found);
    for (const k of ['kind', 'dtype', 'shapeOffsets', 'shapeValues', 'valueOffsets', 'values'] as const) {
      expect(Array.from(remote.batch[k] as ArrayLike<number>)).toEqual(Array.from(local.batch[k] as ArrayLike<number>));
    }
  } finally {
    await worker.terminate();
  }
});
