/**
 * Keeping the CKG graph in step with the store. After a write, {@link graphOf} updates the
 * graph in place when it can: entries appended since the build (ids only grow within a
 * store generation) become an overlay of new entities and edges, rescanned from the store
 * each time the version moves; deleted entries (reported by the store's delete hook) mark
 * their base edge dead and drop a reference from the entities they name. Compaction,
 * clear, or too many appended or deleted entries rebuild it. Either way the next traversal
 * sees exactly the store's live edges.
 */
import { DIMS } from '../types';
import type { Store } from '../store/store';
import { buildGraph, findBaseEdge, findBaseNode, isEdge } from './graph';
import type { Graph, Overlay } from './types';
import { reverseOf } from './reverse';

export type { Overlay };

/**
 * One node's edges in one direction: rel/dst over [a, b) (dst: the node at the other end),
 * skipping e when dead[deadAt ? deadAt[e] : e] is set.
 */
export interface Run {
  rel: Uint32Array;
  dst: Int32Array;
  a: number;
  b: number;
  dead: Uint8Array | null;
  deadAt: Int32Array | null;
}

/** Entity type of node u. */
export function typeOf(g: Graph, u: number): number {
  return u < g.baseNodes ? g.nodeType[u] : (g.ov as Overlay).type[u - g.baseNodes];
}

/** Entity id of node u. */
export function idOf(g: Graph, u: number): number {
  return u < g.baseNodes ? g.nodeId[u] : (g.ov as Overlay).id[u - g.baseNodes];
}

/** Node index of entity (t, id), or -1 when it does not exist. */
export function findNode(g: Graph, t: number, id: number): number {
  const u = findBaseNode(g, t, id);
  if (u >= 0 || g.ov === null) return u;
  return g.ov.index.get(`${t}.${id}`) ?? -1;
}

/** True when node u exists: a live row names it (its own scroll, or an edge to it). */
export function exists(g: Graph, u: number): boolean {
  return u >= g.baseNodes || g.refs[u] > 0 || (g.ov !== null && g.ov.touched.has(u));
}

/** (rel, type, id) order of edge (r1 → d1) against (r2 → d2). */
function cmp(g: Graph, r1: number, d1: number, r2: number, d2: number): number {
  return r1 - r2 || typeOf(g, d1) - typeOf(g, d2) || idOf(g, d1) - idOf(g, d2);
}

/** True when edge e of `run` was deleted since the build. */
export function isDead(run: Run, e: number): boolean {
  return run.dead !== null && run.dead[run.deadAt === null ? e : run.deadAt[e]] !== 0;
}

/**
 * Node u's outgoing (or, with `back`, incoming) edges in (rel, type, id) order of the node at
 * the other end: its base run, merged with appended edges when it has any.
 */
export function edgesOf(g: Graph, u: number, back = false): Run {
  const r = back ? reverseOf(g) : null;
  const inBase = u < g.baseNodes;
  const base: Run = r === null
    ? { rel: g.rel, dst: g.dst, a: inBase ? g.off[u] : 0, b: inBase ? g.off[u + 1] : 0, dead: g.dead, deadAt: null }
    : { rel: r.rel, dst: r.src, a: inBase ? r.off[u] : 0, b: inBase ? r.off[u + 1] : 0, dead: g.dead, deadAt: r.fwd };
  const extra = (back ? g.ov?.inEdges : g.ov?.edges)?.get(u);
  if (extra === undefined) return base;
  const n = base.b - base.a + extra.rel.length;
  const rel = new Uint32Array(n);
  const dst = new Int32Array(n);
  let i = base.a;
  let j = 0;
  let k = 0;
  for (;;) {
    while (i < base.b && isDead(base, i)) i++;
    if (i >= base.b && j >= extra.rel.length) break;
    if (j >= extra.rel.length || (i < base.b && cmp(g, base.rel[i], base.dst[i], extra.rel[j], extra.dst[j]) < 0)) {
      rel[k] = base.rel[i];
      dst[k++] = base.dst[i++];
    } else {
      rel[k] = extra.rel[j];
      dst[k++] = extra.dst[j++];
    }
  }
  return { rel, dst, a: 0, b: k, dead: null, deadAt: null };
}

