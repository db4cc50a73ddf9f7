/**
 * What an instruction is, and what it may use of the engine that runs it. Ops depend on
 * this file only (never on engine.ts, which registers them), so the op table has no
 * import cycle.
 */
import type { BodyKind, OpInput, OpOutput } from './types';
import type { Store } from './store/store';
import type { RouteTable } from './routes';
import type { Metrics } from './metrics/registry';

/** The engine as an instruction sees it (engine/engine.ts implements it). */
export interface EngineContext {
  /** The coordinate store. */
  readonly store: Store;
  /** The range-ownership table CROUTE reads and replaces. */
  readonly routes: RouteTable;
  /** What this engine's server measures; ops may add named timers. */
  readonly metrics: Metrics;
  /** Most rows per batch. */
  readonly maxBatch: number;
  /** Largest request in bytes (reported by PING). */
  readonly maxRequestBytes: number;
  /** Event-loop budget of one client request in ms, 0 = none (reported by PING). */
  readonly maxLoopMs: number;
  /** Registered op names, in registration order. */
  opNames(): string[];
  /** Runs another op (PROGRAM's steps). */
  execute(op: string, input: OpInput): OpOutput;
}

/**
 * Where a request may leave the event loop, and the size the executor's threshold compares
 * (the executors live in the bridge; each takes a hint or leaves the request inline):
 * `pool` batched reads over a shared view of the store (bridge/pool.ts), `compute` CATTEND
 * on ONNX Runtime or worker threads (bridge/compute.ts), `experts` the expert runtime
 * thread (bridge/experts.ts), `sync` a sync driven against a peer (bridge/sync/service.ts).
 */
export type Offload =
  | { to: 'pool'; rows: number }
  | { to: 'compute'; flops: number }
  | { to: 'experts' }
  | { to: 'sync' };

/**
 * One instruction: everything about an op lives in its file — its wire name, the body its
 * requests carry, whether it writes, and what it does. The bridge decodes and gates
 * requests from these (bridge/frames.ts, bridge/server.ts); protocol.json says the same
 * in words for clients.
 */
export interface Instruction {
  /** Wire op name, e.g. `CGET`. */
  readonly name: string;
  /** The body a request with these params carries (default: none). */
  body?(params: Record<string, unknown>): BodyKind;
  /**
   * True when a request with these params changes the store or the route table, so it runs
   * alone under the store gate (default: false). `lookup` finds other ops (PROGRAM's steps).
   */
  writes?(params: Record<string, unknown>, lookup: (op: string) => Instruction | undefined): boolean;
  /** Where a request with this input may run off the event loop (default: inline). */
  offload?(input: OpInput): Offload | null;
  /** Runs the op; throws VtpuError on bad input. */
  run(engine: EngineContext, input: OpInput): OpOutput;
}
