/**
 * The event-loop budget (`--max-loop-ms`): how long one client request may hold the event
 * loop. Long loops (range scans, hierarchy walks, graph walks, sync trees, exports) call
 * {@link tick}; once the running request is past its deadline the next check throws
 * E_LIMIT, so one request cannot stall every other client. Only loops that change nothing
 * tick (scans, walks, reply building), so a stopped request leaves no trace. Builds of
 * indexes that later requests reuse (range orders, the graph, sync trees) are not stopped.
 *
 * One module-level deadline, because the engine runs one request at a time on a thread;
 * worker threads never set one, so their ticks cost a comparison.
 */
import { VtpuError } from './errors';

/** Milliseconds since some origin: `performance.now` unless a test injects its own clock. */
export type Clock = () => number;

/** Ticks between clock reads: a tick costs an add and a compare, a read about 30 ns. */
const STRIDE = 1024;

let deadline = Infinity;
let ticks = 0;
let clock: Clock = () => performance.now();
let running: { op: string; ms: number } | null = null;

/**
 * Runs `fn` (one request's op) with a deadline `ms` from now on `now`; `ms` ≤ 0 or an
 * already running budget (a PROGRAM's step, a nested call) leaves the current one as it is.
 */
export function withBudget<T>(op: string, ms: number, now: Clock, fn: () => T): T {
  if (ms <= 0 || running !== null) return fn();
  clock = now;
  running = { op, ms };
  deadline = now() + ms;
  ticks = 0;
  try {
    return fn();
  } finally {
    running = null;
    deadline = Infinity;
  }
}

/**
 * Counts `n` units of work (rows visited, nodes expanded); every {@link STRIDE} units it
 * reads the clock and throws E_LIMIT once the request is past its budget.
 */
export function tick(n = 1): void {
  if (deadline === Infinity) return;
  ticks += n;
  if (ticks < STRIDE) return;
  ticks = 0;
  if (clock() > deadline) overrun();
}

/**
 * Runs `fn` (the build of a cache later requests reuse: a sync tree) outside the budget:
 * its time does not count. Stopping it would throw the work away, so a store big enough
 * to need more than the budget could never be served.
 */
export function unbudgeted<T>(fn: () => T): T {
  if (deadline === Infinity) return fn();
  const saved = deadline;
  const t0 = clock();
  deadline = Infinity;
  try {
    return fn();
  } finally {
    deadline = saved + (clock() - t0);
  }
}

function overrun(): never {
  const r = running as { op: string; ms: number };
  deadline = Infinity; // one error per request, even if a caller catches it and ticks on
  throw new VtpuError('E_LIMIT',
    `${r.op}: this request ran past the event-loop budget of ${r.ms} ms (--max-loop-ms) and was stopped; `
    + 'narrow it (a tighter pattern, a smaller depth, limit or batch) or start the sidecar with a larger --max-loop-ms');
}
