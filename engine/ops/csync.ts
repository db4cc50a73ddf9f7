/**
 * CSYNC: the steps of a range sync between sidecars (engine/sync/tree.ts). The driving
 * sidecar runs the same steps locally and on its peer over ZeroMQ (bridge/sync/driver.ts):
 *
 * - `hello` {pattern, agent?, owns?}: learns the caller's ownership claims; returns this
 *   sidecar's agent, its rules, the entry count and the root summary.
 * - `hash` {pattern, level, nodes}: raw body, the 16 child summaries (count, xor, sum: uint32
 *   LE) of each node at `level`, in order.
 * - `list` {pattern, level, nodes}: raw body, the entries and tombstones under those nodes
 *   (engine/sync/list.ts: coordinate, digest, write time; uint32 LE).
 * - `apply` {batch: true, times} + scrolls body: writes the winners with their write times,
 *   atomically, past the ownership check. `delete` {batch: true, times} + coords body: the
 *   same for deletes that won.
 * - `run` {peer, pattern, ...}: drives a sync; handled by the sidecar's bridge, not here.
 */
import type { EngineContext, Instruction } from '../instruction';
import type { OpInput, OpOutput } from '../types';
import { VtpuError } from '../errors';
import { coordsBody, scrollsBody } from './params';
import { syncState } from '../sync/state';
import { coordKey } from '../sync/clock';
import { LIST_WORDS, listRows } from '../sync/list';
import { childSummaries } from '../sync/tree';
import { treeFor } from '../sync/cache';

function bytesOf(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

function patternOf(p: Record<string, unknown>): string {
  if (typeof p.pattern !== 'string') throw new VtpuError('E_PARAM', `CSYNC: pattern must be a string, got ${JSON.stringify(p.pattern)}`);
  return p.pattern;
}

/** `params.times`: one write time (ms, 0..2^52) per row. */
function timesOf(p: Record<string, unknown>, n: number): number[] {
  const t = p.times;
  if (!Array.isArray(t) || t.length !== n || !t.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 52)) {
    throw new VtpuError('E_PARAM', `CSYNC: times must list ${n} integer write times (ms)`);
  }
  return t as number[];
}

/** Writes (or deletes, `del`) past the guard, then sets the times the rows carry. */
function applyRows(engine: EngineContext, coords: Uint32Array, times: number[], del: boolean, write: () => number): number {
  const st = syncState(engine);
  const done = st.bypass(write);
  for (let i = 0; i < times.length; i++) st.clock.set(coordKey(coords, i), times[i], del);
  return done;
}

function hello(engine: EngineContext, p: Record<string, unknown>): OpOutput {
  const owners = syncState(engine).owners;
  owners.learn(p.owns);
  const tree = treeFor(engine, patternOf(p));
  const root = tree.levels[0];
  return {
    result: { agent: owners.agent ?? null, owns: owners.toJSON(), n: tree.n, root: [root[0], root[1], root[2]], pattern: tree.pattern },
  };
}

const STEPS: Record<string, (engine: EngineContext, input: OpInput) => OpOutput> = {
  hello: (engine, input) => hello(engine, input.params),
  hash: (engine, { params: p }) => {
    const words = childSummaries(treeFor(engine, patternOf(p)), p.level as number, p.nodes as number[]);
    return { result: { nodes: (p.nodes as number[]).length }, raw: bytesOf(words) };
  },
  list: (engine, { params: p }) => {
    const words = listRows(treeFor(engine, patternOf(p)), syncState(engine).clock, p.level as number, p.nodes as number[]);
    return { result: { n: words.length / LIST_WORDS }, raw: bytesOf(words) };
  },
  apply: (engine, input) => {
    const batch = scrollsBody('CSYNC', input);
    if (!batch.coords) throw new VtpuError('E_FRAME', 'CSYNC apply needs scrolls with coords');
    const coords = batch.coords;
    return { result: { written: applyRows(engine, coords, timesOf(input.params, batch.n), false, () => engine.store.putBatch(batch)) } };
  },
  delete: (engine, input) => {
    const coords = coordsBody('CSYNC', engine, input);
    const times = timesOf(input.params, coords.length / 9);
    return { result: { deleted: applyRows(engine, coords, times, true, () => engine.store.deleteBatch(coords)) } };
  },
  run: () => {
    throw new VtpuError('E_PARAM', 'CSYNC run drives a peer over ZeroMQ: send it to a sidecar, not to a bare engine');
  },
};

/** The CSYNC instruction. */
export const CSYNC: Instruction = {
  name: 'CSYNC',
  body: (p) => (p.step === 'apply' ? 'scrolls' : p.step === 'delete' ? 'coords' : 'none'),
  writes: (p) => p.step === 'apply' || p.step === 'delete',
  // A run talks to a peer: the service holds the gate only for each local step.
  offload: (input) => (input.params.step === 'run' ? { to: 'sync' } : null),
  run(engine, input) {
    const step = input.params.step;
    const fn = typeof step === 'string' && Object.hasOwn(STEPS, step) ? STEPS[step] : undefined;
    if (!fn) throw new VtpuError('E_PARAM', `CSYNC: step must be one of ${Object.keys(STEPS).join(', ')}, got ${JSON.stringify(step)}`);
    return fn(engine, input);
  },
};
