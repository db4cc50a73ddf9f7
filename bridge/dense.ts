/**
 * The expert host's dense layers (engine/ops/cexperts_dense.ts says what they are): each held in
 * the fp32 kernel's panels (float32 or bfloat16) in shared memory, packed on the event loop as its chunks arrive, run
 * here for socket requests and, once complete, registered with the doorbell (bridge/experts_bell.ts)
 * whose thread runs the same panels for a same-host client.
 */
import { VtpuError } from '../engine/errors';
import { PANEL_ROWS, panelFloats, type F32Kernel } from '../engine/kernels/experts_native';
import { ortThreads } from '../engine/kernels/attention_ort';
import type { DenseFormat, DenseInfo, DenseTask } from '../engine/ops/cexperts_dense';
import type { BellLayers } from './experts_bell';

interface Layer {
  rows: number;
  cols: number;
  format: DenseFormat;
  threads: number;
  packed: Float32Array | Uint16Array; // panelFloats(rows, cols) elements, on a SharedArrayBuffer (the bell's thread reads it)
  got: Uint8Array; // panels received
  received: number; // rows received
}

const OP = 'CEXPERTS';

export class DenseLayers {
  private readonly layers = new Map<number, Layer>();

  constructor(private readonly kernel: F32Kernel | null, private readonly bell: BellLayers | null, private readonly threads: number) {}

  has(layer: number): boolean {
    return this.layers.has(layer);
  }

  /** One chunk of rows; the first chunk of a new layer (or with replace) starts it afresh. */
  load(t: Extract<DenseTask, { mode: 'dense_load' }>): DenseInfo {
    const k = this.kernel;
    if (!k) throw new VtpuError('E_PARAM', `${OP}: dense layers need the sidecar's native fp32 kernel, which did not build here`);
    let l = this.layers.get(t.layer);
    if (l && !t.replace && (l.rows !== t.rows || l.cols !== t.cols)) {
      throw new VtpuError('E_SHAPE', `${OP}: dense layer ${t.layer} is ${l.rows} × ${l.cols}, this chunk says ${t.rows} × ${t.cols} (give replace to start it afresh)`);
    }
    if (l && !t.replace && l.format !== t.format) {
      throw new VtpuError('E_PARAM', `${OP}: dense layer ${t.layer} is held in ${l.format}, this chunk says ${t.format} (give replace to start it afresh)`);
    }
    if (!l || t.replace) {
      this.drop(t.layer);
      const panels = Math.ceil(t.rows / PANEL_ROWS);
      const bf16 = t.format === 'bf16';
      let buf: SharedArrayBuffer;
      try {
        buf = new SharedArrayBuffer(panelFloats(t.rows, t.cols) * (bf16 ? 2 : 4));
      } catch {
        throw new VtpuError('E_LIMIT', `${OP}: no memory for dense layer ${t.layer} (${t.rows} × ${t.cols} ${t.format})`);
      }
      const packed = bf16 ? new Uint16Array(buf) : new Float32Array(buf);
      l = { rows: t.rows, cols: t.cols, format: t.format, threads: ortThreads(t.threads || this.threads), packed, got: new Uint8Array(panels), received: 0 };
      this.layers.set(t.layer, l);
    }
    const p0 = t.first / PANEL_ROWS, p1 = Math.ceil((t.first + t.n) / PANEL_ROWS);
    if (l.got.subarray(p0, p1).some((g) => g)) throw new VtpuError('E_PARAM', `${OP}: rows ${t.first}..${t.first + t.n - 1} of dense layer ${t.layer} were uploaded already`);
    k.pack(t.n, t.cols, t.w, l.packed.subarray(t.first * t.cols, t.first * t.cols + panelFloats(t.n, t.cols)));
    l.got.fill(1, p0, p1);
    l.received += t.n;
    if (l.received === l.rows) this.bell?.addDense(t.layer, l.cols, l.rows, l.threads, l.packed, k);
    return this.infoOf(t.layer, l);
  }

  /** y (T, N) of a complete layer, on the event loop. */
  run(t: Extract<DenseTask, { mode: 'dense_run' }>): { y: Float32Array; ms: number } {
    const l = this.layers.get(t.layer);
    if (!l) throw new VtpuError('E_PARAM', `${OP}: no dense layer ${t.layer} was uploaded`);
    if (l.received !== l.rows) throw new VtpuError('E_PARAM', `${OP}: dense layer ${t.layer} has ${l.received} of its ${l.rows} rows; upload the rest or replace it`);
    if (t.x.length !== t.T * l.cols) throw new VtpuError('E_SHAPE', `${OP}: x has ${t.x.length / t.T} columns, dense layer ${t.layer} takes ${l.cols}`);
    const t0 = performance.now();
    const y = new Float32Array(t.T * l.rows);
    (this.kernel as F32Kernel).linear(l.rows, l.cols, l.threads, t.x, y, l.packed);
    return { y, ms: performance.now() - t0 };
  }

  info(layer?: number): DenseInfo[] {
    return [...this.layers].filter(([id]) => layer === undefined || id === layer).sort((a, b) => a[0] - b[0]).map(([id, l]) => this.infoOf(id, l));
  }

  /** Drops `layer` (all when omitted; a bell call in flight finishes first); returns how many. */
  drop(layer?: number): number {
    let n = 0;
    for (const id of [...this.layers.keys()]) {
      if (layer !== undefined && id !== layer) continue;
      this.bell?.removeDense(id);
      this.layers.delete(id);
      n++;
    }
    return n;
  }

  private infoOf(layer: number, l: Layer): DenseInfo {
    return { layer, rows: l.rows, cols: l.cols, format: l.format, received: l.received, complete: l.received === l.rows, bytes: l.packed.byteLength, threads: l.threads };
  }
}
