/**
 * Drives one sync of a pattern between this sidecar (local engine, under the store gate) and
 * a peer (over a {@link Peer}): compare root summaries; descend level by level only into
 * children whose summaries differ; list the entries (coordinate + digest) of differing small
 * ranges; move only differing scrolls, both ways, each move one atomic batch. Repeats until
 * the roots match or `passes` run out. Merge rule: see {@link pickWinner}.
 */
import { VtpuError } from '../../engine/errors';
import type { Engine } from '../../engine/engine';
import { DIMS, type OpBody, type ScrollBatch } from '../../engine/types';
import { compareDigests } from '../../engine/sync/hash';
import type { Owners } from '../../engine/sync/owners';
import { syncState } from '../../engine/sync/state';
import { keyCoords } from '../../engine/sync/clock';
import { parseRows, type Listed } from '../../engine/sync/list';
import { DEPTH, FANOUT, sameSummary } from '../../engine/sync/tree';
import { decodeScrolls } from '../arrow';
import type { Peer } from './peer';

/** Runs `fn` under the store gate, exclusive when `write`. */
export type GateRun = <T>(write: boolean, fn: () => T) => Promise<T>;

/** What a sync reports. */
export interface SyncStats {
  converged: boolean;
  passes: number;
  rounds: number;
  ranges_compared: number;
  scrolls_sent: number;
  scrolls_received: number;
  deleted_local: number;
  deleted_remote: number;
  bytes_sent: number;
  bytes_received: number;
  hash_bytes: number;
  data_bytes: number;
  elapsed_ms: number;
}

/** Ranges whose larger side holds at most this many entries are listed rather than split. */
const LIST_AT = 4;
/** Rows per fetch/apply batch. */
const CHUNK_ROWS = 4096;
/** Node indices per hash/list request. */
const CHUNK_NODES = 4096;

type Summary = { agent: string | null; n: number; root: Uint32Array };

function words(b: Uint8Array | undefined): Uint32Array {
  if (!b || b.byteLength % 4 !== 0) throw new VtpuError('E_PEER', 'sync peer sent a malformed hash body');
  // A copy: Buffer.slice would share (and expose) the whole pooled ArrayBuffer.
  return new Uint32Array(new Uint8Array(b).buffer);
}

/** One side of a sync, local or remote, behind the same steps. */
interface Side {
  hello(pattern: string, owns?: unknown): Promise<Summary & { owns: unknown }>;
  hash(pattern: string, level: number, nodes: number[]): Promise<Uint32Array>;
  list(pattern: string, level: number, nodes: number[]): Promise<Uint32Array>;
  fetch(coords: Uint32Array): Promise<ScrollBatch>;
  apply(batch: ScrollBatch, times: number[]): Promise<void>;
  remove(coords: Uint32Array, times: number[]): Promise<void>;
}

function side(call: (params: Record<string, unknown>, body?: OpBody, op?: string) => Promise<{ result: Record<string, unknown>; raw?: Uint8Array; scrolls?: ScrollBatch }>): Side {
  return {
    async hello(pattern, owns) {
      const { result: r } = await call({ step: 'hello', pattern, owns });
      const root = Array.isArray(r.root) && r.root.length === 3 ? Uint32Array.from(r.root as number[]) : undefined;
      if (!root || typeof r.n !== 'number') throw new VtpuError('E_PEER', 'sync peer sent a malformed hello');
      return { agent: typeof r.agent === 'string' ? r.agent : null, n: r.n, root, owns: r.owns };
    },
    hash: async (pattern, level, nodes) => words((await call({ step: 'hash', pattern, level, nodes })).raw),
    list: async (pattern, level, nodes) => words((await call({ step: 'list', pattern, level, nodes })).raw),
    async fetch(coords) {
      const out = await call({ batch: true }, { coords }, 'CGET');
      if (!out.scrolls || out.scrolls.n !== coords.length / DIMS) throw new VtpuError('E_PEER', 'sync peer sent a malformed fetch reply');
      return { ...out.scrolls, coords };
    },
    apply: async (batch, times) => void (await call({ step: 'apply', batch: true, times }, { scrolls: batch })),
    remove: async (coords, times) => void (await call({ step: 'delete', batch: true, times }, { coords })),
  };
}

