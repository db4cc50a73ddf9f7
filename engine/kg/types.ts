/**
 * The CKG adjacency's data shapes, apart from the code that builds (./graph), updates
 * (./overlay) and transposes (./reverse) them, so those files need not import each other both ways.
 */

/**
 * Compressed sparse rows: base node u's edges are [off[u], off[u+1]) of rel/dst, sorted by
 * (rel, dst type, dst id). Nodes ≥ baseNodes and edges written after the build live in `ov`.
 */
export interface Graph {
  /** Store version this graph reflects (base plus overlay). */
  version: number;
  /** Store generation (id numbering) of the build. */
  readonly generation: number;
  /** Store entries (ids) the base covers, and how many of them were live. */
  readonly builtCount: number;
  readonly builtLive: number;
  /** Base nodes: entity type and id per node index. */
  readonly baseNodes: number;
  readonly nodeType: Uint32Array;
  readonly nodeId: Uint32Array;
  readonly off: Int32Array;
  readonly rel: Uint32Array;
  readonly dst: Int32Array;
  /** Open-addressing map (type, id) → base node index; -1 empty. */
  readonly table: Int32Array;
  /** Live store rows naming each base node (its own rows plus edges pointing at it): 0 = gone. */
  readonly refs: Int32Array;
  /** Base edges deleted since the build (null until the first). */
  dead: Uint8Array | null;
  /** Entry ids (< builtCount) deleted since the build, and how many of them are applied. */
  readonly deleted: number[];
  deletedDone: number;
  /** Incoming edges of base nodes, built on the first backward hop (./reverse). */
  rev: Reverse | null;
  /** Appended since the build (null when none). */
  ov: Overlay | null;
  /** All nodes, base and overlay. */
  nodes: number;
  /** Microseconds the last build or overlay refresh took. */
  buildUs: number;
  /** Scratch for traversals: visit marks per node and the current epoch. */
  mark: Int32Array;
  epoch: number;
}

/** Entities and edges appended since the build; node indices continue after the base. */
export interface Overlay {
  /** "type.id" → node index (≥ baseNodes) of entities the base does not know. */
  readonly index: Map<string, number>;
  readonly type: number[];
  readonly id: number[];
  /** Node → its appended outgoing edges, sorted by (rel, dst type, dst id). */
  readonly edges: Map<number, { rel: Uint32Array; dst: Int32Array }>;
  /** Node → its appended incoming edges (dst = the source), sorted by (rel, src type, src id). */
  readonly inEdges: Map<number, { rel: Uint32Array; dst: Int32Array }>;
  /** Base nodes that appended rows name (they exist whatever their base references). */
  readonly touched: Set<number>;
}

/** Node v's incoming edges are [off[v], off[v+1]) of rel/src/fwd, sorted by (rel, src type, src id). */
export interface Reverse {
  readonly off: Int32Array;
  readonly rel: Uint32Array;
  readonly src: Int32Array;
  /** The forward edge index of each incoming edge (for its dead flag). */
  readonly fwd: Int32Array;
}
