/**
 * The engine: a store, a route table and an op table. `execute` is the one entry point the
 * bridge calls; it turns every failure into a VtpuError so a bug never takes the sidecar down.
 */
import { OpInput, OpOutput } from './types';
import type { EngineContext, Instruction } from './instruction';
import { VtpuError } from './errors';
import { Store } from './store/store';
import { RouteTable } from './routes';
import { INSTRUCTIONS } from './ops/index';
import { Metrics, METRICS } from './metrics/index';
import { withBudget, type Clock } from './budget';
import schema from '../protocol/protocol.json';

/** Engine limits. */
export interface EngineOptions {
  /** Most rows per batch (default protocol.json's max_batch). */
  maxBatch?: number;
  /** Largest value in bytes (default 256 MiB). */
  maxValueBytes?: number;
  /** Largest request in bytes, reported by PING (enforced by the bridge). */
  maxRequestBytes?: number;
  /** Event-loop budget of one client request in ms, 0 = none (default protocol.json's max_loop_ms; see engine/budget.ts). */
  maxLoopMs?: number;
  /** The clock budgets are measured on (default performance.now; tests inject one). */
  clock?: Clock;
}

export type { Instruction };

/** Coordinate store + routing + instruction dispatch. */
export class Engine implements EngineContext {
  /** The coordinate store. */
  readonly store: Store;
  /** The range-ownership table CROUTE reads and replaces. */
  readonly routes = new RouteTable();
  /** Largest request in bytes (reported by PING). */
  readonly maxRequestBytes: number;
  /** Event-loop budget of one client request in ms, 0 = none (reported by PING, applied by {@link serve}). */
  readonly maxLoopMs: number;
  private readonly clock: Clock;
  /** What this engine's server measures (see engine/metrics); ops may add named timers. */
  readonly metrics = new Metrics();
  private readonly ops = new Map<string, Instruction>();

  /** Creates an engine with the built-in instructions registered. */
  constructor(opts: EngineOptions = {}) {
    this.store = new Store({ maxBatch: opts.maxBatch ?? schema.defaults.max_batch, maxValueBytes: opts.maxValueBytes });
    this.maxRequestBytes = opts.maxRequestBytes ?? schema.defaults.max_request_bytes;
    this.maxLoopMs = opts.maxLoopMs ?? schema.defaults.max_loop_ms;
    this.clock = opts.clock ?? (() => performance.now());
    for (const instr of INSTRUCTIONS) this.register(instr);
    this.register(METRICS);
    this.metrics.section('store', () => {
      const st = this.store.stats();
      return {
        entries: st.entries, heap_bytes: st.heapBytes, garbage_bytes: st.garbageBytes, index_bytes: st.indexBytes,
        allocated_bytes: st.allocatedBytes, range_index_hits_total: st.rangeIndexHits, range_scans_total: st.rangeScans,
      };
    });
  }

  /** Adds an instruction (e.g. PHEXT_IMPORT from engine/ops/phext_import.ts); E_PARAM on a name clash. */
  register(instr: Instruction): void {
    if (!instr || typeof instr.name !== 'string' || typeof instr.run !== 'function') {
      throw new VtpuError('E_PARAM', 'an instruction needs a name and a run function');
    }
    if (this.ops.has(instr.name)) throw new VtpuError('E_PARAM', `op ${instr.name} is already registered`);
    this.ops.set(instr.name, instr);
  }

  /** Registered op names, in registration order. */
  opNames(): string[] {
    return [...this.ops.keys()];
  }

  /** Most rows per batch. */
  get maxBatch(): number {
    return this.store.maxBatch;
  }

  /**
   * Runs one op. Unknown op → E_OP; params not an object → E_PARAM; any other exception
   * becomes E_INTERNAL with its message kept.
   */
  execute(op: string, input: OpInput): OpOutput {
    const instr = typeof op === 'string' ? this.ops.get(op) : undefined;
    if (instr === undefined) throw new VtpuError('E_OP', `unknown op ${JSON.stringify(op)}`);
    const params = input?.params;
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw new VtpuError('E_PARAM', `${op}: params must be an object`);
    }
    try {
      return instr.run(this, input);
    } catch (e) {
      if (e instanceof VtpuError) throw e;
      throw new VtpuError('E_INTERNAL', `${op}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * Runs one client request: {@link execute} within the event-loop budget, so a request
   * whose scan or walk runs past maxLoopMs stops with E_LIMIT instead of stalling others.
   */
  serve(op: string, input: OpInput): OpOutput {
    return withBudget(typeof op === 'string' ? op : '?', this.maxLoopMs, this.clock, () => this.execute(op, input));
  }
}