/** Applies deletions the store reported since the last refresh: dead edges, dropped references. */
function applyDeletes(g: Graph, keys: Uint32Array): void {
  for (; g.deletedDone < g.deleted.length; g.deletedDone++) {
    const k = g.deleted[g.deletedDone] * DIMS;
    const u = findBaseNode(g, keys[k], keys[k + 1]);
    g.refs[u]--;
    if (!isEdge(keys, k)) continue;
    const d = findBaseNode(g, keys[k + 4], keys[k + 5]);
    g.refs[d]--;
    (g.dead ??= new Uint8Array(g.rel.length))[findBaseEdge(g, u, keys[k + 3], d)] = 1;
  }
}

/** Groups appended edges by `from` into `into`: per node, (rel, other end) sorted by (rel, type, id). */
function group(g: Graph, into: Overlay['edges'], from: number[], rel: number[], to: number[]): void {
  const order = from.map((_, i) => i).sort((x, y) => from[x] - from[y] || cmp(g, rel[x], to[x], rel[y], to[y]));
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j < order.length && from[order[j]] === from[order[i]]) j++;
    const run = order.slice(i, j);
    into.set(from[order[i]], { rel: Uint32Array.from(run, (x) => rel[x]), dst: Int32Array.from(run, (x) => to[x]) });
    i = j;
  }
}

/** Most appended entries a refresh takes on (deletions: twice that) before a rebuild is cheaper. */
function maxDelta(g: Graph): number {
  return Math.max(4096, g.rel.length / 64);
}

/** Rebuilds `g.ov` from the entries appended since the build; false when a full rebuild is due. */
function refresh(g: Graph, store: Store): boolean {
  const t0 = performance.now();
  const v = store.view();
  const delta = v.count - g.builtCount;
  const most = maxDelta(g);
  if (delta < 0 || delta > most || g.deleted.length > 2 * most) return false;
  const { keys, kind } = v;
  applyDeletes(g, keys);
  const ov: Overlay = { index: new Map(), type: [], id: [], edges: new Map(), inEdges: new Map(), touched: new Set() };
  const node = (t: number, id: number): number => {
    const u = findBaseNode(g, t, id);
    if (u >= 0) {
      ov.touched.add(u);
      return u;
    }
    const key = `${t}.${id}`;
    let x = ov.index.get(key);
    if (x === undefined) {
      x = g.baseNodes + ov.type.length;
      ov.index.set(key, x);
      ov.type.push(t);
      ov.id.push(id);
    }
    return x;
  };
  const src: number[] = [];
  const rel: number[] = [];
  const dst: number[] = [];
  let live = 0;
  for (let e = g.builtCount; e < v.count; e++) {
    if (kind[e] === 0) continue;
    live++;
    const k = e * DIMS;
    const u = node(keys[k], keys[k + 1]);
    if (!isEdge(keys, k)) continue;
    src.push(u);
    rel.push(keys[k + 3]);
    dst.push(node(keys[k + 4], keys[k + 5]));
  }
  // Every live entry is accounted for (a safety net: the counts always agree within a generation).
  if (store.size !== g.builtLive - g.deleted.length + live) return false;
  g.ov = ov;
  g.nodes = g.baseNodes + ov.type.length;
  group(g, ov.edges, src, rel, dst);
  group(g, ov.inEdges, dst, rel, src);
  if (g.mark.length < g.nodes) {
    g.mark = new Int32Array(Math.max(g.nodes, 2 * g.mark.length));
    g.epoch = 0;
  }
  g.version = store.version;
  g.buildUs = Math.round((performance.now() - t0) * 1000);
  return true;
}

const graphs = new WeakMap<Store, Graph>();
const hooked = new WeakSet<Store>();

/** Queues a deleted entry the current graph's base covers (applied at the next refresh). */
function hook(store: Store): void {
  if (hooked.has(store)) return;
  hooked.add(store);
  store.onDelete((id) => {
    const g = graphs.get(store);
    if (g === undefined || g.generation !== store.generation || id >= g.builtCount) return;
    g.deleted.push(id);
    // Past what a refresh applies: drop the graph now (frees it; the next CKG rebuilds).
    if (g.deleted.length > 2 * maxDelta(g)) graphs.delete(store);
  });
}

/**
 * The store's graph, brought up to date: as it was when the store has not been written
 * since, refreshed (overlay) or rebuilt otherwise. `built` tells whether this call did work
 * (its time is `graph.buildUs`).
 */
export function graphOf(store: Store): { graph: Graph; built: boolean } {
  const g = graphs.get(store);
  if (g !== undefined && g.version === store.version) return { graph: g, built: false };
  if (g !== undefined && g.generation === store.generation && refresh(g, store)) return { graph: g, built: true };
  hook(store);
  const fresh = buildGraph(store);
  graphs.set(store, fresh);
  return { graph: fresh, built: true };
}
