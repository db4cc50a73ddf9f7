/**
 * CEXPERTS: MoE experts held in the sidecar and run on ONNX Runtime (the expert runtime,
 * engine/kernels/experts_runtime.ts). Modes:
 *
 * - `load`: params `layer`, `experts` E, `hidden` H, `intermediate` I, `format`
 *   (fp32 | int8 | q8 | q4), `first` (default 0), `group` (experts per session; default: as many
 *   as fit in {@link GROUP_BYTES}, so most layers are one session),
 *   `replace` (bool), `threads` (ONNX Runtime intra-op threads of the layer's sessions;
 *   default one per core); tensors `gate_up` (n, 2I, H) and `down` (n, H, I) for experts
 *   first..first+n-1 (transformers' fused Qwen3-MoE layout).
 * - `run`: params `layer`, `top_k`, `renormalize`; tensor `x` (T, H) and either `logits`
 *   (T, E) (routed here: softmax, top-k, optional renormalisation, as CMOE) or
 *   `expert_ids` (T, k) int with `weights` (T, k) float → `y` (T, H), `counts` (E).
 * - `info`: params `layer` (optional) → result `layers`, and `dense` (the dense layers).
 * - `drop`: params `layer` (optional: all) → result `dropped` (layers of either kind).
 * - `dense_load`, `dense_run`: a plain matrix held beside the experts (cexperts_dense.ts).
 *
 * This file turns a request into an {@link ExpertsTask} (validated, with its own buffers
 * so it can move to the runtime's thread) and a runtime answer into a reply; the sidecar's
 * expert host (bridge/experts.ts) runs the task. An engine without that host answers
 * E_INTERNAL.
 */
import type { Instruction } from '../instruction';
import type { OpInput, OpOutput } from '../types';
import { VtpuError } from '../errors';
import { boolParam, intParam, tensorsBody } from './params';
import { expectShape, floatInput, intInput, namedTensors, tensorOutput } from '../tensors';
import type { LayerInfo, LayerSpec, RoutingInput, SharedLayer } from '../kernels/experts_runtime';
import { EXPERT_FORMATS, expertBytes, type ExpertFormat } from '../kernels/experts_graph';
import type { DenseInfo } from './cexperts_dense';

export const OP = 'CEXPERTS';
/**
 * Default weight bytes per ONNX Runtime session. Fewer, bigger sessions: each has its own
 * intra-op thread pool, and a run costs one call per session with active experts (an
 * expert with no tokens costs only a few empty kernels); the cap keeps a model's protobuf
 * well under 2 GiB and the transient copies made while building it bounded.
 */
export const GROUP_BYTES = 1 << 30;
const MAX_LAYER = 2 ** 31 - 1;

/**
 * Where the runtime's thread finds or puts an array of a run in shared memory instead:
 * a span of a client's arena (bridge/shm/span.ts has the full type; the engine needs
 * only to pass it along).
 */
export interface SharedSpan {
  fd: number;
  ino: number;
  size: number;
  offset: number;
  length: number;
}

/**
 * A validated CEXPERTS request. Arrays are private copies (transferable); a run's `x` may
 * instead be a span of the client's request arena, and `out` a block of its reply arena
 * that receives y then counts (the raw layout's order), so neither is copied.
 */
export type ExpertsTask =
  | { mode: 'load'; layer: number; spec: LayerSpec; first: number; n: number; gateUp: Float32Array; down: Float32Array; replace: boolean }
  | { mode: 'run'; layer: number; T: number; x: Float32Array | SharedSpan; routing: RoutingInput; out?: SharedSpan }
  | { mode: 'info'; layer?: number }
  | { mode: 'drop'; layer?: number };

/** What the runtime answers per mode. */
export type ExpertsAnswer =
  | { mode: 'load'; info: LayerInfo; shared?: SharedLayer }
  | { mode: 'run'; y: Float32Array | null; counts: Int32Array | null; T: number; H: number; E: number; ms: number }
  | { mode: 'info'; layers: LayerInfo[]; dense?: DenseInfo[] }
  | { mode: 'drop'; dropped: number };

function layerParam(p: Record<string, unknown>, required: boolean): number | undefined {
  if (p.layer === undefined && !required) return undefined;
  if (p.layer === undefined) throw new VtpuError('E_PARAM', `${OP}: layer is required`);
  return intParam(OP, p, 'layer', 0, 0, MAX_LAYER);
}

/** Experts per session by default: the fewest equal groups of at most GROUP_BYTES each. */
export function autoGroup(experts: number, hidden: number, intermediate: number, format: ExpertFormat): number {
  const fit = Math.max(1, Math.floor(GROUP_BYTES / expertBytes(format, hidden, intermediate)));
  return Math.ceil(experts / Math.ceil(experts / fit));
}

