/**
 * The knowledge-graph adjacency (CSR) that CKG walks, derived from the store.
 *
 * Layout (the seeds' `entity_type.entity_id.attr / relation.target_type.target_id / *.*.*`):
 * - an edge is a scroll at `t.id.0 / r.tt.tid / 0.0.0` with relation r ≥ 1 (its value is free:
 *   a label, a weight; CKG ignores it);
 * - attributes live at `t.id.a / 0.0.0 / 0.0.0`, a ≥ 1;
 * - an entity (t, id) exists when any scroll is stored under `t.id.*` or an edge points at it.
 * Rows with attr 0 and relation ≥ 1 but a non-zero third group, or a relation over 2^31 − 1,
 * are reserved (not edges).
 *
 * The store stays the source of truth: a graph records the store version it reflects, and
 * ./overlay brings it up to date on the first query after a write (appended rows as an
 * overlay, deletions as dead edges; after compaction or many changes a full rebuild here:
 * a linear pass over the store plus a counting sort).
 */
import { DIMS } from '../types';
import type { Store } from '../store/store';
import type { Graph } from './types';

export type { Graph };


const imul = Math.imul;

/** Hash of an entity (type, id). */
export function hash2(t: number, id: number): number {
  let h = imul(t ^ 0x9e3779b9, 0x85ebca6b) ^ id;
  h = imul(h ^ (h >>> 16), 0xc2b2ae35);
  return h ^ (h >>> 13);
}

/** Growable node table used while building: (type, id) → index, with live references per node. */
class NodeMap {
  type: Uint32Array = new Uint32Array(1024);
  id: Uint32Array = new Uint32Array(1024);
  refs: Uint32Array = new Uint32Array(1024);
  n = 0;
  table = new Int32Array(2048).fill(-1);

  /** Node index of (t, id), added when new. */
  intern(t: number, id: number): number {
    let mask = this.table.length - 1;
    let s = hash2(t, id) & mask;
    for (;;) {
      const x = this.table[s];
      if (x < 0) break;
      if (this.type[x] === t && this.id[x] === id) return x;
      s = (s + 1) & mask;
    }
    const x = this.n++;
    if (x === this.type.length) {
      this.type = grow(this.type);
      this.id = grow(this.id);
      this.refs = grow(this.refs);
    }
    this.type[x] = t;
    this.id[x] = id;
    if (this.n * 2 > this.table.length) {
      this.rehash();
      mask = this.table.length - 1;
      s = hash2(t, id) & mask;
      while (this.table[s] >= 0) s = (s + 1) & mask;
    }
    this.table[s] = x;
    return x;
  }

  private rehash(): void {
    const table = new Int32Array(this.table.length * 2).fill(-1);
    const mask = table.length - 1;
    for (let x = 0; x < this.n - 1; x++) {
      let s = hash2(this.type[x], this.id[x]) & mask;
      while (table[s] >= 0) s = (s + 1) & mask;
      table[s] = x;
    }
    this.table = table;
  }
}

function grow(a: Uint32Array): Uint32Array {
  const b = new Uint32Array(a.length * 2);
  b.set(a);
  return b;
}

/** Largest relation id: relations are signed on the wire (−r follows r backwards). */
export const MAX_RELATION = 0x7fffffff;

/** True when entry row `k` (offset into keys) is an edge: attr 0, relation 1..MAX_RELATION, third group 0.0.0. */
export function isEdge(keys: Uint32Array, k: number): boolean {
  const r = keys[k + 3];
  return keys[k + 2] === 0 && r !== 0 && r <= MAX_RELATION && keys[k + 6] === 0 && keys[k + 7] === 0 && keys[k + 8] === 0;
}

/** Base node index of entity (t, id), or -1. */
export function findBaseNode(g: Graph, t: number, id: number): number {
  const mask = g.table.length - 1;
  for (let s = hash2(t, id) & mask; ; s = (s + 1) & mask) {
    const x = g.table[s];
    if (x < 0) return -1;
    if (g.nodeType[x] === t && g.nodeId[x] === id) return x;
  }
}

/** Index of base edge u -r-> d (d a base node), or -1. */
export function findBaseEdge(g: Graph, u: number, r: number, d: number): number {
  const t = g.nodeType[d];
  const id = g.nodeId[d];
  let lo = g.off[u];
  let hi = g.off[u + 1];
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    const x = g.dst[m];
    const c = g.rel[m] - r || g.nodeType[x] - t || g.nodeId[x] - id;
    if (c === 0) return m;
    if (c < 0) lo = m + 1;
    else hi = m;
  }
  return -1;
}

