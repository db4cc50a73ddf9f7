/**
 * Incoming edges for backward hops (relation −r): the base CSR transposed, built on first
 * use and kept with the graph. In-place updates leave it valid: deletions are read through
 * the forward edge's dead flag (`fwd`), appended edges come from the overlay.
 */
import { sortRuns } from './graph';
import type { Graph, Reverse } from './types';

export type { Reverse };

/** The graph's reverse adjacency, built on first call. */
export function reverseOf(g: Graph): Reverse {
  if (g.rev !== null) return g.rev;
  const n = g.baseNodes;
  const m = g.rel.length;
  const off = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) off[g.dst[e] + 1]++;
  for (let v = 0; v < n; v++) off[v + 1] += off[v];
  const at = off.slice(0, n);
  const rel = new Uint32Array(m);
  const src = new Int32Array(m);
  const fwd = new Int32Array(m);
  for (let u = 0; u < n; u++) {
    for (let e = g.off[u]; e < g.off[u + 1]; e++) {
      const p = at[g.dst[e]]++;
      rel[p] = g.rel[e];
      src[p] = u;
      fwd[p] = e;
    }
  }
  // Sources were placed in node-index order; sort each run by (rel, source type, source id).
  sortRuns(off, rel, src, g.nodeType, g.nodeId, n, fwd);
  g.rev = { off, rel, src, fwd };
  return g.rev;
}