/** The local engine as a {@link Side}. */
function localSide(engine: Engine, gate: GateRun): Side {
  return side((params, body, op = 'CSYNC') => gate(params.step === 'apply' || params.step === 'delete',
    () => engine.execute(op, { params, ...body })));
}

/** A peer as a {@link Side}. */
function remoteSide(peer: Peer): Side {
  return side(async (params, body, op = 'CSYNC') => {
    const r = await peer.call(op, params, body);
    if (op === 'CGET') {
      try {
        return { result: r.result, scrolls: decodeScrolls(r.body ?? new Uint8Array(0)) };
      } catch (e) {
        throw new VtpuError('E_PEER', `sync peer sent a bad scrolls body: ${(e as Error).message}`);
      }
    }
    return { result: r.result, raw: r.body };
  });
}

/**
 * Who keeps a differing coordinate: 'local' or 'remote'. The owning agent's side wins when it
 * is one of the two (its absence too: the other side deletes). Otherwise the later write wins
 * (a delete is a write; engine/sync/clock.ts); on equal times presence beats absence and,
 * both present, the larger digest wins, so every pair settles the same way without a leader.
 */
export function pickWinner(owner: string | undefined, localAgent: string | null, remoteAgent: string | null,
  l: Listed | undefined, r: Listed | undefined): 'local' | 'remote' {
  if (owner !== undefined && owner === localAgent) return 'local';
  if (owner !== undefined && owner === remoteAgent) return 'remote';
  const lt = l?.time ?? 0;
  const rt = r?.time ?? 0;
  if (lt !== rt) return lt > rt ? 'local' : 'remote';
  const lp = l !== undefined && !l.tomb;
  const rp = r !== undefined && !r.tomb;
  if (lp !== rp) return lp ? 'local' : 'remote';
  return lp && rp && compareDigests((l as Listed).digest, 0, (r as Listed).digest, 0) < 0 ? 'remote' : 'local';
}

/** Syncs `pattern` between `engine` and `peer`; the stats say what moved. */
export async function syncWith(engine: Engine, gate: GateRun, peer: Peer, pattern: string, passes: number): Promise<SyncStats> {
  const t0 = performance.now();
  const local = localSide(engine, gate);
  const remote = remoteSide(peer);
  const owners = syncState(engine).owners;
  const st: SyncStats = {
    converged: false, passes: 0, rounds: 0, ranges_compared: 0, scrolls_sent: 0, scrolls_received: 0,
    deleted_local: 0, deleted_remote: 0, bytes_sent: 0, bytes_received: 0, hash_bytes: 0, data_bytes: 0, elapsed_ms: 0,
  };
  while (st.passes < passes + 1) {
    const r = await remote.hello(pattern, owners.toJSON().filter((x) => x.agent === owners.agent));
    const l = await local.hello(pattern, r.owns);
    if (sameSummary(l.root, 0, r.root, 0)) {
      st.converged = true;
      break;
    }
    if (st.passes === passes) break;
    st.passes++;
    await onePass(local, remote, owners, l, r, pattern, st);
  }
  Object.assign(st, {
    rounds: peer.rounds, bytes_sent: peer.sent, bytes_received: peer.received,
    hash_bytes: peer.hashBytes, data_bytes: peer.dataBytes, elapsed_ms: performance.now() - t0,
  });
  return st;
}

async function chunked(nodes: number[], fn: (part: number[]) => Promise<Uint32Array>): Promise<Uint32Array[]> {
  const out: Uint32Array[] = [];
  for (let i = 0; i < nodes.length; i += CHUNK_NODES) out.push(await fn(nodes.slice(i, i + CHUNK_NODES)));
  return out;
}