/** (rel, dst type, dst id) of edge a compared with edge b. */
function cmpEdge(rel: Uint32Array, dst: Int32Array, nt: Uint32Array, ni: Uint32Array, a: number, b: number): number {
  return rel[a] - rel[b] || nt[dst[a]] - nt[dst[b]] || ni[dst[a]] - ni[dst[b]];
}

/**
 * Sorts each node's edge run by (rel, dst type, dst id), moving `extra` (a per-edge column,
 * or null) along; runs from a sorted load are left alone.
 */
export function sortRuns(
  off: Int32Array, rel: Uint32Array, dst: Int32Array, nt: Uint32Array, ni: Uint32Array, nodes: number, extra: Int32Array | null,
): void {
  for (let u = 0; u < nodes; u++) {
    const a = off[u];
    const b = off[u + 1];
    let sorted = true;
    for (let e = a + 1; e < b && sorted; e++) sorted = cmpEdge(rel, dst, nt, ni, e - 1, e) <= 0;
    if (sorted) continue;
    if (b - a <= 32) {
      // Insertion sort in place: most runs are a handful of edges.
      for (let i = a + 1; i < b; i++) {
        const r = rel[i];
        const d = dst[i];
        const x = extra === null ? 0 : extra[i];
        let j = i - 1;
        while (j >= a && (rel[j] - r || nt[dst[j]] - nt[d] || ni[dst[j]] - ni[d]) > 0) {
          rel[j + 1] = rel[j];
          dst[j + 1] = dst[j];
          if (extra !== null) extra[j + 1] = extra[j];
          j--;
        }
        rel[j + 1] = r;
        dst[j + 1] = d;
        if (extra !== null) extra[j + 1] = x;
      }
      continue;
    }
    const idx = Array.from({ length: b - a }, (_, j) => a + j).sort((x, y) => cmpEdge(rel, dst, nt, ni, x, y));
    const r = idx.map((e) => rel[e]);
    const d = idx.map((e) => dst[e]);
    const x = extra === null ? null : idx.map((e) => extra[e]);
    rel.set(r, a);
    dst.set(d, a);
    if (extra !== null && x !== null) extra.set(x, a);
  }
}

/** Builds the graph from every live scroll of the store. */
export function buildGraph(store: Store): Graph {
  const t0 = performance.now();
  const v = store.view();
  const { keys, kind, count } = v;
  let edges = 0;
  for (let e = 0; e < count; e++) if (kind[e] !== 0 && isEdge(keys, e * DIMS)) edges++;
  const nodes = new NodeMap();
  const src = new Int32Array(edges);
  const rel0 = new Uint32Array(edges);
  const dst0 = new Int32Array(edges);
  // Consecutive rows usually share their entity: remember the last one instead of hashing.
  let lastT = -1;
  let lastId = -1;
  let last = -1;
  for (let e = 0, j = 0; e < count; e++) {
    if (kind[e] === 0) continue;
    const k = e * DIMS;
    if (keys[k] !== lastT || keys[k + 1] !== lastId) {
      lastT = keys[k];
      lastId = keys[k + 1];
      last = nodes.intern(lastT, lastId);
    }
    nodes.refs[last]++;
    if (!isEdge(keys, k)) continue;
    src[j] = last;
    rel0[j] = keys[k + 3];
    dst0[j] = nodes.intern(keys[k + 4], keys[k + 5]);
    nodes.refs[dst0[j]]++;
    j++;
  }
  const n = nodes.n;
  const off = new Int32Array(n + 1);
  for (let j = 0; j < edges; j++) off[src[j] + 1]++;
  for (let u = 0; u < n; u++) off[u + 1] += off[u];
  const at = off.slice(0, n);
  const rel = new Uint32Array(edges);
  const dst = new Int32Array(edges);
  for (let j = 0; j < edges; j++) {
    const p = at[src[j]]++;
    rel[p] = rel0[j];
    dst[p] = dst0[j];
  }
  sortRuns(off, rel, dst, nodes.type, nodes.id, n, null);
  return {
    version: store.version, generation: store.generation, builtCount: count, builtLive: store.size,
    baseNodes: n, nodeType: nodes.type.subarray(0, n), nodeId: nodes.id.subarray(0, n), nodes: n,
    off, rel, dst, table: nodes.table, refs: new Int32Array(nodes.refs.buffer, 0, n), dead: null, deleted: [], deletedDone: 0, rev: null, ov: null, buildUs: Math.round((performance.now() - t0) * 1000),
    mark: new Int32Array(n), epoch: 0,
  };
}

/** A fresh visit epoch for `g` (marks equal to it mean "seen in this pass"). */
export function nextEpoch(g: Graph): number {
  if (g.epoch === 0x7fffffff) {
    g.mark.fill(0);
    g.epoch = 0;
  }
  return ++g.epoch;
}
