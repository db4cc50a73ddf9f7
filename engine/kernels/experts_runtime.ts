/**
 * The expert runtime: per-layer MoE experts held as ONNX Runtime sessions, and the MoE
 * forward over them (route → group tokens by expert → each active expert's SwiGLU FFN →
 * weighted combine). Experts of a layer are uploaded in chunks (any order), each expert
 * quantised to the layer's format as it arrives (so a layer never waits for its session in
 * fp32 unless fp32 is its format); each group of `group` consecutive experts becomes one
 * session as soon as all its experts arrived. `q4`, `q8` and `fp32` layers skip ONNX Runtime
 * when the host hands in the native kernels ({@link NativeKernels}: native/experts_q4.c,
 * native/experts_q8.c, native/experts_f32.c): their packed experts are held (in shared memory)
 * as they arrive and run there. Errors are VtpuErrors (typed on the wire).
 */
import { VtpuError } from '../errors';
import { dispatchPlan, route } from './moe';
import { combine } from './moe_combine';
import { ort, ortThreads } from './attention_ort';
import { EXPERT_FORMATS, ExpertFormat, expertBytes, expertGroupModel, packExpert, PackedExpert } from './experts_graph';
import { kernelFor, kernelLists, panelled, toShared, type F32Kernel, type NativeKernels } from './experts_native';

const OP = 'CEXPERTS';
type Session = import('onnxruntime-node').InferenceSession;

/** Shape and format of a layer's experts. */
export interface LayerSpec {
  experts: number;
  hidden: number;
  intermediate: number;
  format: ExpertFormat;
  /** Experts per session (≥ 1). */
  group: number;
  /** Intra-op threads of this layer's sessions (0: one per core the process may use, see ortThreads); absent: the runtime's option. */
  threads?: number;
}

/** What a client sees of a layer. */
export interface LayerInfo extends LayerSpec {
  layer: number;
  received: number;
  complete: boolean;
  bytes: number;
  /** What runs the layer's experts: ONNX Runtime sessions, or the native kernel of its format. */
  kernel: 'onnxruntime' | 'native';
}

/** Routing handed to {@link ExpertRuntime.run}: router logits, or a selection made elsewhere. */
export type RoutingInput =
  | { logits: Float32Array; topK: number; renormalize: boolean }
  | { expertIds: Int32Array; weights: Float32Array; topK: number };

interface Layer {
  spec: LayerSpec;
  received: Uint8Array;
  /**
   * Experts arrived, already in the layer's format: until their group's session is built, or
   * for good when the native kernel runs the layer (then there are no sessions).
   */
  packed: (PackedExpert | null)[];
  sessions: (Promise<Session> | null)[];
  native: boolean;
}

/** Options of the ORT sessions the runtime creates, and the native kernels it may run layers on. */
export interface ExpertRuntimeOptions extends Partial<NativeKernels> {
  /** Intra-op threads per session (0: one per core the process may use, see ortThreads). */
  threads?: number;
  /**
   * Called once sessions are built or released: building frees copies of the weights (model
   * bytes, initializers) that a fragmented heap would otherwise keep, so the host hands the
   * pages back here (bridge/heap.ts).
   */
  reclaim?: () => void;
}

/** A complete native layer as another thread takes it over ({@link ExpertRuntime.shared}, {@link ExpertRuntime.adopt}). */
export interface SharedLayer {
  spec: LayerSpec;
  packed: PackedExpert[];
}

/** Every expert of the layer arrived. */
function complete(l: Layer): boolean {
  return l.received.every((r) => r === 1);
}

function sameSpec(a: LayerSpec, b: LayerSpec): boolean {
  return a.experts === b.experts && a.hidden === b.hidden && a.intermediate === b.intermediate && a.format === b.format && a.group === b.group;
}

function describe(s: LayerSpec): string {
  return `E=${s.experts}, H=${s.hidden}, I=${s.intermediate}, ${s.format}, group ${s.group}`;
}

/** Compact list of missing expert ids ("0-3, 7"). */
function missingList(received: Uint8Array): string {
  const parts: string[] = [];
  for (let e = 0; e < received.length; e++) {
    if (received[e]) continue;
    let f = e;
    while (f + 1 < received.length && !received[f + 1]) f++;
    parts.push(f > e ? `${e}-${f}` : `${e}`);
    e = f;
  }
  return parts.join(', ');
}