function loadTask(input: OpInput): ExpertsTask {
  const p = input.params;
  for (const k of ['experts', 'hidden', 'intermediate']) if (p[k] === undefined) throw new VtpuError('E_PARAM', `${OP}: load needs ${k}`);
  const experts = intParam(OP, p, 'experts', 1, 1, 1 << 16);
  const hidden = intParam(OP, p, 'hidden', 1, 1, 1 << 20);
  const intermediate = intParam(OP, p, 'intermediate', 1, 1, 1 << 20);
  const format = (p.format ?? 'fp32') as ExpertFormat;
  const auto = autoGroup(experts, hidden, intermediate, (EXPERT_FORMATS as readonly string[]).includes(format) ? format : 'fp32');
  const spec: LayerSpec = { experts, hidden, intermediate, format, group: intParam(OP, p, 'group', auto, 1, 1 << 16) };
  if (p.threads !== undefined) spec.threads = intParam(OP, p, 'threads', 0, 0, 1024);
  const named = namedTensors(OP, input);
  const gu = floatInput(OP, named, 'gate_up');
  const down = floatInput(OP, named, 'down');
  const n = gu.shape[0];
  expectShape(OP, 'gate_up', gu, [null, 2 * spec.intermediate, spec.hidden]);
  expectShape(OP, 'down', down, [n, spec.hidden, spec.intermediate]);
  const first = intParam(OP, p, 'first', 0, 0, spec.experts - 1);
  return { mode: 'load', layer: layerParam(p, true) as number, spec, first, n, gateUp: gu.data.slice(), down: down.data.slice(), replace: boolParam(OP, p, 'replace', false) };
}

function runTask(input: OpInput, view: boolean): ExpertsTask {
  const p = input.params;
  const named = namedTensors(OP, input);
  const x = floatInput(OP, named, 'x');
  expectShape(OP, 'x', x, [null, null]);
  const T = x.shape[0];
  if (T < 1) throw new VtpuError('E_SHAPE', `${OP}: x needs at least one token`);
  let routing: RoutingInput;
  if (named.has('logits')) {
    const logits = floatInput(OP, named, 'logits');
    expectShape(OP, 'logits', logits, [T, null]);
    if (p.top_k === undefined) throw new VtpuError('E_PARAM', `${OP}: top_k is required with logits`);
    const topK = intParam(OP, p, 'top_k', 1, 1, logits.shape[1]);
    for (const v of logits.data) if (v !== v || v === Infinity) throw new VtpuError('E_PARAM', `${OP}: logits hold ${v}`);
    routing = { logits: logits.data.slice(), topK, renormalize: boolParam(OP, p, 'renormalize', false) };
  } else {
    const ids = intInput(OP, named, 'expert_ids');
    const w = floatInput(OP, named, 'weights');
    expectShape(OP, 'expert_ids', ids, [T, null]);
    expectShape(OP, 'weights', w, [T, ids.shape[1]]);
    routing = { expertIds: ids.data.slice(), weights: w.data.slice(), topK: ids.shape[1] };
  }
  return { mode: 'run', layer: layerParam(p, true) as number, T, x: view ? x.data : x.data.slice(), routing };
}

/**
 * The validated task of a request (E_PARAM / E_SHAPE / E_DTYPE on bad input). With `view`,
 * a run's x stays a view of the request (the caller replaces it with a span or a copy).
 */
export function expertsTask(input: OpInput, view = false): ExpertsTask {
  const mode = input.params.mode;
  if (mode === 'load') return loadTask(input);
  if (mode === 'run') return runTask(input, view);
  if (mode === 'info') return { mode, layer: layerParam(input.params, false) };
  if (mode === 'drop') return { mode, layer: layerParam(input.params, false) };
  throw new VtpuError('E_PARAM', `${OP}: mode must be load, run, info, drop, dense_load or dense_run, got ${JSON.stringify(mode)}`);
}

/** Transferable buffers of a task (moved to the runtime's thread, not copied). */
export function taskBuffers(t: ExpertsTask): ArrayBuffer[] {
  if (t.mode === 'load') return [t.gateUp.buffer as ArrayBuffer, t.down.buffer as ArrayBuffer];
  if (t.mode !== 'run') return [];
  const r = t.routing;
  const x = t.x instanceof Float32Array ? [t.x.buffer] : [];
  return [...x, ...('logits' in r ? [r.logits.buffer] : [r.expertIds.buffer, r.weights.buffer])] as ArrayBuffer[];
}

/** Bytes of a run's reply in the raw layout (y float32 (T, H), then counts int32 (E)), and where counts start. */
export function runReplyBytes(T: number, H: number, E: number): { total: number; countsAt: number } {
  return { total: T * H * 4 + E * 4, countsAt: T * H * 4 };
}

/**
 * The reply of a runtime answer. `block`: the reply-arena bytes the runtime wrote y and
 * counts into (the raw layout, see {@link runReplyBytes}); then they are the body as they are.
 */
export function expertsOutput(a: ExpertsAnswer, block?: Uint8Array): OpOutput {
  if (a.mode === 'run' && block) {
    const { countsAt } = runReplyBytes(a.T, a.H, a.E);
    const layout = [['float32', [a.T, a.H], 0], ['int32', [a.E], countsAt]];
    return { result: { mode: 'run', elapsed_ms: a.ms, tensors: ['y', 'counts'], layout }, raw: block };
  }
  if (a.mode === 'run') {
    return tensorOutput({ mode: 'run', elapsed_ms: a.ms }, { y: { shape: [a.T, a.H], data: a.y as Float32Array }, counts: { shape: [a.E], data: a.counts as Int32Array } });
  }
  const { mode, ...rest } = a;
  return { result: { mode, ...rest } };
}

/** The op's entry in the engine's table: served by the sidecar's expert host, not here. */
export const CEXPERTS: Instruction = {
  name: OP,
  body: tensorsBody,
  // Expert weights live in the runtime's own thread, never in the store.
  offload: () => ({ to: 'experts' }),
  run() {
    throw new VtpuError('E_INTERNAL', `${OP} runs in the sidecar's expert runtime; this engine has none`);
  },
};
