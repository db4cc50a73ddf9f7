/**
 * The doorbell (native/experts_bell.c): decode-sized CEXPERTS runs a same-host client hands over
 * through a region of its shared-memory link, answered on a thread of the addon without ZeroMQ or
 * the event loop. The expert host keeps a {@link BellLayers} table of the layers it may answer
 * (complete layers on a native kernel, the same arrays as its inline runs); the shared-memory
 * links start a bell per client on that table (SHM mode `bell`, bridge/shm/links.ts).
 */
import { loadAddon } from './native';
import type { SharedLayer } from '../engine/kernels/experts_runtime';
import { kernelFor, kernelLists, type F32Kernel, type NativeKernels } from '../engine/kernels/experts_native';

/** The words of a bell's region (protocol.json's `bell`), as the addon numbers them. */
export interface BellLayout {
  magic: number;
  data: number;
  max_rows: number;
  words: Record<string, number>;
}

/** What native/experts_bell.c exports (tables and bells are opaque externals). */
export interface BellAddon {
  table(): object;
  register(table: object, layer: number, entry: object, H: number, I: number, threads: number, lists: ArrayBufferView[][], tally: Float64Array): void;
  registerDense(table: object, layer: number, entry: object, K: number, N: number, threads: number, packed: Float32Array | Uint16Array): void;
  unregister(table: object, layer?: number): number;
  start(table: object, buffer: ArrayBuffer, offset: number, length: number): object;
  stop(bell: object): void;
  stats(table: object): BellStats;
  layout(): BellLayout;
}

/** Calls a table's bells answered (fallbacks included: the client then used the socket), and their time. */
export interface BellStats {
  calls: number;
  fallbacks: number;
  ms: number;
}

/** The addon, or null where it did not build (clients then use the socket only). */
export function bellAddon(): BellAddon | null {
  return process.platform === 'linux' ? loadAddon<BellAddon>('vtpu_experts_bell') : null;
}

/** One expert host's layers as its bells see them. */
export class BellLayers {
  readonly table: object;
  private readonly tallies = new Map<number, Float64Array>();

  constructor(private readonly addon: BellAddon, private readonly kernels: NativeKernels) {
    this.table = addon.table();
  }

  /** Answers `layer` from now on (replacing what it held); `threads` as the runtime runs it. */
  add(layer: number, s: SharedLayer, threads: number): void {
    const k = kernelFor(this.kernels, s.spec.format);
    if (!k) return;
    const tally = new Float64Array(new SharedArrayBuffer(8 * s.spec.experts));
    this.addon.register(this.table, layer, k.entry, s.spec.hidden, s.spec.intermediate, Math.min(64, threads), kernelLists(s.spec.format, s.packed), tally);
    this.tallies.set(layer, tally);
  }

  /** Answers dense `layer` (bridge/dense.ts: W of N rows of K in the fp32 kernel's panels, float32 or bfloat16) from now on. */
  addDense(layer: number, K: number, N: number, threads: number, packed: Float32Array | Uint16Array, kernel: F32Kernel): void {
    this.addon.registerDense(this.table, layer, kernel.entry, K, N, Math.min(64, threads), packed);
  }

  /** Stops answering dense `layer` (a call in flight finishes first; the host keeps ids of one kind). */
  removeDense(layer: number): void {
    this.addon.unregister(this.table, layer);
  }

  /**
   * Stops answering experts `layer` (every experts layer when omitted; dense layers stay; a call
   * in flight finishes first) and returns the tokens per expert its bells routed, by layer, for
   * the host's load matrix.
   */
  remove(layer?: number): Map<number, Float64Array> {
    const gone = new Map<number, Float64Array>();
    for (const [l, t] of this.tallies) {
      if (layer !== undefined && l !== layer) continue;
      this.addon.unregister(this.table, l);
      gone.set(l, t);
      this.tallies.delete(l);
    }
    return gone;
  }

  /** Tokens per expert routed by bells, for layers still held. */
  counts(): ReadonlyMap<number, Float64Array> {
    return this.tallies;
  }

  stats(): BellStats {
    return this.addon.stats(this.table);
  }
}