/** Checks a layer spec from the wire. */
export function checkSpec(s: LayerSpec): LayerSpec {
  for (const k of ['experts', 'hidden', 'intermediate', 'group'] as const) {
    if (!Number.isSafeInteger(s[k]) || s[k] < 1) throw new VtpuError('E_PARAM', `${OP}: ${k} must be an integer >= 1, got ${JSON.stringify(s[k])}`);
  }
  if (s.threads !== undefined && (!Number.isSafeInteger(s.threads) || s.threads < 0)) {
    throw new VtpuError('E_PARAM', `${OP}: threads must be an integer >= 0, got ${JSON.stringify(s.threads)}`);
  }
  if (!(EXPERT_FORMATS as readonly string[]).includes(s.format)) {
    throw new VtpuError('E_PARAM', `${OP}: format must be one of ${EXPERT_FORMATS.join(', ')}, got ${JSON.stringify(s.format)}`);
  }
  return s;
}

/** Expert layers and their sessions. */
export class ExpertRuntime {
  private readonly layers = new Map<number, Layer>();
  /**
   * Working memory of {@link run}, kept for the next call (runs are serial): a prefill of
   * 512 tokens at top-8 and width 2048 gathers and gets back 32 MiB each way, and fresh
   * buffers of that size cost ~100 ms of first-touch page faults apiece on some VMs.
   */
  private scratch = { xs: new Float32Array(0), ys: new Float32Array(0), acc: new Float64Array(0) };

  private grown<K extends keyof ExpertRuntime['scratch']>(k: K, n: number): ExpertRuntime['scratch'][K] {
    const a = this.scratch[k];
    if (a.length >= n) return a.subarray(0, n) as ExpertRuntime['scratch'][K];
    const made = (k === 'acc' ? new Float64Array(n) : new Float32Array(n)) as ExpertRuntime['scratch'][K];
    this.scratch[k] = made;
    return made;
  }

  constructor(private readonly opts: ExpertRuntimeOptions = {}) {}

  /**
   * Stores experts `first..first+n-1` of a layer (gateUp n·2I·H, down n·H·I floats),
   * packed in the layer's format now (fp32: the arrays are kept, not copied, until their
   * group's session is built, or copied into the native kernel's panels; quantised formats keep
   * only the quantised weights).
   * A layer with another spec is E_SHAPE unless `replace` (which starts it afresh);
   * an expert uploaded twice is E_PARAM. Resolves when the sessions of every group this
   * chunk completed are built.
   */
  async load(layer: number, spec: LayerSpec, first: number, n: number, gateUp: Float32Array, down: Float32Array, replace: boolean): Promise<LayerInfo> {
    checkSpec(spec);
    const { experts: E, hidden: H, intermediate: I } = spec;
    if (!Number.isSafeInteger(first) || first < 0 || n < 1 || first + n > E) {
      throw new VtpuError('E_PARAM', `${OP}: experts ${first}..${first + n - 1} are outside 0..${E - 1}`);
    }
    if (gateUp.length !== n * 2 * I * H || down.length !== n * H * I) {
      throw new VtpuError('E_SHAPE', `${OP}: expected gate_up (${n}, ${2 * I}, ${H}) and down (${n}, ${H}, ${I})`);
    }
    let l = this.layers.get(layer);
    if (l && !sameSpec(l.spec, spec)) {
      if (!replace) throw new VtpuError('E_SHAPE', `${OP}: layer ${layer} holds experts of ${describe(l.spec)}, this upload is ${describe(spec)} (pass replace to swap them)`);
      this.drop(layer);
      l = undefined;
    } else if (l && replace && first === 0) {
      this.drop(layer);
      l = undefined;
    }
    if (!l) {
      const groups = Math.ceil(E / spec.group);
      const native = !!this.kernel(spec.format);
      l = { spec: { ...spec }, received: new Uint8Array(E), packed: new Array(E).fill(null), sessions: new Array(native ? 0 : groups).fill(null), native };
      this.layers.set(layer, l);
    }
    for (let j = 0; j < n; j++) {
      if (l.received[first + j]) throw new VtpuError('E_PARAM', `${OP}: expert ${first + j} of layer ${layer} is already uploaded (replace the layer to change it)`);
    }
    const built: Promise<Session>[] = [];
    for (let j = 0; j < n; j++) {
      const e = first + j;
      l.received[e] = 1;
      // Views: the chunk's buffers are handed over (moved here from the event loop).
      const w = { gateUp: gateUp.subarray(j * 2 * I * H, (j + 1) * 2 * I * H), down: down.subarray(j * H * I, (j + 1) * H * I) };
      if (!l.native) l.packed[e] = packExpert(spec.format, H, I, w);
      else l.packed[e] = spec.format === 'fp32' ? panelled(this.opts.f32 as F32Kernel, H, I, w) : toShared(packExpert(spec.format, H, I, w));
    }
    if (l.native) return this.info(layer) as LayerInfo;
    const g0 = Math.floor(first / spec.group), g1 = Math.floor((first + n - 1) / spec.group);
    for (let g = g0; g <= g1; g++) {
      const s = this.build(l, g);
      if (s) built.push(s);
    }
    try {
      await Promise.all(built);
    } catch (e) {
      this.layers.delete(layer);
      throw new VtpuError('E_INTERNAL', `${OP}: ONNX Runtime could not build layer ${layer}'s experts: ${(e as Error).message}`);
    } finally {
      if (built.length) this.opts.reclaim?.();
    }
    return this.info(layer) as LayerInfo;
  }

