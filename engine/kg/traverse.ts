/**
 * CKG traversals over a {@link Graph}: relation-path ends, relation-path enumeration and a
 * bounded BFS. Each appends rows (node indices plus per-row metadata) to a shared
 * {@link Rows} so a batch of starts becomes one reply.
 */
import { Graph, nextEpoch } from './graph';
import { IntList } from '../intlist';
import { tick } from '../budget';
import { edgesOf, idOf, isDead, Run, typeOf } from './overlay';

/** Relations followed one way: sorted distinct ids, or '*' for any. */
export type Rels = Uint32Array | '*';

/** What a hop follows: relations forward (source → target) and backward (target → source); null: none that way. */
export interface RelSet {
  fwd: Rels | null;
  back: Rels | null;
}

/** One direction's edges of a node, with the relations to let through and the sign reported for them. */
interface Step extends Run {
  allow: Rels;
  sign: 1 | -1;
}

/** Reply rows: node per row, and for BFS the depth, parent row (-1 for a start) and relation followed (0 for a start). */
export class Rows {
  readonly node = new IntList();
  readonly depth = new IntList();
  readonly parent = new IntList();
  readonly via = new IntList();
  /** `withMeta`: keep depth, parent and relation per row (BFS). */
  constructor(readonly withMeta: boolean) {}
  /** Rows so far. */
  get n(): number {
    return this.node.n;
  }
  /** Appends a row. */
  add(node: number, depth: number, parent: number, via: number): void {
    this.node.push(node);
    if (!this.withMeta) return;
    this.depth.push(depth);
    this.parent.push(parent);
    this.via.push(via);
  }
}

/** Narrows a run to one relation's edges by binary search (runs are sorted by relation first). */
function narrow(run: Run, r: number): void {
  const rel = run.rel;
  let lo = run.a;
  let hi = run.b;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (rel[m] < r) lo = m + 1;
    else hi = m;
  }
  const a = lo;
  hi = run.b;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (rel[m] <= r) lo = m + 1;
    else hi = m;
  }
  run.a = a;
  run.b = lo;
}

/** Node u's edges one way (`sign` -1: backward) that `allow` lets through. */
function step(g: Graph, u: number, allow: Rels, sign: 1 | -1): Step {
  const run = edgesOf(g, u, sign < 0) as Step;
  if (allow !== '*' && allow.length === 1 && run.b - run.a >= 16) narrow(run, allow[0]);
  run.allow = allow;
  run.sign = sign;
  return run;
}

/** Node u's edges that `rs` may follow: forward first, then backward. */
function stepsOf(g: Graph, u: number, rs: RelSet): Step[] {
  const out: Step[] = [];
  if (rs.fwd !== null) out.push(step(g, u, rs.fwd, 1));
  if (rs.back !== null) out.push(step(g, u, rs.back, -1));
  return out;
}

/** True when `rs` lets relation r through. */
export function allows(rs: Rels, r: number): boolean {
  if (rs === '*') return true;
  if (rs.length <= 8) {
    for (let i = 0; i < rs.length; i++) if (rs[i] === r) return true;
    return false;
  }
  let lo = 0;
  let hi = rs.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (rs[m] < r) lo = m + 1;
    else hi = m;
  }
  return lo < rs.length && rs[lo] === r;
}

/** Sorts node indices by (type, id). */
function sortByEntity(g: Graph, xs: Int32Array): Int32Array {
  return xs.sort((a, b) => typeOf(g, a) - typeOf(g, b) || idOf(g, a) - idOf(g, b));
}

/**
 * Appends the distinct entities reachable from `start` along `hops` (one relation set per
 * hop), in (type, id) order, at most `limit`; returns true when more were reachable.
 */