/** Descends the differing ranges; returns the nodes to list, grouped by level. */
async function descend(local: Side, remote: Side, pattern: string, st: SyncStats): Promise<Map<number, number[]>> {
  const toList = new Map<number, number[]>();
  let nodes = [0];
  for (let level = 0; nodes.length > 0; level++) {
    if (level === DEPTH) {
      toList.set(level, nodes);
      break;
    }
    const la = await chunked(nodes, (part) => local.hash(pattern, level, part));
    const ra = await chunked(nodes, (part) => remote.hash(pattern, level, part));
    const next: number[] = [];
    const small: number[] = [];
    for (let c = 0; c < la.length; c++) {
      const a = la[c];
      const b = ra[c];
      if (a.length !== b.length) throw new VtpuError('E_PEER', 'sync peer sent a hash body of the wrong size');
      const base = c * CHUNK_NODES;
      for (let j = 0; j < a.length / 3; j++) {
        st.ranges_compared++;
        if (sameSummary(a, j, b, j)) continue;
        const idx = nodes[base + Math.floor(j / FANOUT)] * FANOUT + (j % FANOUT);
        (Math.max(a[3 * j], b[3 * j]) <= LIST_AT ? small : next).push(idx);
      }
    }
    if (small.length) toList.set(level + 1, small);
    nodes = next;
  }
  return toList;
}

/** A move: coordinates and the write times they carry. */
type Moves = { coords: number[][]; times: number[] };
const moves = (): Moves => ({ coords: [], times: [] });

async function onePass(local: Side, remote: Side, owners: Owners, l: Summary, r: Summary, pattern: string, st: SyncStats): Promise<void> {
  const toList = await descend(local, remote, pattern, st);
  const push = moves();
  const pull = moves();
  const delLocal = moves();
  const delRemote = moves();
  for (const [level, nodes] of toList) {
    const lm = parseRows(await chunked(nodes, (part) => local.list(pattern, level, part)));
    const rm = parseRows(await chunked(nodes, (part) => remote.list(pattern, level, part)));
    for (const key of new Set([...lm.keys(), ...rm.keys()])) {
      const le = lm.get(key);
      const re = rm.get(key);
      const lp = le !== undefined && !le.tomb;
      const rp = re !== undefined && !re.tomb;
      if (!lp && !rp) continue;
      if (lp && rp && compareDigests(le.digest, 0, re.digest, 0) === 0) continue;
      const c = Array.from(keyCoords(key));
      const win = pickWinner(owners.ownerOf(c, 0), l.agent, r.agent, le, re);
      const w = win === 'local' ? le : re;
      const m = win === 'local' ? (lp ? push : delRemote) : (rp ? pull : delLocal);
      m.coords.push(c);
      m.times.push(w?.time ?? 0);
    }
  }
  for (const [part, times] of rows(push)) {
    await remote.apply(present(await local.fetch(part)), times);
    st.scrolls_sent += times.length;
  }
  for (const [part, times] of rows(pull)) {
    await local.apply(present(await remote.fetch(part)), times);
    st.scrolls_received += times.length;
  }
  for (const [part, times] of rows(delRemote)) {
    await remote.remove(part, times);
    st.deleted_remote += times.length;
  }
  for (const [part, times] of rows(delLocal)) {
    await local.remove(part, times);
    st.deleted_local += times.length;
  }
}

/** Coordinates in flat chunks of at most {@link CHUNK_ROWS} rows. */
function* rows(m: Moves): Generator<[Uint32Array, number[]]> {
  for (let i = 0; i < m.coords.length; i += CHUNK_ROWS) {
    const part = m.coords.slice(i, i + CHUNK_ROWS);
    const flat = new Uint32Array(part.length * DIMS);
    part.forEach((c, k) => flat.set(c, k * DIMS));
    yield [flat, m.times.slice(i, i + CHUNK_ROWS)];
  }
}

/** The rows of a fetch that exist (a scroll deleted since listing is left to the next pass). */
function present(b: ScrollBatch): ScrollBatch {
  let all = true;
  for (let i = 0; i < b.n; i++) if (b.kind[i] === 0) all = false;
  if (all) return b;
  throw new VtpuError('E_PEER', 'a scroll changed while syncing; run the sync again');
}
