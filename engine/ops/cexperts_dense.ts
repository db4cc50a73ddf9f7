/**
 * CEXPERTS' dense layers: a plain matrix W (N outputs of K inputs) held beside a model's experts,
 * y = x · Wᵀ, for the dense product that dominates a decode step of a big-vocabulary model (the
 * lm_head of Qwen3-30B-A3B is 151,936 × 2048, a 1.2 GB float32 read per token; torch's one-row
 * product reads it on one core, the sidecar's fp32 kernel on all of them). Modes:
 *
 * - `dense_load`: params `layer`, `rows` N, `cols` K, `first` (default 0; a multiple of 16, the
 *   kernel's panel), `format` (`fp32`, the default, or `bf16`: W held in bfloat16, each weight
 *   rounded to nearest, half the bytes a product reads; x and y stay float32 and the sums too),
 *   `replace` (bool: start the layer afresh), `threads` (default 0: one per core); tensor `w`
 *   (n, K) float, rows first..first+n-1 (n a multiple of 16 unless it ends the matrix). Result:
 *   the layer's info.
 * - `dense_run`: params `layer`; tensor `x` (T, K) float → `y` (T, N) float32.
 *
 * A layer id holds experts or a dense matrix, not both; `info` lists dense layers under `dense`,
 * `drop` drops either kind. Run by the sidecar's native fp32 kernel (E_PARAM where that addon
 * did not build). This file validates requests; bridge/dense.ts holds the layers.
 */
import { VtpuError } from '../errors';
import type { OpInput, OpOutput } from '../types';
import { boolParam, intParam } from './params';
import { expectShape, floatInput, namedTensors, tensorOutput } from '../tensors';
import { PANEL_ROWS } from '../kernels/experts_native';

// Its own name and layer check: cexperts.ts imports this file's types, so no import back.
const OP = 'CEXPERTS';
/** How a dense layer holds W (bytes per weight: 4, 2). */
export const DENSE_FORMATS = ['fp32', 'bf16'] as const;
export type DenseFormat = (typeof DENSE_FORMATS)[number];

/** A validated dense request; `w` and `x` are views of the request (used before it returns). */
export type DenseTask =
  | { mode: 'dense_load'; layer: number; rows: number; cols: number; first: number; n: number; w: Float32Array; format: DenseFormat; replace: boolean; threads: number }
  | { mode: 'dense_run'; layer: number; T: number; x: Float32Array };

/** What `info` and `dense_load` tell of a dense layer. */
export interface DenseInfo {
  layer: number;
  rows: number;
  cols: number;
  format: DenseFormat;
  received: number;
  complete: boolean;
  bytes: number;
  threads: number;
}

/** True for the modes this file parses. */
export function isDenseMode(mode: unknown): mode is DenseTask['mode'] {
  return mode === 'dense_load' || mode === 'dense_run';
}

/** The validated task of a dense request (E_PARAM / E_SHAPE / E_DTYPE on bad input). */
export function denseTask(input: OpInput): DenseTask {
  const p = input.params;
  if (p.layer === undefined) throw new VtpuError('E_PARAM', `${OP}: layer is required`);
  const layer = intParam(OP, p, 'layer', 0, 0, 2 ** 31 - 1);
  const named = namedTensors(OP, input);
  if (p.mode === 'dense_run') {
    const x = floatInput(OP, named, 'x');
    expectShape(OP, 'x', x, [null, null]);
    if (x.shape[0] < 1) throw new VtpuError('E_SHAPE', `${OP}: x needs at least one row`);
    return { mode: 'dense_run', layer, T: x.shape[0], x: x.data };
  }
  for (const k of ['rows', 'cols']) if (p[k] === undefined) throw new VtpuError('E_PARAM', `${OP}: dense_load needs ${k}`);
  const rows = intParam(OP, p, 'rows', 1, 1, 1 << 24);
  const cols = intParam(OP, p, 'cols', 1, 1, 1 << 20);
  const first = intParam(OP, p, 'first', 0, 0, rows - 1);
  if (first % PANEL_ROWS) throw new VtpuError('E_PARAM', `${OP}: first must be a multiple of ${PANEL_ROWS}, got ${first}`);
  const w = floatInput(OP, named, 'w');
  expectShape(OP, 'w', w, [null, cols]);
  const n = w.shape[0];
  if (n < 1 || first + n > rows) throw new VtpuError('E_SHAPE', `${OP}: rows ${first}..${first + n - 1} of w are outside the layer's ${rows}`);
  if (n % PANEL_ROWS && first + n !== rows) throw new VtpuError('E_SHAPE', `${OP}: a chunk of w has a multiple of ${PANEL_ROWS} rows unless it ends the matrix, got ${n}`);
  const threads = intParam(OP, p, 'threads', 0, 0, 64);
  const format = p.format ?? 'fp32';
  if (!(DENSE_FORMATS as readonly unknown[]).includes(format)) throw new VtpuError('E_PARAM', `${OP}: a dense layer's format is one of ${DENSE_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  return { mode: 'dense_load', layer, rows, cols, first, n, w: w.data, format: format as DenseFormat, replace: boolParam(OP, p, 'replace', false), threads };
}

/** The reply of a `dense_load`: the layer's info. */
export function denseLoadOutput(info: DenseInfo): OpOutput {
  return { result: { mode: 'dense_load', info } };
}

/** The reply of a `dense_run`: y (T, N) and the kernel's time. */
export function denseRunOutput(task: Extract<DenseTask, { mode: 'dense_run' }>, a: { y: Float32Array; ms: number }): OpOutput {
  return tensorOutput({ mode: task.mode, elapsed_ms: a.ms }, { y: { shape: [task.T, a.y.length / task.T], data: a.y } });
}