export function pathEnds(g: Graph, start: number, hops: readonly RelSet[], limit: number, out: Rows): boolean {
  let cur = new IntList(1);
  cur.push(start);
  for (const rs of hops) {
    const ep = nextEpoch(g);
    const next = new IntList(cur.n * 2);
    const mark = g.mark;
    const visit = (st: Step): void => {
      const { rel, dst, b } = st;
      for (let e = st.a; e < b; e++) {
        tick();
        const v = dst[e];
        if (mark[v] === ep || isDead(st, e) || !allows(st.allow, rel[e])) continue;
        mark[v] = ep;
        next.push(v);
      }
    };
    for (let i = 0; i < cur.n; i++) {
      if (rs.fwd !== null) visit(step(g, cur.a[i], rs.fwd, 1));
      if (rs.back !== null) visit(step(g, cur.a[i], rs.back, -1));
    }
    cur = next;
    if (cur.n === 0) return false;
  }
  const ends = sortByEntity(g, cur.view());
  const n = Math.min(limit, ends.length);
  for (let i = 0; i < n; i++) out.add(ends[i], 0, 0, 0);
  return ends.length > limit;
}

/**
 * Appends every path from `start` along `hops` as hops+1 rows (start first), depth-first,
 * each node's forward then backward edges in (relation, type, id) order; at most `limit`
 * paths. Returns true when more paths existed.
 */
export function pathWalks(g: Graph, start: number, hops: readonly RelSet[], limit: number, out: Rows): boolean {
  const L = hops.length;
  const stack = new Int32Array(L + 1);
  const steps: Step[][] = new Array(L);
  const at = new Int32Array(L);
  stack[0] = start;
  steps[0] = stepsOf(g, start, hops[0]);
  let level = 0;
  let found = 0;
  while (level >= 0) {
    tick();
    const st = steps[level][at[level]];
    if (st === undefined) {
      level--;
      continue;
    }
    if (st.a >= st.b) {
      at[level]++;
      continue;
    }
    const e = st.a++;
    if (isDead(st, e) || !allows(st.allow, st.rel[e])) continue;
    const v = st.dst[e];
    if (level + 1 === L) {
      if (found === limit) return true;
      found++;
      for (let i = 0; i <= level; i++) out.add(stack[i], 0, 0, 0);
      out.add(v, 0, 0, 0);
      continue;
    }
    stack[++level] = v;
    steps[level] = stepsOf(g, v, hops[level]);
    at[level] = 0;
  }
  return false;
}

/**
 * Appends a BFS from `starts` (one search from all of them together; one start is the usual
 * case) to at most `maxDepth` hops along `rs`: rows in discovery order (the distinct starts
 * first, then level by level, each node's forward then backward edges in (relation, type,
 * id) order) with depth, parent row and relation (negative when followed backwards). At
 * most `limit` nodes; returns true when a node within reach was left out.
 */
export function bfs(g: Graph, starts: ArrayLike<number>, maxDepth: number, rs: RelSet, limit: number, out: Rows): boolean {
  const ep = nextEpoch(g);
  const mark = g.mark;
  const base = out.n;
  for (let i = 0; i < starts.length; i++) {
    const s = starts[i];
    if (mark[s] === ep) continue;
    if (out.n - base === limit) return true;
    mark[s] = ep;
    out.add(s, 0, -1, 0);
  }
  // Adds the unseen nodes behind `st` as children of row `head`; false when the limit cut in.
  const expand = (st: Step, head: number, d: number): boolean => {
    const { rel, dst, b } = st;
    for (let e = st.a; e < b; e++) {
      tick();
      const v = dst[e];
      if (mark[v] === ep || isDead(st, e) || !allows(st.allow, rel[e])) continue;
      if (out.n - base === limit) return false;
      mark[v] = ep;
      out.add(v, d + 1, head, st.sign * rel[e]);
    }
    return true;
  };
  const node = out.node;
  const depth = out.depth;
  for (let head = base; head < out.n; head++) {
    const d = depth.a[head];
    if (d === maxDepth) continue;
    const u = node.a[head];
    if (rs.fwd !== null && !expand(step(g, u, rs.fwd, 1), head, d)) return true;
    if (rs.back !== null && !expand(step(g, u, rs.back, -1), head, d)) return true;
  }
  return false;
}
