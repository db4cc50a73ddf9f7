/**
 * CSYNC: the steps of a range sync between sidecars (engine/sync/tree.ts). The driving
 * sidecar runs the same steps locally and on its peer over ZeroMQ (bridge/sync/driver.ts):
 *
 * - `hello` {pattern, agent?, owns?}: learns the caller's ownership claims; returns this
 *   sidecar's agent, its rules, the entry count and the root summary.
 * - `hash` {pattern, level, nodes}: raw body, the 16 child summaries (count, xor, sum: uint32
 *   LE) of each node at `level`, in order.
 * - `list` {pattern, level, nodes}: raw body, the entries under those nodes as 9 coordinate
 *   words and 2 digest words each (uint32 LE).
 * - `apply` {batch: true} + scrolls body: writes the winners, atomically, past the ownership
 *   check. `delete` {batch: true} + coords body: removes scrolls whose owner lacks them.
 * - `run` {peer, pattern, ...}: drives a sync; handled by the sidecar's bridge, not here.
 */
import type { Engine, Instruction } from '../engine';
import type { OpInput, OpOutput } from '../types';
import { VtpuError } from '../errors';
import { coordsBody, scrollsBody } from './params';
import { ownersOf } from '../sync/owners';
import { childSummaries, listEntries, treeFor } from '../sync/tree';

function bytesOf(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

function patternOf(p: Record<string, unknown>): string {
  if (typeof p.pattern !== 'string') throw new VtpuError('E_PARAM', `CSYNC: pattern must be a string, got ${JSON.stringify(p.pattern)}`);
  return p.pattern;
}

function hello(engine: Engine, p: Record<string, unknown>): OpOutput {
  const owners = ownersOf(engine);
  owners.learn(p.owns);
  const tree = treeFor(engine, patternOf(p));
  const root = tree.levels[0];
  return {
    result: { agent: owners.agent ?? null, owns: owners.toJSON(), n: tree.n, root: [root[0], root[1], root[2]], pattern: tree.pattern },
  };
}

const STEPS: Record<string, (engine: Engine, input: OpInput) => OpOutput> = {
  hello: (engine, input) => hello(engine, input.params),
  hash: (engine, { params: p }) => {
    const words = childSummaries(treeFor(engine, patternOf(p)), p.level as number, p.nodes as number[]);
    return { result: { nodes: (p.nodes as number[]).length }, raw: bytesOf(words) };
  },
  list: (engine, { params: p }) => {
    const words = listEntries(treeFor(engine, patternOf(p)), p.level as number, p.nodes as number[]);
    return { result: { n: words.length / 11 }, raw: bytesOf(words) };
  },
  apply: (engine, input) => {
    const batch = scrollsBody('CSYNC', input);
    if (!batch.coords) throw new VtpuError('E_FRAME', 'CSYNC apply needs scrolls with coords');
    return { result: { written: ownersOf(engine).bypass(() => engine.store.putBatch(batch)) } };
  },
  delete: (engine, input) => {
    const coords = coordsBody('CSYNC', engine, input);
    return { result: { deleted: ownersOf(engine).bypass(() => engine.store.deleteBatch(coords)) } };
  },
  run: () => {
    throw new VtpuError('E_PARAM', 'CSYNC run drives a peer over ZeroMQ: send it to a sidecar, not to a bare engine');
  },
};

/** The CSYNC instruction. */
export const CSYNC: Instruction = {
  name: 'CSYNC',
  run(engine, input) {
    const step = input.params.step;
    const fn = typeof step === 'string' && Object.hasOwn(STEPS, step) ? STEPS[step] : undefined;
    if (!fn) throw new VtpuError('E_PARAM', `CSYNC: step must be one of ${Object.keys(STEPS).join(', ')}, got ${JSON.stringify(step)}`);
    return fn(engine, input);
  },
};