  /** Starts group g's session when all its experts arrived (their packed copies are released). */
  private build(l: Layer, g: number): Promise<Session> | null {
    const { group, experts: E, hidden: H, intermediate: I, format } = l.spec;
    const e0 = g * group, e1 = Math.min(E, e0 + group);
    if (l.sessions[g]) return null;
    for (let e = e0; e < e1; e++) if (!l.received[e]) return null;
    const ws = l.packed.slice(e0, e1) as PackedExpert[];
    for (let e = e0; e < e1; e++) l.packed[e] = null;
    const o = ort();
    if (!o) throw new VtpuError('E_INTERNAL', `${OP}: onnxruntime-node is not available`);
    const model = expertGroupModel(format, H, I, ws);
    const s = o.InferenceSession.create(model, {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: ortThreads(l.spec.threads ?? this.opts.threads),
      // Idle pool threads must not spin: the client computes between expert calls (the 30B-A3B
      // example at 6 layers, hand-run on a 2-core VM: 3.3 decode tok/s with spinning, 7.5 without).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    l.sessions[g] = s;
    return s;
  }

  /** A complete native layer's spec and (shared-memory) experts, for {@link adopt} in another thread; null otherwise. */
  shared(layer: number): SharedLayer | null {
    const l = this.layers.get(layer);
    if (!l || !l.native || !complete(l)) return null;
    return { spec: { ...l.spec }, packed: l.packed as PackedExpert[] };
  }

  /** The native kernel of a format, when the host handed one in. */
  private kernel(format: ExpertFormat) {
    return kernelFor(this.opts, format);
  }

  /** Holds a layer another runtime built ({@link shared}); needs the native kernel of its format. */
  adopt(layer: number, s: SharedLayer): void {
    if (!this.kernel(s.spec.format)) throw new VtpuError('E_INTERNAL', `${OP}: only layers on a native kernel this runtime has can be adopted (${s.spec.format})`);
    this.drop(layer);
    this.layers.set(layer, { spec: { ...s.spec }, received: new Uint8Array(s.spec.experts).fill(1), packed: s.packed.slice(), sessions: [], native: true });
  }

  /** True when `layer` is held complete. */
  has(layer: number): boolean {
    const l = this.layers.get(layer);
    return !!l && complete(l);
  }

  /** Layers held (all when `layer` is omitted), or the one asked for (null if absent). */
  info(layer: number): LayerInfo | null;
  info(): LayerInfo[];
  info(layer?: number): LayerInfo | LayerInfo[] | null {
    const one = (id: number, l: Layer): LayerInfo => {
      const received = l.received.reduce((a, b) => a + b, 0);
      return { layer: id, ...l.spec, received, complete: received === l.spec.experts, bytes: received * expertBytes(l.spec.format, l.spec.hidden, l.spec.intermediate), kernel: l.native ? 'native' : 'onnxruntime' };
    };
    if (layer === undefined) return [...this.layers].sort((a, b) => a[0] - b[0]).map(([id, l]) => one(id, l));
    const l = this.layers.get(layer);
    return l ? one(layer, l) : null;
  }

  /** Releases a layer (all when omitted); returns how many were held. */
  drop(layer?: number): number {
    const ids = layer === undefined ? [...this.layers.keys()] : this.layers.has(layer) ? [layer] : [];
    const released: Promise<void>[] = [];
    for (const id of ids) {
      const l = this.layers.get(id) as Layer;
      this.layers.delete(id);
      for (const s of l.sessions) if (s) released.push(s.then((x) => x.release(), () => undefined));
    }
    if (released.length) void Promise.all(released).then(() => this.opts.reclaim?.());
    return ids.length;
  }

  /** The complete layer, or a typed error naming what is missing. */
  private ready(layer: number): Layer {
    const l = this.layers.get(layer);
    if (!l) throw new VtpuError('E_PARAM', `${OP}: no experts uploaded for layer ${layer} (held: ${[...this.layers.keys()].join(', ') || 'none'})`);
    if (!complete(l)) throw new VtpuError('E_PARAM', `${OP}: layer ${layer} is missing experts ${missingList(l.received)}`);
    return l;
  }

  /**
   * MoE forward of `layer` on x (T·H): routes (or takes the given selection), runs every
   * active expert once on its rows and combines with the routing weights (float64 sums).
   * Returns y (T·H) and tokens per expert (E).
   */
  async run(layer: number, x: Float32Array, T: number, r: RoutingInput, out?: Float32Array): Promise<{ y: Float32Array; counts: Int32Array }> {
    const l = this.ready(layer);
    const { experts: E, hidden: H } = l.spec;
    if (x.length !== T * H) throw new VtpuError('E_SHAPE', `${OP}: x must be (T, ${H}) for layer ${layer}, got ${x.length / T} columns`);
    const k = r.topK;
    let expertIds: Int32Array, weights: Float32Array;
    if ('logits' in r) {
      if (r.logits.length !== T * E) throw new VtpuError('E_SHAPE', `${OP}: logits must be (${T}, ${E}) for layer ${layer}`);
      ({ expertIds, weights } = route(r.logits, T, E, { topK: k, renormalize: r.renormalize, capacityFactor: null }));
    } else {
      ({ expertIds, weights } = r);
      for (let i = 0; i < expertIds.length; i++) {
        if (expertIds[i] < 0 || expertIds[i] >= E) throw new VtpuError('E_PARAM', `${OP}: expert id ${expertIds[i]} is outside 0..${E - 1} of layer ${layer}`);
      }
    }
    const plan = dispatchPlan(expertIds, T, k, E, null);
    const N = plan.order.length;
    const xs = this.grown('xs', N * H);
    for (let p = 0; p < N; p++) {
      const t = (plan.order[p] / k) | 0;
      xs.set(x.subarray(t * H, (t + 1) * H), p * H);
    }
    const ys = this.grown('ys', N * H);
    if (l.native) this.runNative(l, xs, ys, plan.counts);
    else await this.runSessions(l, xs, ys, plan.counts, plan.offsets);
    if (out && out.length !== T * H) throw new VtpuError('E_INTERNAL', `${OP}: output has ${out.length} floats, not ${T * H}`);
    return { y: combine(ys, H, plan.order, weights, T, k, out, this.grown('acc', T * H)), counts: plan.counts };
  }

  /** Every active expert in one native call (rows of xs are grouped by expert, in expert order). */
  private runNative(l: Layer, xs: Float32Array, ys: Float32Array, counts: Int32Array): void {
    const { hidden: H, intermediate: I } = l.spec;
    const active: PackedExpert[] = [], rows: number[] = [];
    counts.forEach((c, e) => {
      if (c > 0) active.push(l.packed[e] as PackedExpert), rows.push(c);
    });
    const lists = kernelLists(l.spec.format, active);
    const kernel = this.kernel(l.spec.format) as { swiglu(...a: unknown[]): number };
    kernel.swiglu(H, I, this.threadsOf(l.spec), xs, ys, Int32Array.from(rows), ...lists);
  }

  /** The threads a layer runs on (its own setting, else the runtime's; 0: one per core). */
  threadsOf(spec: LayerSpec): number {
    return ortThreads(spec.threads ?? this.opts.threads);
  }

  /** One session call per group with active experts, each writing its rows of ys. */
  private async runSessions(l: Layer, xs: Float32Array, ys: Float32Array, counts: Int32Array, offsets: Int32Array): Promise<void> {
    const { experts: E, hidden: H, group } = l.spec;
    const o = ort() as NonNullable<ReturnType<typeof ort>>;
    for (let g = 0; g * group < E; g++) {
      const e0 = g * group, e1 = Math.min(E, e0 + group);
      const r0 = offsets[e0], r1 = offsets[e1];
      if (r1 === r0) continue;
      const split = new BigInt64Array(e1 - e0);
      for (let e = e0; e < e1; e++) split[e - e0] = BigInt(counts[e]);
      const sess = await (l.sessions[g] as Promise<Session>);
      // ORT writes y into the pre-allocated rows (no output buffer of its own to copy from).
      await sess.run({
        x: new o.Tensor('float32', xs.subarray(r0 * H, r1 * H), [r1 - r0, H]),
        split: new o.Tensor('int64', split, [e1 - e0]),
      }, { y: new o.Tensor('float32', ys.subarray(r0 * H, r1 * H), [r1 - r0, H]) });
    }
  }
}
